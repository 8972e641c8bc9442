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
    pub extension_attributes: OnPremisesExtensionAttributes,
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

/// `onPremisesExtensionAttributes`: a device's `extensionAttributes`, fifteen strings an
/// administrator or an on-premises directory may set. Nothing sets them on the objects Autopilot
/// creates, so each is `null`, as Entra shows an unset one; the object itself is always present.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OnPremisesExtensionAttributes {
    #[serde(rename = "extensionAttribute1")]
    pub extension_attribute_1: Option<String>,
    #[serde(rename = "extensionAttribute2")]
    pub extension_attribute_2: Option<String>,
    #[serde(rename = "extensionAttribute3")]
    pub extension_attribute_3: Option<String>,
    #[serde(rename = "extensionAttribute4")]
    pub extension_attribute_4: Option<String>,
    #[serde(rename = "extensionAttribute5")]
    pub extension_attribute_5: Option<String>,
    #[serde(rename = "extensionAttribute6")]
    pub extension_attribute_6: Option<String>,
    #[serde(rename = "extensionAttribute7")]
    pub extension_attribute_7: Option<String>,
    #[serde(rename = "extensionAttribute8")]
    pub extension_attribute_8: Option<String>,
    #[serde(rename = "extensionAttribute9")]
    pub extension_attribute_9: Option<String>,
    #[serde(rename = "extensionAttribute10")]
    pub extension_attribute_10: Option<String>,
    #[serde(rename = "extensionAttribute11")]
    pub extension_attribute_11: Option<String>,
    #[serde(rename = "extensionAttribute12")]
    pub extension_attribute_12: Option<String>,
    #[serde(rename = "extensionAttribute13")]
    pub extension_attribute_13: Option<String>,
    #[serde(rename = "extensionAttribute14")]
    pub extension_attribute_14: Option<String>,
    #[serde(rename = "extensionAttribute15")]
    pub extension_attribute_15: Option<String>,
}
