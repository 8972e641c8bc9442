//! `deviceManagementExchangeConnector` and its enums. The `managedDevice` an Exchange ActiveSync
//! device becomes is in `managed_device`.

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
