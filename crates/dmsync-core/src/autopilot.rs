//! Windows Autopilot: the sync state machine, registrations (the deployment service's records)
//! and the device identities a sync produces.

use crate::TenantId;
use crate::ids::{AutopilotDeviceId, DeploymentProfileId, ImportedDeviceId, JobId};
use crate::profile_assignment::ProfileAssignmentStatus;
use crate::query::ListQuery;
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

impl AutopilotSettings {
    /// The cooldown left when a manual sync asked for at `now` is certainly a 429, seen from
    /// this state alone; `None` when only the store's atomic decision can tell (a sync may start,
    /// or one is in progress, which is a 409).
    ///
    /// Why this state is enough: a sync starts only when the status is not `inProgress` and the
    /// anchor is at least `cooldown` old, and starting moves the anchor to the start time; a
    /// completed import only moves the anchor forward. So once a state shows "not in progress,
    /// anchor T", no sync can start before T + cooldown, on any replica, and the conditional
    /// update would refuse with this very remainder.
    pub fn certain_cooldown(&self, now: OffsetDateTime, cooldown: Duration) -> Option<Duration> {
        if self.sync_status == SyncStatus::InProgress {
            return None;
        }
        let ends = self.cooldown_anchor? + cooldown;
        (now < ends).then(|| ends - now)
    }
}

/// The outcome of `POST …/windowsAutopilotSettings/sync`, decided by one atomic conditional
/// update in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDecision {
    /// `lastManualSyncTriggerDateTime` was stamped, the status set to `inProgress` and a sync job
    /// enqueued, all in one transaction.
    Started { job_id: JobId },
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
    /// The hardware hash is longer than [`crate::limits::MAX_HARDWARE_HASH_BASE64`].
    HardwareHashTooLong,
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
            RegistrationProblem::HardwareHashTooLong => "hardwareHashTooLong",
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
            RegistrationProblem::HardwareHashTooLong => {
                "The hardware hash is longer than 65536 characters of base64 (see docs/GRAPH-COMPAT.md)."
            }
            RegistrationProblem::DuplicateInRequest => {
                "The serial number or hardware hash appears more than once in this request."
            }
            RegistrationProblem::HashRegisteredToOtherTenant => "The hardware hash is registered to another tenant.",
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
    pub id: AutopilotDeviceId,
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
    pub device_account_upn: String,
    pub device_account_password: String,
    pub device_friendly_name: String,
    /// The resource account of a Surface Hub or Teams Room device (`resourceName`).
    pub resource_name: String,
    /// `azureActiveDirectoryDeviceId`: the `deviceId` of the Entra device object created with
    /// the device. `None` only where a page left the field out (`ListQuery::only`).
    pub azure_ad_device_id: Option<Uuid>,
    /// Set while a deletion requested through Graph waits for its background job.
    pub deletion_requested_at: Option<OffsetDateTime>,
    /// The deployment profile the assignment engine chose for the device (`intendedDeploymentProfile`).
    pub intended_profile_id: Option<DeploymentProfileId>,
    /// The profile assigned once the assignment delay passed (`deploymentProfile`).
    pub assigned_profile_id: Option<DeploymentProfileId>,
    /// `deploymentProfileAssignmentStatus`.
    pub profile_assignment_status: ProfileAssignmentStatus,
    /// `deploymentProfileAssignedDateTime`.
    pub profile_assigned_at: Option<OffsetDateTime>,
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
    DeploymentProfileAssignmentStatus,
}

/// A page of devices.
pub type DeviceQuery = ListQuery<DeviceField>;

/// The imported-identity properties a list can be filtered and ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportedField {
    Id,
    SerialNumber,
    GroupTag,
    ProductKey,
    ImportId,
    AssignedUserPrincipalName,
}

/// A page of imported identities.
pub type ImportedQuery = ListQuery<ImportedField>;

/// `importedWindowsAutopilotDeviceIdentityImportStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Unknown,
    Pending,
    Partial,
    Complete,
    Error,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Unknown => "unknown",
            ImportStatus::Pending => "pending",
            ImportStatus::Partial => "partial",
            ImportStatus::Complete => "complete",
            ImportStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<ImportStatus> {
        Some(match s {
            "unknown" => ImportStatus::Unknown,
            "pending" => ImportStatus::Pending,
            "partial" => ImportStatus::Partial,
            "complete" => ImportStatus::Complete,
            "error" => ImportStatus::Error,
            _ => return None,
        })
    }
}

/// Errors the deployment service reports for an import, as `deviceErrorCode`/`deviceErrorName`.
pub mod import_errors {
    /// The hardware hash is already registered in this tenant.
    pub const ALREADY_ASSIGNED: (i32, &str) = (806, "ZtdDeviceAlreadyAssigned");
    /// The hardware hash is registered in another tenant.
    pub const ASSIGNED_TO_OTHER_TENANT: (i32, &str) = (808, "ZtdDeviceAssignedToOtherTenant");
    /// The hardware hash is not a usable hash. Microsoft publishes no number for this error;
    /// 807 is dmsync's choice (docs/GRAPH-COMPAT.md).
    pub const BAD_HARDWARE_HASH: (i32, &str) = (807, "ZtdDeviceBadHardwareHash");
    /// Hashes shorter than this are refused with `BAD_HARDWARE_HASH`.
    pub const MIN_HASH_BYTES: usize = 4;
}

