//! Windows Autopilot: the sync state machine, registrations (the deployment service's records)
//! and the device identities a sync produces.

use crate::TenantId;
use crate::filter::Filter;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    Unknown,
    InProgress,
    Completed,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Unknown => "unknown",
            SyncStatus::InProgress => "inProgress",
            SyncStatus::Completed => "completed",
            SyncStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<SyncStatus> {
        Some(match s {
            "unknown" => SyncStatus::Unknown,
            "inProgress" => SyncStatus::InProgress,
            "completed" => SyncStatus::Completed,
            "failed" => SyncStatus::Failed,
            _ => return None,
        })
    }
}

/// The tenant's `windowsAutopilotSettings` singleton.
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotSettings {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub last_sync: Option<OffsetDateTime>,
    pub last_manual_sync_trigger: Option<OffsetDateTime>,
    pub sync_status: SyncStatus,
    /// When the last sync of any origin started (a manual sync, or a completed import). The
    /// ten-minute cooldown is measured from here.
    pub cooldown_anchor: Option<OffsetDateTime>,
}

/// The outcome of `POST …/windowsAutopilotSettings/sync`, decided by one atomic conditional
/// update in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDecision {
    /// `lastManualSyncTriggerDateTime` was stamped, the status set to `inProgress` and a sync job
    /// enqueued, all in one transaction.
    Started { job_id: Uuid },
    /// A sync is running: 409.
    AlreadyInProgress,
    /// The previous sync started less than the cooldown ago: 429.
    CoolingDown { remaining: Duration },
}

/// How a sync job ended, as recorded on the settings row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Completed,
    Failed,
}

/// A device registered with the Autopilot deployment service (by an OEM, a partner, or an
/// import). A sync turns the tenant's registrations into device identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    pub serial_number: String,
    pub hardware_hash: Vec<u8>,
    pub manufacturer: String,
    pub model: String,
    pub group_tag: String,
    pub purchase_order_identifier: String,
    pub product_key: String,
}

/// Why one registration row was refused. Rows are reported by their position in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRejection {
    /// 1-based position of the row in the request (the line number for CSV, after the header).
    pub line: u64,
    pub serial_number: String,
    pub reason: RegistrationProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationProblem {
    MissingSerialNumber,
    MissingHardwareHash,
    InvalidHardwareHash,
    /// The same serial number or hardware hash appears twice in one request.
    DuplicateInRequest,
    /// The hardware hash is registered in another tenant. A hash belongs to at most one tenant.
    HashRegisteredToOtherTenant,
    /// The hardware hash is registered in this tenant under another serial number.
    HashRegisteredToOtherSerial,
}

impl RegistrationProblem {
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationProblem::MissingSerialNumber => "missingSerialNumber",
            RegistrationProblem::MissingHardwareHash => "missingHardwareHash",
            RegistrationProblem::InvalidHardwareHash => "invalidHardwareHash",
            RegistrationProblem::DuplicateInRequest => "duplicateInRequest",
            RegistrationProblem::HashRegisteredToOtherTenant => "hashRegisteredToOtherTenant",
            RegistrationProblem::HashRegisteredToOtherSerial => "hashRegisteredToOtherSerial",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            RegistrationProblem::MissingSerialNumber => "The serial number is empty.",
            RegistrationProblem::MissingHardwareHash => "The hardware hash is empty.",
            RegistrationProblem::InvalidHardwareHash => "The hardware hash is not valid base64.",
            RegistrationProblem::DuplicateInRequest => {
                "The serial number or hardware hash appears more than once in this request."
            }
            RegistrationProblem::HashRegisteredToOtherTenant => {
                "The hardware hash is registered to another tenant."
            }
            RegistrationProblem::HashRegisteredToOtherSerial => {
                "The hardware hash is registered in this tenant under another serial number."
            }
        }
    }
}

/// What a successful registration request changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrationSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Counts from one reconciliation of registrations into device identities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentState {
    Unknown,
    Enrolled,
    PendingReset,
    Failed,
    NotContacted,
    Blocked,
}

impl EnrollmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Unknown => "unknown",
            EnrollmentState::Enrolled => "enrolled",
            EnrollmentState::PendingReset => "pendingReset",
            EnrollmentState::Failed => "failed",
            EnrollmentState::NotContacted => "notContacted",
            EnrollmentState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<EnrollmentState> {
        Some(match s {
            "unknown" => EnrollmentState::Unknown,
            "enrolled" => EnrollmentState::Enrolled,
            "pendingReset" => EnrollmentState::PendingReset,
            "failed" => EnrollmentState::Failed,
            "notContacted" => EnrollmentState::NotContacted,
            "blocked" => EnrollmentState::Blocked,
            _ => return None,
        })
    }
}

/// A `windowsAutopilotDeviceIdentity` as the domain knows it. Properties copied from the
/// registration are refreshed by every sync; the rest belong to Intune.
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotDevice {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub serial_number: String,
    pub manufacturer: String,
    pub model: String,
    pub group_tag: String,
    pub purchase_order_identifier: String,
    pub product_key: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub addressable_user_name: String,
    pub enrollment_state: EnrollmentState,
    pub last_contacted: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// The device properties a list can be filtered and ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceField {
    Id,
    SerialNumber,
    GroupTag,
    Model,
    Manufacturer,
    DisplayName,
    UserPrincipalName,
    AddressableUserName,
    EnrollmentState,
    PurchaseOrderIdentifier,
    ProductKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// Where the previous page ended: the sort value of its last device (when ordered by a
/// property) and that device's id, which breaks ties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCursor {
    pub sort_value: Option<String>,
    pub id: Uuid,
}

/// One page of a device list: keyset-paged, so a page costs the same at any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceQuery {
    pub filter: Option<Filter<DeviceField>>,
    pub order_by: Option<(DeviceField, SortDirection)>,
    pub after: Option<DeviceCursor>,
    pub limit: u32,
}

impl DeviceQuery {
    pub fn first(limit: u32) -> DeviceQuery {
        DeviceQuery { filter: None, order_by: None, after: None, limit }
    }
}
