//! Windows Autopilot deployment profiles (beta): `windowsAutopilotDeploymentProfile` with its two
//! derived types, its complex types under their deprecated and current names, and
//! `windowsAutopilotDeploymentProfileAssignment` with its targets.

use serde::{Deserialize, Serialize};

use crate::GraphDateTime;

pub const AZURE_AD_PROFILE_TYPE: &str = "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile";
pub const ACTIVE_DIRECTORY_PROFILE_TYPE: &str = "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile";
pub const GROUP_TARGET_TYPE: &str = "#microsoft.graph.groupAssignmentTarget";
pub const EXCLUSION_GROUP_TARGET_TYPE: &str = "#microsoft.graph.exclusionGroupAssignmentTarget";
pub const ALL_DEVICES_TARGET_TYPE: &str = "#microsoft.graph.allDevicesAssignmentTarget";

/// `windowsAutopilotDeviceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotDeviceType {
    WindowsPc,
    HoloLens,
    SurfaceHub2,
    SurfaceHub2S,
    VirtualMachine,
    UnknownFutureValue,
}

impl WindowsAutopilotDeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowsAutopilotDeviceType::WindowsPc => "windowsPc",
            WindowsAutopilotDeviceType::HoloLens => "holoLens",
            WindowsAutopilotDeviceType::SurfaceHub2 => "surfaceHub2",
            WindowsAutopilotDeviceType::SurfaceHub2S => "surfaceHub2S",
            WindowsAutopilotDeviceType::VirtualMachine => "virtualMachine",
            WindowsAutopilotDeviceType::UnknownFutureValue => "unknownFutureValue",
        }
    }
}

/// `windowsUserType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsUserType {
    Administrator,
    Standard,
    UnknownFutureValue,
}

impl WindowsUserType {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowsUserType::Administrator => "administrator",
            WindowsUserType::Standard => "standard",
            WindowsUserType::UnknownFutureValue => "unknownFutureValue",
        }
    }
}

/// `windowsDeviceUsageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsDeviceUsageType {
    SingleUser,
    Shared,
    UnknownFutureValue,
}

impl WindowsDeviceUsageType {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowsDeviceUsageType::SingleUser => "singleUser",
            WindowsDeviceUsageType::Shared => "shared",
            WindowsDeviceUsageType::UnknownFutureValue => "unknownFutureValue",
        }
    }
}

/// `outOfBoxExperienceSettings`, the deprecated form.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OutOfBoxExperienceSettings {
    pub hide_privacy_settings: bool,
    #[serde(rename = "hideEULA")]
    pub hide_eula: bool,
    pub user_type: String,
    pub device_usage_type: String,
    pub skip_keyboard_selection_page: bool,
    pub hide_escape_link: bool,
}

/// `outOfBoxExperienceSetting`, the current form.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OutOfBoxExperienceSetting {
    pub privacy_settings_hidden: bool,
    pub eula_hidden: bool,
    pub user_type: String,
    pub device_usage_type: String,
    pub keyboard_selection_page_skipped: bool,
    pub escape_link_hidden: bool,
}

/// `windowsEnrollmentStatusScreenSettings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsEnrollmentStatusScreenSettings {
    #[serde(rename = "@odata.type", default, skip_serializing)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub hide_installation_progress: bool,
    #[serde(default)]
    pub allow_device_use_before_profile_and_app_install_complete: bool,
    #[serde(default)]
    pub block_device_setup_retry_by_user: bool,
    #[serde(default)]
    pub allow_log_collection_on_install_failure: bool,
    #[serde(default)]
    pub custom_error_message: Option<String>,
    #[serde(default)]
    pub install_progress_timeout_in_minutes: i32,
    #[serde(default)]
    pub allow_device_use_on_install_failure: bool,
}

/// A profile as beta shows it: every documented property, the deprecated ones beside the
/// current ones with the same values (docs/GRAPH-COMPAT.md, "Deployment profiles").
/// `hybridAzureADJoinSkipConnectivityCheck` belongs to the Active Directory type only.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowsAutopilotDeploymentProfile {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub language: String,
    pub locale: String,
    pub created_date_time: GraphDateTime,
    pub last_modified_date_time: GraphDateTime,
    pub out_of_box_experience_settings: OutOfBoxExperienceSettings,
    pub out_of_box_experience_setting: OutOfBoxExperienceSetting,
    pub enrollment_status_screen_settings: Option<WindowsEnrollmentStatusScreenSettings>,
    pub extract_hardware_hash: bool,
    pub hardware_hash_extraction_enabled: bool,
    pub device_name_template: String,
    pub device_type: String,
    pub enable_white_glove: bool,
    pub preprovisioning_allowed: bool,
    pub role_scope_tag_ids: Vec<String>,
    pub management_service_app_id: String,
    #[serde(rename = "hybridAzureADJoinSkipConnectivityCheck", skip_serializing_if = "Option::is_none")]
    pub hybrid_azure_ad_join_skip_connectivity_check: Option<bool>,
}

