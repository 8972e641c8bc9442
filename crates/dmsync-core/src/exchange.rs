//! Exchange connectors: the connection to an Exchange organization's mobile-device inventory,
//! its sync (full or delta), and the Exchange ActiveSync devices a sync discovers. Microsoft
//! documents little of the sync beyond its signature; this is dmsync's design
//! (docs/GRAPH-COMPAT.md, "Exchange connectors").

use time::OffsetDateTime;

use crate::TenantId;
use crate::ids::{ConnectorId, EasDeviceId, JobId};
use crate::query::ListQuery;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }
    };
}

wire_enum!(
    /// `deviceManagementExchangeConnectorStatus`.
    ConnectorStatus {
        None => "none",
        ConnectionPending => "connectionPending",
        Connected => "connected",
        Disconnected => "disconnected",
        UnknownFutureValue => "unknownFutureValue",
    }
);

wire_enum!(
    /// `deviceManagementExchangeConnectorType`.
    ConnectorType {
        OnPremises => "onPremises",
        Hosted => "hosted",
        ServiceToService => "serviceToService",
        Dedicated => "dedicated",
        UnknownFutureValue => "unknownFutureValue",
    }
);

wire_enum!(
    /// `deviceManagementExchangeConnectorSyncType`.
    SyncType {
        FullSync => "fullSync",
        DeltaSync => "deltaSync",
    }
);

wire_enum!(
    /// `deviceManagementExchangeAccessState`.
    ExchangeAccessState {
        None => "none",
        Unknown => "unknown",
        Allowed => "allowed",
        Blocked => "blocked",
        Quarantined => "quarantined",
    }
);

/// Where a connector reads its Exchange organization's mobile devices from. Graph has no field
/// for this; it is set through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum ConnectorSource {
    /// A CSV or JSON file in the shape `Get-MobileDevice | Export-Csv` produces.
    File { path: String },
    /// An endpoint that answers the same records as JSON and supports `?changedSince=`.
    Http { url: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeConnector {
    pub tenant_id: TenantId,
    pub id: ConnectorId,
    pub last_sync: Option<OffsetDateTime>,
    pub status: ConnectorStatus,
    pub primary_smtp_address: String,
    pub server_name: String,
    pub connector_server_name: String,
    pub connector_type: ConnectorType,
    pub version: String,
    pub exchange_alias: String,
    pub exchange_organization: String,
    pub source: Option<ConnectorSource>,
    /// The largest `WhenChanged` seen by a successful sync: where the next delta starts.
    pub watermark: Option<OffsetDateTime>,
    /// When the last full and the last delta sync started (for the schedules).
    pub last_full_sync_start: Option<OffsetDateTime>,
    pub last_delta_sync_start: Option<OffsetDateTime>,
}

/// The client-writable properties of a connector; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorChanges {
    pub primary_smtp_address: Option<String>,
    pub server_name: Option<String>,
    pub connector_server_name: Option<String>,
    pub connector_type: Option<ConnectorType>,
    pub version: Option<String>,
    pub exchange_alias: Option<String>,
    pub exchange_organization: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorField {
    Id,
    Status,
    PrimarySmtpAddress,
    ServerName,
    ConnectorServerName,
    ExchangeConnectorType,
    Version,
    ExchangeAlias,
    ExchangeOrganization,
}

pub type ConnectorQuery = ListQuery<ConnectorField>;

/// The outcome of a sync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorSyncDecision {
    Started {
        job_id: JobId,
    },
    /// A sync of this connector is already running: 409.
    AlreadyRunning,
    NotFound,
}

/// One mobile device as the Exchange organization reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileDeviceRecord {
    /// `DeviceId`, the ActiveSync device id: the record's key within the organization.
    pub device_id: String,
    pub device_type: String,
    pub device_model: String,
    pub device_os: String,
    pub friendly_name: String,
    pub user_display_name: String,
    pub user_principal_name: String,
    pub email_address: String,
    pub access_state: ExchangeAccessState,
    pub access_state_reason: String,
    pub first_sync: Option<OffsetDateTime>,
    pub last_success_sync: Option<OffsetDateTime>,
    pub when_changed: Option<OffsetDateTime>,
}

