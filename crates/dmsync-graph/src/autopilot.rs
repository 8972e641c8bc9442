//! Autopilot resources: `windowsAutopilotSettings` and `windowsAutopilotDeviceIdentity`.

use serde::{Deserialize, Serialize};

use crate::GraphDateTime;

/// `windowsAutopilotSyncStatus` (beta). It has no `unknownFutureValue` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotSyncStatus {
    Unknown,
    InProgress,
    Completed,
    Failed,
}

/// `windowsAutopilotSettings`, the per-tenant singleton (beta only). Real responses carry no
/// `@odata.type`; properties are in alphabetical order, which serde_json's sorted map gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowsAutopilotSettings {
    pub id: String,
    pub last_manual_sync_trigger_date_time: GraphDateTime,
    pub last_sync_date_time: GraphDateTime,
    pub sync_status: WindowsAutopilotSyncStatus,
}

/// The body of `PATCH …/windowsAutopilotSettings`. Every property is optional; which ones the
/// server honours is decided in the server (docs/GRAPH-COMPAT.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsAutopilotSettingsPatch {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub last_sync_date_time: Option<GraphDateTime>,
    #[serde(default)]
    pub last_manual_sync_trigger_date_time: Option<GraphDateTime>,
    #[serde(default)]
    pub sync_status: Option<WindowsAutopilotSyncStatus>,
}

/// `enrollmentState`. `blocked` exists only in beta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum EnrollmentState {
    Unknown,
    Enrolled,
    PendingReset,
    Failed,
    NotContacted,
    Blocked,
}

/// `windowsAutopilotProfileAssignmentStatus` (beta). `assignedUnkownSyncState` is Graph's own
/// spelling and the real wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotProfileAssignmentStatus {
    Unknown,
    AssignedInSync,
    AssignedOutOfSync,
    AssignedUnkownSyncState,
    NotAssigned,
    Pending,
    Failed,
}

/// `windowsAutopilotProfileAssignmentDetailedStatus` (beta).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotProfileAssignmentDetailedStatus {
    None,
    HardwareRequirementsNotMet,
    SurfaceHubProfileNotSupported,
    HoloLensProfileNotSupported,
    WindowsPcProfileNotSupported,
    SurfaceHub2SProfileNotSupported,
    UnknownFutureValue,
}

/// `windowsAutopilotDeviceRemediationState` (beta).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotDeviceRemediationState {
    Unknown,
    NoRemediationRequired,
    AutomaticRemediationRequired,
    ManualRemediationRequired,
    UnknownFutureValue,
}

/// `windowsAutopilotUserlessEnrollmentStatus` (beta).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum WindowsAutopilotUserlessEnrollmentStatus {
    Unknown,
    Allowed,
    Blocked,
    UnknownFutureValue,
}

/// `windowsAutopilotDeviceIdentity`. The beta-only properties are `Option` and left out of
/// v1.0 responses. Unset strings are `""`, as real Intune sends them, never null. It serialises
/// by hand (below) so that the properties come in the order responses carry them.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowsAutopilotDeviceIdentity {
    pub id: String,
    pub addressable_user_name: String,
    pub azure_active_directory_device_id: String,
    pub display_name: String,
    pub enrollment_state: EnrollmentState,
    pub group_tag: String,
    pub last_contacted_date_time: GraphDateTime,
    pub managed_device_id: String,
    pub manufacturer: String,
    pub model: String,
    pub product_key: String,
    pub purchase_order_identifier: String,
    pub resource_name: String,
    pub serial_number: String,
    pub sku_number: String,
    pub system_family: String,
    pub user_principal_name: String,
    #[serde(flatten)]
    pub beta: Option<WindowsAutopilotDeviceIdentityBeta>,
}