/// `outOfBoxExperienceSettings` as a client sends it (create and PATCH).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutOfBoxExperienceSettingsInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub hide_privacy_settings: Option<bool>,
    #[serde(rename = "hideEULA", default)]
    pub hide_eula: Option<bool>,
    #[serde(default)]
    pub user_type: Option<WindowsUserType>,
    #[serde(default)]
    pub device_usage_type: Option<WindowsDeviceUsageType>,
    #[serde(default)]
    pub skip_keyboard_selection_page: Option<bool>,
    #[serde(default)]
    pub hide_escape_link: Option<bool>,
}

/// `outOfBoxExperienceSetting` as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutOfBoxExperienceSettingInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub privacy_settings_hidden: Option<bool>,
    #[serde(default)]
    pub eula_hidden: Option<bool>,
    #[serde(default)]
    pub user_type: Option<WindowsUserType>,
    #[serde(default)]
    pub device_usage_type: Option<WindowsDeviceUsageType>,
    #[serde(default)]
    pub keyboard_selection_page_skipped: Option<bool>,
    #[serde(default)]
    pub escape_link_hidden: Option<bool>,
}

/// A profile as clients send it. Both names of each renamed property are accepted; the
/// read-only properties a client sends back from a GET (`id`, the timestamps,
/// `@odata.context`, an expanded `assignments`) are accepted and ignored, as
/// Set-AutopilotProfile round-trips them.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsAutopilotDeploymentProfileInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(rename = "@odata.context", default)]
    pub odata_context: Option<serde_json::Value>,
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub created_date_time: Option<serde_json::Value>,
    #[serde(default)]
    pub last_modified_date_time: Option<serde_json::Value>,
    #[serde(default)]
    pub assignments: Option<serde_json::Value>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub out_of_box_experience_settings: Option<OutOfBoxExperienceSettingsInput>,
    #[serde(default)]
    pub out_of_box_experience_setting: Option<OutOfBoxExperienceSettingInput>,
    #[serde(default)]
    pub enrollment_status_screen_settings: Option<WindowsEnrollmentStatusScreenSettings>,
    #[serde(default)]
    pub extract_hardware_hash: Option<bool>,
    #[serde(default)]
    pub hardware_hash_extraction_enabled: Option<bool>,
    #[serde(default)]
    pub device_name_template: Option<String>,
    #[serde(default)]
    pub device_type: Option<WindowsAutopilotDeviceType>,
    #[serde(default)]
    pub enable_white_glove: Option<bool>,
    #[serde(default)]
    pub preprovisioning_allowed: Option<bool>,
    #[serde(default)]
    pub role_scope_tag_ids: Option<Vec<String>>,
    #[serde(default)]
    pub management_service_app_id: Option<String>,
    #[serde(rename = "hybridAzureADJoinSkipConnectivityCheck", default)]
    pub hybrid_azure_ad_join_skip_connectivity_check: Option<bool>,
}

/// `deviceAndAppManagementAssignmentTarget` as dmsync shows it: the derived type, the group of
/// a group target, and the assignment filter properties (no filters exist in dmsync).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AssignmentTarget {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub device_and_app_management_assignment_filter_id: Option<String>,
    pub device_and_app_management_assignment_filter_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// `windowsAutopilotDeploymentProfileAssignment`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowsAutopilotDeploymentProfileAssignment {
    pub id: String,
    pub target: AssignmentTarget,
    pub source: &'static str,
    pub source_id: Option<String>,
}

/// A target as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignmentTargetInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub device_and_app_management_assignment_filter_id: Option<String>,
    #[serde(default)]
    pub device_and_app_management_assignment_filter_type: Option<String>,
    #[serde(default)]
    pub collection_id: Option<String>,
}

/// An assignment as a client sends it: `id` is accepted (the PowerShell module builds
/// `{profileId}_{groupId}_0` itself) and the server's own is used.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsAutopilotDeploymentProfileAssignmentInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub target: Option<AssignmentTargetInput>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
}
