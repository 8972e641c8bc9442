//! Entra ID directory objects: `device` and `group`, and the reference a `$ref` write sends.

use serde::{Deserialize, Serialize};

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

/// An Entra ID group, with the properties Graph returns by default for a security group; what
/// belongs to Microsoft 365 groups, on-premises synchronisation and licensing is `null` or empty
/// (docs/GRAPH-COMPAT.md, "Groups").
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub deleted_date_time: Option<GraphDateTime>,
    pub classification: Option<String>,
    pub created_date_time: GraphDateTime,
    pub creation_options: Vec<String>,
    pub description: Option<String>,
    pub display_name: String,
    pub expiration_date_time: Option<GraphDateTime>,
    pub group_types: Vec<String>,
    pub is_assignable_to_role: Option<bool>,
    pub mail: Option<String>,
    pub mail_enabled: bool,
    pub mail_nickname: String,
    pub membership_rule: Option<String>,
    pub membership_rule_processing_state: Option<String>,
    pub on_premises_domain_name: Option<String>,
    pub on_premises_last_sync_date_time: Option<GraphDateTime>,
    pub on_premises_net_bios_name: Option<String>,
    pub on_premises_sam_account_name: Option<String>,
    pub on_premises_security_identifier: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
    pub preferred_data_location: Option<String>,
    pub preferred_language: Option<String>,
    pub proxy_addresses: Vec<String>,
    pub renewed_date_time: GraphDateTime,
    pub resource_behavior_options: Vec<String>,
    pub resource_provisioning_options: Vec<String>,
    pub security_enabled: bool,
    pub security_identifier: String,
    pub theme: Option<String>,
    pub visibility: Option<String>,
    pub on_premises_provisioning_errors: Vec<OnPremisesProvisioningError>,
}

/// An error Entra met while synchronising an object from on-premises Active Directory. dmsync
/// synchronises nothing, so a group's list of them is always empty; the type gives the OpenAPI
/// document the items' shape.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OnPremisesProvisioningError {
    pub category: Option<String>,
    pub occurred_date_time: Option<GraphDateTime>,
    pub property_causing_error: Option<String>,
    pub value: Option<String>,
}

/// A group as clients send it (create and PATCH). Entra's other writable properties (and the
/// read-only ones a client sends back) are accepted and ignored, as a backup tool round-trips
/// whole objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GroupInput {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    #[serde(default)]
    pub security_enabled: Option<bool>,
    #[serde(default)]
    pub group_types: Option<Vec<String>>,
    #[serde(default)]
    pub membership_rule: Option<String>,
    #[serde(default)]
    pub membership_rule_processing_state: Option<String>,
    /// Devices to add, as `@odata.id` references (`https://graph.microsoft.com/v1.0/directoryObjects/{id}`).
    #[serde(default, rename = "members@odata.bind")]
    pub members_bind: Option<Vec<String>>,
}

/// The body of `POST …/members/$ref`: the reference to the object to add.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReferenceInput {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}