/// The properties in byte order of their names, the beta-only ones in their places, which is
/// the order responses carry them in. Derived, `flatten` would put the beta ones last and
/// serialise through a map, and the writer would then have to sort every device of a page.
impl Serialize for WindowsAutopilotDeviceIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let beta = self.beta.as_ref();
        let mut out =
            serializer.serialize_struct("WindowsAutopilotDeviceIdentity", if beta.is_some() { 27 } else { 17 })?;
        out.serialize_field("addressableUserName", &self.addressable_user_name)?;
        out.serialize_field("azureActiveDirectoryDeviceId", &self.azure_active_directory_device_id)?;
        if let Some(b) = beta {
            out.serialize_field("azureAdDeviceId", &b.azure_ad_device_id)?;
            out.serialize_field("deploymentProfileAssignedDateTime", &b.deployment_profile_assigned_date_time)?;
            out.serialize_field(
                "deploymentProfileAssignmentDetailedStatus",
                &b.deployment_profile_assignment_detailed_status,
            )?;
            out.serialize_field("deploymentProfileAssignmentStatus", &b.deployment_profile_assignment_status)?;
            out.serialize_field("deviceAccountPassword", &b.device_account_password)?;
            out.serialize_field("deviceAccountUpn", &b.device_account_upn)?;
            out.serialize_field("deviceFriendlyName", &b.device_friendly_name)?;
        }
        out.serialize_field("displayName", &self.display_name)?;
        out.serialize_field("enrollmentState", &self.enrollment_state)?;
        out.serialize_field("groupTag", &self.group_tag)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("lastContactedDateTime", &self.last_contacted_date_time)?;
        out.serialize_field("managedDeviceId", &self.managed_device_id)?;
        out.serialize_field("manufacturer", &self.manufacturer)?;
        out.serialize_field("model", &self.model)?;
        out.serialize_field("productKey", &self.product_key)?;
        out.serialize_field("purchaseOrderIdentifier", &self.purchase_order_identifier)?;
        if let Some(b) = beta {
            out.serialize_field("remediationState", &b.remediation_state)?;
            out.serialize_field("remediationStateLastModifiedDateTime", &b.remediation_state_last_modified_date_time)?;
        }
        out.serialize_field("resourceName", &self.resource_name)?;
        out.serialize_field("serialNumber", &self.serial_number)?;
        out.serialize_field("skuNumber", &self.sku_number)?;
        out.serialize_field("systemFamily", &self.system_family)?;
        out.serialize_field("userPrincipalName", &self.user_principal_name)?;
        if let Some(b) = beta {
            out.serialize_field("userlessEnrollmentStatus", &b.userless_enrollment_status)?;
        }
        out.end()
    }
}

/// The properties of `windowsAutopilotDeviceIdentity` that only `/beta` has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowsAutopilotDeviceIdentityBeta {
    pub azure_ad_device_id: String,
    pub deployment_profile_assigned_date_time: GraphDateTime,
    pub deployment_profile_assignment_detailed_status: WindowsAutopilotProfileAssignmentDetailedStatus,
    pub deployment_profile_assignment_status: WindowsAutopilotProfileAssignmentStatus,
    pub device_account_password: String,
    pub device_account_upn: String,
    pub device_friendly_name: String,
    pub remediation_state: WindowsAutopilotDeviceRemediationState,
    pub remediation_state_last_modified_date_time: GraphDateTime,
    pub userless_enrollment_status: WindowsAutopilotUserlessEnrollmentStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_device_serialises_its_properties_in_sorted_order() {
        use crate::writer::{Select, entity_document};
        let device: WindowsAutopilotDeviceIdentity = serde_json::from_value(json!({
            "id": "i", "addressableUserName": "", "azureActiveDirectoryDeviceId": "", "displayName": "",
            "enrollmentState": "enrolled", "groupTag": "", "lastContactedDateTime": "0001-01-01T00:00:00Z",
            "managedDeviceId": "", "manufacturer": "", "model": "", "productKey": "", "purchaseOrderIdentifier": "",
            "resourceName": "", "serialNumber": "", "skuNumber": "", "systemFamily": "", "userPrincipalName": "",
            "azureAdDeviceId": "", "deploymentProfileAssignedDateTime": "0001-01-01T00:00:00Z",
            "deploymentProfileAssignmentDetailedStatus": "none", "deploymentProfileAssignmentStatus": "notAssigned",
            "deviceAccountPassword": "", "deviceAccountUpn": "", "deviceFriendlyName": "", "remediationState": "unknown",
            "remediationStateLastModifiedDateTime": "0001-01-01T00:00:00Z", "userlessEnrollmentStatus": "unknown",
        }))
        .unwrap();
        for beta in [true, false] {
            let device =
                WindowsAutopilotDeviceIdentity { beta: device.beta.clone().filter(|_| beta), ..device.clone() };
            let in_order = serde_json::to_string(&device).unwrap();
            let sorted = serde_json::to_string(&serde_json::to_value(&device).unwrap()).unwrap();
            assert_eq!(in_order, sorted);
            let doc = entity_document("c", &device, Select::ALL, &[]).unwrap();
            assert_eq!(String::from_utf8(doc).unwrap(), format!("{{\"@odata.context\":\"c\",{}", &sorted[1..]));
        }
    }

    #[test]
    fn enum_spellings_match_graph() {
        assert_eq!(json!(WindowsAutopilotSyncStatus::InProgress), json!("inProgress"));
        assert_eq!(
            json!(WindowsAutopilotProfileAssignmentStatus::AssignedUnkownSyncState),
            json!("assignedUnkownSyncState")
        );
        assert_eq!(
            json!(WindowsAutopilotProfileAssignmentDetailedStatus::SurfaceHub2SProfileNotSupported),
            json!("surfaceHub2SProfileNotSupported")
        );
        assert_eq!(json!(EnrollmentState::NotContacted), json!("notContacted"));
    }
}