/// A device to import, as validated from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImportedDevice {
    pub serial_number: String,
    pub group_tag: String,
    pub product_key: String,
    pub hardware_hash: Vec<u8>,
    pub assigned_user_principal_name: String,
}

/// A device created directly through Graph (`POST windowsAutopilotDeviceIdentities`), as
/// validated from the request. It is registered like an imported device, but without a hardware
/// hash: the request carries none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAutopilotDevice {
    pub serial_number: String,
    pub manufacturer: String,
    pub model: String,
    pub group_tag: String,
    pub purchase_order_identifier: String,
    pub product_key: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub addressable_user_name: String,
    pub resource_name: String,
    pub device_account_upn: String,
    pub device_account_password: String,
    pub device_friendly_name: String,
}

/// Why a direct creation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCreationRefusal {
    /// The tenant already has a registration with this serial number (Intune's 806,
    /// `ZtdDeviceAlreadyAssigned`).
    SerialNumberRegistered,
}

/// An `importedWindowsAutopilotDeviceIdentity` and its processing state.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedDevice {
    pub tenant_id: TenantId,
    pub id: ImportedDeviceId,
    pub import_id: String,
    pub serial_number: String,
    pub group_tag: String,
    pub product_key: String,
    pub hardware_hash: Vec<u8>,
    pub assigned_user_principal_name: String,
    pub status: ImportStatus,
    pub device_registration_id: Option<AutopilotDeviceId>,
    pub error_code: i32,
    pub error_name: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Counts from processing one import job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub completed: u64,
    pub failed: u64,
    /// The serial numbers of [`ForcedImportError`]s that met a pending import.
    pub forced: Vec<String>,
}

/// An error an import of `serial_number` is to end in whatever it holds: a fault a tester asked
/// for (the server's `control::faults`), so that scripts can be tried against every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedImportError {
    pub serial_number: String,
    pub code: i32,
}

impl ForcedImportError {
    /// The `deviceErrorName` the code goes with: the deployment service's own for the codes
    /// dmsync knows, a generic one otherwise.
    pub fn name(&self) -> &'static str {
        use import_errors::*;
        [ALREADY_ASSIGNED, ASSIGNED_TO_OTHER_TENANT, BAD_HARDWARE_HASH]
            .into_iter()
            .find(|(code, _)| *code == self.code)
            .map_or("ZtdDeviceImportFailed", |(_, name)| name)
    }
}

/// The outcome of `DELETE …/windowsAutopilotDeviceIdentities/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionRequest {
    /// The device will be deregistered by a background job.
    Accepted {
        device_id: AutopilotDeviceId,
    },
    /// A deletion was already requested and has not finished.
    AlreadyInProgress {
        device_id: AutopilotDeviceId,
    },
    NotFound,
}

/// What `updateDeviceProperties`, `assignUserToDevice` and `unassignUserFromDevice` change.
/// `None` leaves a property as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePropertiesUpdate {
    pub user_principal_name: Option<String>,
    pub addressable_user_name: Option<String>,
    pub group_tag: Option<String>,
    pub display_name: Option<String>,
    pub device_account_upn: Option<String>,
    pub device_account_password: Option<String>,
    pub device_friendly_name: Option<String>,
    pub resource_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sync_status: SyncStatus, cooldown_anchor: Option<OffsetDateTime>) -> AutopilotSettings {
        AutopilotSettings {
            tenant_id: TenantId::from_uuid(Uuid::nil()),
            id: Uuid::nil(),
            last_sync: None,
            last_manual_sync_trigger: cooldown_anchor,
            sync_status,
            cooldown_anchor,
        }
    }

    #[test]
    fn a_429_is_certain_only_inside_the_cooldown_of_a_sync_that_is_not_running() {
        let anchor = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let cooldown = Duration::minutes(10);
        let at = |seconds: i64| anchor + Duration::seconds(seconds);
        for status in [SyncStatus::Completed, SyncStatus::Failed, SyncStatus::Unknown] {
            let s = settings(status, Some(anchor));
            assert_eq!(s.certain_cooldown(at(0), cooldown), Some(Duration::minutes(10)));
            assert_eq!(s.certain_cooldown(at(599), cooldown), Some(Duration::seconds(1)));
            // From anchor + cooldown on, the conditional update starts a sync.
            assert_eq!(s.certain_cooldown(at(600), cooldown), None);
            assert_eq!(s.certain_cooldown(at(601), cooldown), None);
        }
        // In progress is a 409, never a 429, inside the cooldown or not.
        let running = settings(SyncStatus::InProgress, Some(anchor));
        assert_eq!(running.certain_cooldown(at(1), cooldown), None);
        assert_eq!(running.certain_cooldown(at(900), cooldown), None);
        // Never synced: nothing to cool down from.
        assert_eq!(settings(SyncStatus::Unknown, None).certain_cooldown(at(0), cooldown), None);
    }
}
