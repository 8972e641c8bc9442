//! Entra ID directory objects: `device`.

use serde::Serialize;

use crate::GraphDateTime;

/// An Entra ID device object, as `GET /devices` shows one that Windows Autopilot created before
/// the device was ever enrolled: what enrollment, sign-in and management would fill in is `null`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub id: String,
    pub deleted_date_time: Option<GraphDateTime>,
    pub account_enabled: bool,
    pub approximate_last_sign_in_date_time: Option<GraphDateTime>,
    pub compliance_expiration_date_time: Option<GraphDateTime>,
    pub created_date_time: GraphDateTime,
    pub device_category: Option<String>,
    pub device_id: String,
    pub device_metadata: Option<String>,
    pub device_ownership: Option<String>,
    pub device_version: Option<i32>,
    pub display_name: String,
    pub enrollment_profile_name: Option<String>,
    pub enrollment_type: Option<String>,
    pub is_compliant: Option<bool>,
    pub is_managed: Option<bool>,
    pub management_type: Option<String>,
    pub manufacturer: Option<String>,
    pub mdm_app_id: Option<String>,
    pub model: Option<String>,
    pub on_premises_last_sync_date_time: Option<GraphDateTime>,
    pub on_premises_security_identifier: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
    pub operating_system: String,
    pub operating_system_version: Option<String>,
    pub physical_ids: Vec<String>,
    pub profile_type: Option<String>,
    pub registration_date_time: Option<GraphDateTime>,
    pub system_labels: Vec<String>,
    pub trust_type: String,
}