/// An Exchange ActiveSync device discovered by a connector, shown as a `managedDevice`.
#[derive(Debug, Clone, PartialEq)]
pub struct EasDevice {
    pub tenant_id: TenantId,
    pub id: EasDeviceId,
    pub connector_id: ConnectorId,
    pub record: MobileDeviceRecord,
    pub enrolled_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManagedDeviceField {
    Id,
    DeviceName,
    UserPrincipalName,
    EmailAddress,
    OperatingSystem,
    OsVersion,
    Model,
    Manufacturer,
    EasDeviceId,
    ExchangeAccessState,
    ManagementAgent,
}

pub type ManagedDeviceQuery = ListQuery<ManagedDeviceField>;

/// What one connector sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectorSyncStats {
    /// The devices the sync read, each counted once.
    pub read: u64,
    pub upserted: u64,
    pub removed: u64,
}

impl MobileDeviceRecord {
    /// `deviceName`: the friendly name, else the model, else the ActiveSync id.
    pub fn device_name(&self) -> String {
        [&self.friendly_name, &self.device_model, &self.device_id]
            .into_iter()
            .find(|s| !s.trim().is_empty())
            .cloned()
            .unwrap_or_default()
    }

    /// `operatingSystem` and `osVersion` from Exchange's `DeviceOS` ("iOS 17.1.2 21B101").
    pub fn operating_system(&self) -> (String, String) {
        let mut words = self.device_os.split_whitespace();
        let os = words.next().unwrap_or("").to_owned();
        let version = words.next().unwrap_or("").to_owned();
        (os, version)
    }

    /// `manufacturer`, as far as Exchange's device type and model tell it.
    pub fn manufacturer(&self) -> String {
        let t = self.device_type.to_ascii_lowercase();
        let m = self.device_model.to_ascii_lowercase();
        if t.starts_with("iphone") || t.starts_with("ipad") || m.starts_with("iphone") || m.starts_with("ipad") {
            "Apple".into()
        } else if t.starts_with("samsung") || m.starts_with("sm-") {
            "Samsung".into()
        } else if t.contains("pixel") || m.contains("pixel") {
            "Google".into()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(device_type: &str, model: &str, os: &str, friendly: &str) -> MobileDeviceRecord {
        MobileDeviceRecord {
            device_id: "ABC".into(),
            device_type: device_type.into(),
            device_model: model.into(),
            device_os: os.into(),
            friendly_name: friendly.into(),
            user_display_name: String::new(),
            user_principal_name: String::new(),
            email_address: String::new(),
            access_state: ExchangeAccessState::Allowed,
            access_state_reason: String::new(),
            first_sync: None,
            last_success_sync: None,
            when_changed: None,
        }
    }

    #[test]
    fn derives_graph_properties_from_exchange_fields() {
        let r = record("iPhone", "iPhone15,2", "iOS 17.1.2 21B101", "");
        assert_eq!(r.device_name(), "iPhone15,2");
        assert_eq!(r.operating_system(), ("iOS".into(), "17.1.2".into()));
        assert_eq!(r.manufacturer(), "Apple");
        let r = record("Android", "SM-G991B", "Android 14.0.0", "Kim's phone");
        assert_eq!((r.device_name(), r.manufacturer()), ("Kim's phone".into(), "Samsung".into()));
        assert_eq!(record("", "", "", "").device_name(), "ABC");
        assert_eq!(ConnectorStatus::parse("connectionPending"), Some(ConnectorStatus::ConnectionPending));
        assert_eq!(SyncType::DeltaSync.as_str(), "deltaSync");
    }
}