/// `importedWindowsAutopilotDeviceIdentityImportStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ImportedWindowsAutopilotDeviceIdentityImportStatus {
    Unknown,
    Pending,
    Partial,
    Complete,
    Error,
}

/// `importedWindowsAutopilotDeviceIdentityState`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImportedWindowsAutopilotDeviceIdentityState {
    pub device_error_code: i32,
    pub device_error_name: String,
    pub device_import_status: ImportedWindowsAutopilotDeviceIdentityImportStatus,
    pub device_registration_id: String,
}

/// `importedWindowsAutopilotDeviceIdentity`, as the service returns it. `hardwareIdentifier` is
/// standard base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImportedWindowsAutopilotDeviceIdentity {
    pub id: String,
    pub assigned_user_principal_name: String,
    pub group_tag: String,
    pub hardware_identifier: String,
    pub import_id: String,
    pub product_key: String,
    pub serial_number: String,
    pub state: ImportedWindowsAutopilotDeviceIdentityState,
}

/// An imported identity as clients send it. Accepted as the real scripts send it: with
/// `@odata.type`, with `orderIdentifier` (older module versions) instead of `groupTag`, and with a
/// client-made `state`, which the service ignores.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewImportedWindowsAutopilotDeviceIdentity {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub group_tag: Option<String>,
    #[serde(default)]
    pub order_identifier: Option<String>,
    #[serde(default)]
    pub product_key: Option<String>,
    #[serde(default)]
    pub import_id: Option<String>,
    #[serde(default)]
    pub hardware_identifier: Option<String>,
    #[serde(default)]
    pub assigned_user_principal_name: Option<String>,
    #[serde(default)]
    pub state: Option<serde_json::Value>,
}

/// A `windowsAutopilotDeviceIdentity` as `POST windowsAutopilotDeviceIdentities` receives it.
/// Every documented property is accepted, in both versions' spellings, so that the docs'
/// examples and the SDKs' models (which send what they were given) parse; the server decides
/// which it honours. Unknown properties are refused. Strings may be null.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWindowsAutopilotDeviceIdentity {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub group_tag: Option<String>,
    /// The older name of `groupTag`, in earlier beta examples.
    #[serde(default)]
    pub order_identifier: Option<String>,
    #[serde(default)]
    pub purchase_order_identifier: Option<String>,
    #[serde(default)]
    pub product_key: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub addressable_user_name: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub enrollment_state: Option<EnrollmentState>,
    #[serde(default)]
    pub last_contacted_date_time: Option<String>,
    #[serde(default)]
    pub sku_number: Option<String>,
    #[serde(default)]
    pub system_family: Option<String>,
    #[serde(default)]
    pub azure_active_directory_device_id: Option<String>,
    #[serde(default)]
    pub managed_device_id: Option<String>,
    #[serde(default)]
    pub azure_ad_device_id: Option<String>,
    #[serde(default)]
    pub deployment_profile_assignment_status: Option<WindowsAutopilotProfileAssignmentStatus>,
    #[serde(default)]
    pub deployment_profile_assignment_detailed_status: Option<WindowsAutopilotProfileAssignmentDetailedStatus>,
    #[serde(default)]
    pub deployment_profile_assigned_date_time: Option<String>,
    #[serde(default)]
    pub device_account_upn: Option<String>,
    #[serde(default)]
    pub device_account_password: Option<String>,
    #[serde(default)]
    pub device_friendly_name: Option<String>,
    #[serde(default)]
    pub remediation_state: Option<WindowsAutopilotDeviceRemediationState>,
    #[serde(default)]
    pub remediation_state_last_modified_date_time: Option<String>,
    #[serde(default)]
    pub userless_enrollment_status: Option<WindowsAutopilotUserlessEnrollmentStatus>,
}

/// The body of the `import` action.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    pub imported_windows_autopilot_device_identities: Vec<NewImportedWindowsAutopilotDeviceIdentity>,
}

/// `deletedWindowsAutopilotDeviceState` (beta): one serial number's result in what the
/// `deleteDevices` action answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeletedWindowsAutopilotDeviceState {
    pub serial_number: String,
    pub device_registration_id: String,
    pub deletion_state: String,
    pub error_message: String,
}
