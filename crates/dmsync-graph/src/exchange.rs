//! `deviceManagementExchangeConnector`, its enums, and the `managedDevice` of an Exchange
//! ActiveSync device.

use serde::{Deserialize, Serialize};

use crate::GraphDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DeviceManagementExchangeConnectorStatus {
    None,
    ConnectionPending,
    Connected,
    Disconnected,
    UnknownFutureValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DeviceManagementExchangeConnectorType {
    OnPremises,
    Hosted,
    ServiceToService,
    Dedicated,
    UnknownFutureValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DeviceManagementExchangeConnectorSyncType {
    FullSync,
    DeltaSync,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceManagementExchangeConnector {
    pub id: String,
    pub connector_server_name: String,
    pub exchange_alias: String,
    pub exchange_connector_type: DeviceManagementExchangeConnectorType,
    pub exchange_organization: String,
    pub last_sync_date_time: GraphDateTime,
    pub primary_smtp_address: String,
    pub server_name: String,
    pub status: DeviceManagementExchangeConnectorStatus,
    pub version: String,
}

/// A connector as clients send it (create and PATCH). `id`, `lastSyncDateTime` and `status`
/// belong to the server: they are accepted, as the docs' own examples send them, and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceManagementExchangeConnectorInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub last_sync_date_time: Option<GraphDateTime>,
    #[serde(default)]
    pub status: Option<DeviceManagementExchangeConnectorStatus>,
    #[serde(default)]
    pub primary_smtp_address: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub connector_server_name: Option<String>,
    #[serde(default)]
    pub exchange_connector_type: Option<DeviceManagementExchangeConnectorType>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub exchange_alias: Option<String>,
    #[serde(default)]
    pub exchange_organization: Option<String>,
}

/// The body of the `sync` action. `syncType` is non-nullable in the metadata.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// Read as any JSON value so that a wrong one gets the server's own message; the schema
    /// says what is accepted.
    #[cfg_attr(feature = "schema", schemars(required, with = "DeviceManagementExchangeConnectorSyncType"))]
    pub sync_type: Option<serde_json::Value>,
}

/// The `managedDevice` properties dmsync fills for an Exchange ActiveSync device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ManagedDevice {
    pub id: String,
    pub compliance_state: String,
    pub device_enrollment_type: String,
    pub device_name: String,
    pub device_registration_state: String,
    pub eas_activated: bool,
    pub eas_activation_date_time: GraphDateTime,
    pub eas_device_id: String,
    pub email_address: String,
    pub enrolled_date_time: GraphDateTime,
    pub exchange_access_state: String,
    pub exchange_access_state_reason: String,
    pub exchange_last_successful_sync_date_time: GraphDateTime,
    pub last_sync_date_time: GraphDateTime,
    pub managed_device_owner_type: String,
    pub management_agent: String,
    pub manufacturer: String,
    pub model: String,
    pub operating_system: String,
    pub os_version: String,
    pub serial_number: String,
    pub user_display_name: String,
    pub user_principal_name: String,
}
