//! Storage traits. `dmsync-store` implements them on SQLite (and PostgreSQL); a conformance
//! suite there runs the same tests against each. Every method that touches tenant data takes the
//! tenant id, so no query can reach another tenant's rows.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::TenantId;
use crate::autopilot::{
    AutopilotDevice, AutopilotSettings, DeletionRequest, DeviceCreationRefusal, DeviceField, DevicePropertiesUpdate,
    DeviceQuery, ForcedImportError, ImportStats, ImportedDevice, ImportedField, ImportedQuery, NewAutopilotDevice,
    NewImportedDevice, NewRegistration, ReconcileStats, RegistrationRejection, RegistrationSummary, SyncDecision,
    SyncOutcome,
};
use crate::certificate::StoredCertificateAuthority;
use crate::deployment_profiles::{
    AssignmentTarget, DeploymentProfile, DeviceProfiles, ProfileAssignment, ProfileContent, ProfileField, ProfileQuery,
    ProfileRefusal,
};
use crate::device_codes::{DeviceCode, DeviceCodeDecision, DevicePoll};
use crate::entra::{EntraDevice, EntraDeviceField, EntraDeviceQuery};
use crate::error::StoreResult;
use crate::exchange::{
    ConnectorChanges, ConnectorField, ConnectorQuery, ConnectorSource, ConnectorSyncDecision, ConnectorSyncStats,
    EasDevice, ExchangeConnector, ManagedDeviceField, ManagedDeviceQuery, MobileDeviceRecord, SyncType,
};
use crate::filter::Filter;
use crate::groups::{EvaluationStats, Group, GroupField, GroupQuery, MemberChange};
use crate::identity::{AppCertificate, AppRegistration, AuthorizationCode, CodeRedemption, SigningKey, Tenant, User};
use crate::ids::{
    AutopilotDeviceId, ConnectorId, DeploymentProfileId, EasDeviceId, EntraDeviceId, GroupId, ImportedDeviceId, JobId,
    RoleScopeTagId,
};
use crate::jobs::{Job, JobLease, NewJob};
use crate::profile_assignment::{ForcedAssignmentFailures, ProfileAssignmentStats};
use crate::scope_tags::{RoleScopeTag, RoleScopeTagChanges, RoleScopeTagField, RoleScopeTagQuery, RoleScopeTagRefusal};
use crate::snapshots::{ResetScope, Snapshot, SnapshotName};

/// Whether other processes can share the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One process owns the database (SQLite): jobs found running at start-up belonged to a
    /// dead process and can be requeued at once, and nothing else writes behind a cache.
    SingleNode,
    /// Any number of replicas share it (PostgreSQL).
    Shared,
}

#[async_trait]
pub trait SystemStore: Send + Sync {
    fn topology(&self) -> Topology;
    /// A number that grows after every write this process commits, on a `SingleNode` store:
    /// what a reader saw while it was `n` is at least as new as generation `n`. `None` where
    /// other processes write too, so that nothing is cached behind their backs.
    fn write_generation(&self) -> Option<u64>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    async fn clock_offset(&self) -> StoreResult<Duration>;
    /// Persists the offset; it only ever grows.
    async fn save_clock_offset(&self, offset: Duration) -> StoreResult<()>;
    /// The local certificate authority, if one was ever stored.
    async fn certificate_authority(&self) -> StoreResult<Option<StoredCertificateAuthority>>;
    /// Stores `ca` unless a CA is stored already, and returns the one stored: the first writer
    /// wins, so replicas starting together on an empty database agree on one CA.
    async fn insert_certificate_authority(
        &self,
        ca: &StoredCertificateAuthority,
    ) -> StoreResult<StoredCertificateAuthority>;
    /// Closes the pool after the last writer is done.
    async fn close(&self);
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Creates the tenant with its built-in `Default` role scope tag, in one transaction.
    async fn create_tenant(&self, tenant: &Tenant, now: OffsetDateTime) -> StoreResult<()>;
    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>>;
    /// When the tenant was created: the `now` given to [`Self::create_tenant`], on the Clock.
    async fn tenant_created_at(&self, id: TenantId) -> StoreResult<Option<OffsetDateTime>>;
    async fn tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant_count(&self) -> StoreResult<u64>;
    /// The tenants by domain, at most `limit` of them.
    async fn list_tenants(&self, limit: u32) -> StoreResult<Vec<Tenant>>;
    async fn create_app(&self, app: &AppRegistration) -> StoreResult<()>;
    async fn app(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<Option<AppRegistration>>;
    /// The tenant's app registrations, by display name then client id.
    async fn list_apps(&self, tenant: TenantId) -> StoreResult<Vec<AppRegistration>>;
    /// Removes the app with its certificates; false when the tenant has no such app.
    async fn delete_app(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<bool>;
    /// Replaces the app's client secret hash; false when the tenant has no such app.
    async fn set_app_secret(&self, tenant: TenantId, client_id: Uuid, secret_hash: &str) -> StoreResult<bool>;
    /// Registers a certificate to the app. `NotFound` when the tenant has no such app,
    /// `AlreadyExists` when the app has that certificate already.
    async fn add_app_certificate(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        cert: &AppCertificate,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The app's certificates, oldest first.
    async fn app_certificates(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<Vec<AppCertificate>>;
    /// Removes the certificate with that SHA-1 thumbprint; false when the app has none.
    async fn delete_app_certificate(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        thumbprint_sha1: &str,
    ) -> StoreResult<bool>;
    /// Records that the app used the client assertion `jti`, until `expires_at`: true the first
    /// time, false when it was recorded before and has not expired (a replay). Records that
    /// expired before `now` are forgotten on the way, so the table holds only live assertions.
    async fn consume_assertion(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        jti: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>>;
    /// Replaces the user's password hash; false when the tenant has no such user.
    async fn set_user_password(&self, tenant: TenantId, object_id: Uuid, password_hash: &str) -> StoreResult<bool>;
    /// Removes the user; false when the tenant has no such user.
    async fn delete_user(&self, tenant: TenantId, object_id: Uuid) -> StoreResult<bool>;
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    /// Inserts the key only while there is no key at all, as one atomic step even across
    /// processes; false when another process (a replica starting at the same time) was first.
    async fn insert_first_signing_key(&self, key: &SigningKey) -> StoreResult<bool>;
}

/// The authorization codes of the `authorize` endpoint, one-time and short-lived.
#[async_trait]
pub trait AuthorizationCodeStore: Send + Sync {
    /// Stores a new code, and removes the codes that expired before `now`.
    async fn insert_authorization_code(&self, code: &AuthorizationCode, now: OffsetDateTime) -> StoreResult<()>;
    /// Marks the code with this hash redeemed, atomically: of two concurrent redemptions of one
    /// code, exactly one gets [`CodeRedemption::Redeemed`]. Expiry is the caller's to check.
    async fn redeem_authorization_code(&self, code_hash: &str, now: OffsetDateTime) -> StoreResult<CodeRedemption>;
}

#[async_trait]
pub trait AutopilotStore: Send + Sync {
    /// Adds or updates registrations (keyed by serial number within the tenant). All or
    /// nothing: if any row is refused, nothing is written and every refused row is returned.
    async fn put_registrations(
        &self,
        tenant: TenantId,
        rows: &[NewRegistration],
        now: OffsetDateTime,
    ) -> StoreResult<Result<RegistrationSummary, Vec<RegistrationRejection>>> {
        let mut import = self.begin_registrations(tenant).await?;
        let numbered: Vec<(u64, NewRegistration)> =
            rows.iter().enumerate().map(|(i, r)| (i as u64 + 1, r.clone())).collect();
        import.stage(&numbered).await?;
        import.commit(now).await
    }

    /// Starts an all-or-nothing registration upload of any size: rows are staged in batches as
    /// they arrive, then checked and applied at `commit`. Nothing is visible before the commit,
    /// and dropping the import without committing writes nothing.
    async fn begin_registrations(&self, tenant: TenantId) -> StoreResult<Box<dyn RegistrationImport>>;

    /// Deregisters a device by serial number. Its device identity goes at the next sync.
    /// Returns false when the tenant has no such registration.
    async fn delete_registration(&self, tenant: TenantId, serial_number: &str) -> StoreResult<bool>;

    /// Brings the tenant's device identities in line with its registrations, with set-based
    /// statements over chunks of the registrations, each chunk its own transaction. After each
    /// chunk `progress` hears the totals so far and the rows covered; returning false stops at
    /// that safe point (the result is then `None`). Idempotent: a stopped or crashed run that is
    /// run again converges.
    async fn reconcile_autopilot_devices_with_progress(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
    ) -> StoreResult<Option<ReconcileStats>>;

    /// [`Self::reconcile_autopilot_devices_with_progress`] to the end, without reporting.
    async fn reconcile_autopilot_devices(&self, tenant: TenantId, now: OffsetDateTime) -> StoreResult<ReconcileStats> {
        let stats = self.reconcile_autopilot_devices_with_progress(tenant, now, &|_, _| true).await?;
        Ok(stats.expect("a reconciliation that is never stopped finishes"))
    }

    /// One page of devices: filtered, ordered by the chosen property then id (or by id alone),
    /// and starting after the cursor (keyset paging).
    async fn list_autopilot_devices(&self, tenant: TenantId, query: &DeviceQuery) -> StoreResult<Vec<AutopilotDevice>>;

    /// How many devices match the filter.
    async fn count_autopilot_devices(&self, tenant: TenantId, filter: Option<&Filter<DeviceField>>)
    -> StoreResult<u64>;

    async fn autopilot_device(&self, tenant: TenantId, id: AutopilotDeviceId) -> StoreResult<Option<AutopilotDevice>>;

    /// Updates Intune-side device properties; `group_tag` also updates the registration, so
    /// that the next sync keeps it. False when the device does not exist.
    async fn update_autopilot_device(
        &self,
        tenant: TenantId,
        id: AutopilotDeviceId,
        update: &DevicePropertiesUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Creates a device directly, as `POST windowsAutopilotDeviceIdentities` does: its
    /// registration, the device and its Entra object in one transaction, so the next sync keeps
    /// it. Refused when the tenant already has a registration with the serial number.
    async fn create_autopilot_device(
        &self,
        tenant: TenantId,
        device: &NewAutopilotDevice,
        now: OffsetDateTime,
    ) -> StoreResult<Result<AutopilotDevice, DeviceCreationRefusal>>;

    /// Marks a device for deletion and enqueues its deregistration job at `run_at`, in one
    /// transaction; a second request while that is pending is refused.
    async fn request_device_deletion(
        &self,
        tenant: TenantId,
        id: AutopilotDeviceId,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<DeletionRequest>;

    /// The device ids of these serial numbers in the tenant (absent serials are left out).
    async fn device_ids_by_serial(
        &self,
        tenant: TenantId,
        serials: &[String],
    ) -> StoreResult<Vec<(String, AutopilotDeviceId)>>;

    /// Deletes the device and its registration, and completes the job, fenced by the lease.
    async fn deregister_device(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: AutopilotDeviceId,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Stores imported identities with status `unknown` and enqueues their processing job at
    /// `run_at`, in one transaction.
    async fn create_imports(
        &self,
        tenant: TenantId,
        import_id: &str,
        rows: &[NewImportedDevice],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<Vec<ImportedDevice>>;

    async fn list_imported_devices(&self, tenant: TenantId, query: &ImportedQuery) -> StoreResult<Vec<ImportedDevice>>;
    async fn count_imported_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ImportedField>>,
    ) -> StoreResult<u64>;
    async fn imported_device(&self, tenant: TenantId, id: ImportedDeviceId) -> StoreResult<Option<ImportedDevice>>;
    async fn delete_imported_device(&self, tenant: TenantId, id: ImportedDeviceId) -> StoreResult<bool>;
}

/// The four methods that read or change the Autopilot settings singleton. Not part of
/// [`Store`]: the server wraps a backend's in its settings cache and hands handlers a `Store`
/// without them, so no write can bypass the cache.
#[async_trait]
pub trait AutopilotSettingsStore: Send + Sync {
    /// The tenant's settings singleton, created on first read.
    async fn autopilot_settings(&self, tenant: TenantId) -> StoreResult<AutopilotSettings>;

    /// Decides a manual sync request atomically: 409 while in progress, 429 inside the
    /// cooldown, otherwise stamp, set `inProgress` and enqueue the sync job in one transaction.
    async fn trigger_autopilot_sync(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        cooldown: Duration,
        job: &NewJob,
    ) -> StoreResult<SyncDecision>;

    /// Records the end of a sync job and completes the job, in one transaction, fenced by the
    /// lease. Returns false (and changes nothing) when the lease is no longer ours.
    async fn finish_autopilot_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        outcome: SyncOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Processes the job's imports with set-based statements: bad hashes (807), hashes of
    /// another tenant (808) and hashes or serials already registered here (806) end in `error`;
    /// the rest are registered, their devices created, and marked `complete` with
    /// `deviceRegistrationId` = the device id, all in one transaction with the job's fenced
    /// completion, so a device is readable no later than its import reads `complete`. When
    /// `counts_as_sync` and anything completed, the tenant's sync cooldown restarts at `now`.
    /// When anything completed, `follow_up` (the profile assignment pass that the new devices
    /// may come under) is enqueued for `now`, coalesced, in the same transaction.
    /// The pending imports of a serial in `forced` end in its error before anything else is
    /// checked; the stats name the serials that met one.
    /// `None` when the lease is no longer ours (nothing changed).
    async fn process_imports(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
        follow_up: &NewJob,
        forced: &[ForcedImportError],
    ) -> StoreResult<Option<ImportStats>>;
}

/// A registration upload in progress; see [`AutopilotStore::begin_registrations`].
#[async_trait]
pub trait RegistrationImport: Send {
    /// Stages rows, each with its line number in the upload (reported back if refused).
    async fn stage(&mut self, rows: &[(u64, NewRegistration)]) -> StoreResult<()>;
    /// Checks every staged row against each other and the registrations of all tenants; applies
    /// them if none is refused, and returns the refusals (and writes nothing) otherwise.
    async fn commit(
        self: Box<Self>,
        now: OffsetDateTime,
    ) -> StoreResult<Result<RegistrationSummary, Vec<RegistrationRejection>>>;
}

#[async_trait]
pub trait ExchangeStore: Send + Sync {
    async fn create_connector(&self, connector: &ExchangeConnector, now: OffsetDateTime) -> StoreResult<()>;
    async fn list_connectors(&self, tenant: TenantId, query: &ConnectorQuery) -> StoreResult<Vec<ExchangeConnector>>;
    async fn count_connectors(&self, tenant: TenantId, filter: Option<&Filter<ConnectorField>>) -> StoreResult<u64>;
    async fn connector(&self, tenant: TenantId, id: ConnectorId) -> StoreResult<Option<ExchangeConnector>>;
    /// Applies the changes; `None` when there is no such connector.
    async fn update_connector(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        changes: &ConnectorChanges,
    ) -> StoreResult<Option<ExchangeConnector>>;
    /// Deletes the connector and the devices it discovered.
    async fn delete_connector(&self, tenant: TenantId, id: ConnectorId) -> StoreResult<bool>;
    /// Sets the connector's source; scheduled syncs are due relative to `now` until its first.
    async fn set_connector_source(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        source: &ConnectorSource,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Marks the connector as syncing and enqueues the sync job in one transaction, unless a
    /// sync of it is already running.
    async fn trigger_connector_sync(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        sync_type: SyncType,
        now: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<ConnectorSyncDecision>;

    /// Enqueues the scheduled syncs that are due, once across replicas: a full sync when the
    /// last one started `full_every` ago (or never), else a delta when the last sync of either
    /// kind started `delta_every` ago. Only connectors with a source and no running sync.
    /// `job_for` builds each sync's job from the connector id and the sync type.
    async fn schedule_connector_syncs(
        &self,
        now: OffsetDateTime,
        delta_every: Duration,
        full_every: Duration,
        job_for: &(dyn Fn(ConnectorId, SyncType) -> NewJob + Send + Sync),
    ) -> StoreResult<u64>;

    /// Empties the connector's staging, fenced by the lease, before an attempt stages its first
    /// batch: what a crashed or released attempt staged must not count for this one (a released
    /// attempt's number is used again). False when the lease is no longer ours.
    async fn begin_connector_staging(&self, lease: &JobLease, tenant: TenantId, id: ConnectorId) -> StoreResult<bool>;

    /// Stages one batch of the records a sync read, fenced by the lease: nothing a client sees
    /// changes until `complete_connector_sync`. A device staged twice by the attempt keeps its
    /// later record. False when the lease is no longer ours.
    async fn stage_connector_records(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        records: &[MobileDeviceRecord],
    ) -> StoreResult<bool>;

    /// Records a successful sync in one transaction, fenced by the lease: upserts the devices
    /// this attempt staged (keyed by their Exchange device id), and on a full sync removes the
    /// connector's devices it did not stage; sets `connected`, `lastSyncDateTime` and the
    /// watermark; completes the job; empties the connector's staging. `None` when the lease is
    /// no longer ours.
    async fn complete_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        full: bool,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ConnectorSyncStats>>;

    /// Records a failed sync (source missing, unreachable or invalid): `disconnected`, the job
    /// failed for good, the devices kept and the connector's staging emptied. False when the
    /// lease is no longer ours.
    async fn fail_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        error: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    async fn list_managed_devices(&self, tenant: TenantId, query: &ManagedDeviceQuery) -> StoreResult<Vec<EasDevice>>;
    async fn count_managed_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ManagedDeviceField>>,
    ) -> StoreResult<u64>;
    async fn managed_device(&self, tenant: TenantId, id: EasDeviceId) -> StoreResult<Option<EasDevice>>;
}

/// Role scope tags. Writes to one tenant's tags are serialised (a row lock on PostgreSQL, the
/// one writer on SQLite), so that the display-name check and the id counter hold across
/// replicas.
#[async_trait]
pub trait RoleScopeTagStore: Send + Sync {
    /// One page of the tenant's tags, the `Default` tag included; by id unless ordered.
    async fn list_role_scope_tags(&self, tenant: TenantId, query: &RoleScopeTagQuery)
    -> StoreResult<Vec<RoleScopeTag>>;
    async fn count_role_scope_tags(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<RoleScopeTagField>>,
    ) -> StoreResult<u64>;
    async fn role_scope_tag(&self, tenant: TenantId, id: RoleScopeTagId) -> StoreResult<Option<RoleScopeTag>>;
    /// Creates a custom tag with the tenant's next id, unless another tag has its name
    /// (ignoring case, as `$filter` compares).
    async fn create_role_scope_tag(
        &self,
        tenant: TenantId,
        display_name: &str,
        description: &str,
    ) -> StoreResult<Result<RoleScopeTag, RoleScopeTagRefusal>>;
    /// Applies the changes. The `Default` tag takes only changes that change nothing.
    async fn update_role_scope_tag(
        &self,
        tenant: TenantId,
        id: RoleScopeTagId,
        changes: &RoleScopeTagChanges,
    ) -> StoreResult<Result<RoleScopeTag, RoleScopeTagRefusal>>;
    /// Deletes a custom tag; the `Default` tag is refused.
    async fn delete_role_scope_tag(
        &self,
        tenant: TenantId,
        id: RoleScopeTagId,
    ) -> StoreResult<Result<(), RoleScopeTagRefusal>>;
}

/// Entra ID device objects. They are created by the Autopilot stores, in the transaction that
/// creates the Autopilot device; this trait reads and deletes them.
#[async_trait]
pub trait EntraDeviceStore: Send + Sync {
    /// One page of the tenant's device objects; by object id unless ordered.
    async fn list_entra_devices(&self, tenant: TenantId, query: &EntraDeviceQuery) -> StoreResult<Vec<EntraDevice>>;
    async fn count_entra_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<EntraDeviceField>>,
    ) -> StoreResult<u64>;
    async fn entra_device(&self, tenant: TenantId, id: EntraDeviceId) -> StoreResult<Option<EntraDevice>>;
    /// Deletes the object and its group memberships, as Entra does; the Autopilot identity it
    /// was created for stays as it is.
    async fn delete_entra_device(&self, tenant: TenantId, id: EntraDeviceId) -> StoreResult<bool>;
}

/// Windows Autopilot deployment profiles and their assignments. Every write first takes the
/// tenant's row (a row lock until the transaction ends on PostgreSQL; SQLite's one writer
/// serialises them anyway), so the tenant-wide rules (the profile limit, one All Devices
/// profile, no delete while assignments remain) hold across replicas.
#[async_trait]
pub trait DeploymentProfileStore: Send + Sync {
    /// One page of the tenant's profiles; by id unless ordered.
    async fn list_deployment_profiles(
        &self,
        tenant: TenantId,
        query: &ProfileQuery,
    ) -> StoreResult<Vec<DeploymentProfile>>;
    async fn count_deployment_profiles(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ProfileField>>,
    ) -> StoreResult<u64>;
    async fn deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
    ) -> StoreResult<Option<DeploymentProfile>>;
    /// The profiles of these ids that exist, in any order.
    async fn deployment_profiles_by_ids(
        &self,
        tenant: TenantId,
        ids: &[DeploymentProfileId],
    ) -> StoreResult<Vec<DeploymentProfile>>;
    /// Creates a profile with a new id, unless the tenant has reached its limit.
    async fn create_deployment_profile(
        &self,
        tenant: TenantId,
        content: &ProfileContent,
        now: OffsetDateTime,
    ) -> StoreResult<Result<DeploymentProfile, ProfileRefusal>>;
    /// Replaces the profile's name and settings (its kind never changes).
    async fn update_deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
        content: &ProfileContent,
        now: OffsetDateTime,
    ) -> StoreResult<Result<DeploymentProfile, ProfileRefusal>>;
    /// Deletes a profile that has no assignments.
    async fn delete_deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
    ) -> StoreResult<Result<(), ProfileRefusal>>;
    /// The assignments of these profiles, by profile, then id.
    async fn list_profile_assignments(
        &self,
        tenant: TenantId,
        profiles: &[DeploymentProfileId],
    ) -> StoreResult<Vec<ProfileAssignment>>;
    async fn profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        id: &str,
    ) -> StoreResult<Option<ProfileAssignment>>;
    /// Assigns the profile, under the id [`crate::deployment_profiles::assignment_id`] gives;
    /// refused when the profile does not exist, already has that assignment, or the target is
    /// All Devices and another profile of the tenant has it.
    async fn create_profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        target: AssignmentTarget,
        now: OffsetDateTime,
    ) -> StoreResult<Result<ProfileAssignment, ProfileRefusal>>;
    async fn delete_profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        id: &str,
    ) -> StoreResult<Result<(), ProfileRefusal>>;
    /// The profile each of these devices is intended to get and has got, as the assignment
    /// engine wrote them; a device under no profile (or that does not exist) is left out.
    async fn device_profiles(
        &self,
        tenant: TenantId,
        devices: &[AutopilotDeviceId],
    ) -> StoreResult<Vec<(AutopilotDeviceId, DeviceProfiles)>>;
    /// One page of the devices the profile is assigned to (`assignedDevices`).
    async fn list_profile_assigned_devices(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        query: &DeviceQuery,
    ) -> StoreResult<Vec<AutopilotDevice>>;
}

/// Entra groups and their members. Every write that should lead to a membership evaluation
/// takes the evaluation job (`NewJob`) and its due time, and enqueues it in its own
/// transaction, coalesced: one queued evaluation per tenant, and none for a tenant without a
/// dynamic group whose processing is `On`.
#[async_trait]
pub trait GroupStore: Send + Sync {
    async fn list_groups(&self, tenant: TenantId, query: &GroupQuery) -> StoreResult<Vec<Group>>;
    async fn count_groups(&self, tenant: TenantId, filter: Option<&Filter<GroupField>>) -> StoreResult<u64>;
    async fn group(&self, tenant: TenantId, id: GroupId) -> StoreResult<Option<Group>>;
    /// Creates the group (already validated) with these first members (`members@odata.bind`),
    /// and, when it is a dynamic group whose rule is `On`, enqueues `evaluation` at `run_at`; all
    /// or nothing: a member that cannot be added (see [`GroupStore::add_group_members`]) leaves
    /// no group.
    async fn create_group(
        &self,
        group: &Group,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        evaluation: &NewJob,
    ) -> StoreResult<MemberChange>;
    /// Writes every property of the group (already validated) and adds these members, all or
    /// nothing; with `evaluation`, enqueues it as `create_group` does. `GroupNotFound` when the
    /// group does not exist.
    async fn replace_group(
        &self,
        group: &Group,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        evaluation: Option<&NewJob>,
    ) -> StoreResult<MemberChange>;
    /// Deletes the group and its members' rows. False when it does not exist.
    async fn delete_group(&self, tenant: TenantId, id: GroupId) -> StoreResult<bool>;
    /// One page of the group's members (Entra devices), keyset-paged by object id; `None` when
    /// the group does not exist.
    async fn list_group_members(
        &self,
        tenant: TenantId,
        group: GroupId,
        query: &EntraDeviceQuery,
    ) -> StoreResult<Option<Vec<EntraDevice>>>;
    /// One page of the groups the device is a direct member of (its `memberOf`), keyset-paged
    /// by group id; `None` when the device does not exist.
    async fn list_device_groups(
        &self,
        tenant: TenantId,
        device: EntraDeviceId,
        query: &GroupQuery,
    ) -> StoreResult<Option<Vec<Group>>>;
    /// Adds devices to an assigned group, all or nothing: refused when one of them is not a
    /// device of the tenant, is a member already or is named twice, and for a dynamic group.
    async fn add_group_members(
        &self,
        tenant: TenantId,
        group: GroupId,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
    ) -> StoreResult<MemberChange>;
    /// Removes a device from an assigned group (`MemberNotFound` when it is not a member).
    async fn remove_group_member(
        &self,
        tenant: TenantId,
        group: GroupId,
        member: EntraDeviceId,
    ) -> StoreResult<MemberChange>;
    /// Enqueues the tenant's membership evaluation at `run_at`, coalesced (see the trait). True
    /// when it enqueued one.
    async fn request_group_evaluation(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<bool>;
    /// Brings the members of every dynamic group of the tenant whose processing is `On` to what
    /// its rule selects, set-based, and completes the job, in one transaction fenced by the
    /// lease. `None` (and nothing written) when the lease was lost.
    async fn evaluate_group_membership(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<EvaluationStats>>;
}

/// The deployment profile assignment engine (`profile_assignment.rs` has the rules). Groups,
/// their members, profiles and assignments are written by their own stores; this trait reads
/// them and writes only the devices' assignment states.
#[async_trait]
pub trait ProfileAssignmentStore: Send + Sync {
    /// One pass of the engine over the tenant, in one transaction with the job's fenced
    /// completion: computes every device's winning profile with set-based statements; a device
    /// newly under a profile (or another one) becomes `pending` with `intended_at = now`, or is
    /// assigned at once when the profile reaches it through All Devices; a pending device whose
    /// `intended_at + delay` has come is assigned (`assignedUnkownSyncState` if it never
    /// contacted the service, else `assignedInSync`); a device under no profile goes back to
    /// `notAssigned`. If devices are still pending, `next_pass` is enqueued (coalesced) for when
    /// the earliest of them comes due. Idempotent: a pass over unchanged data changes nothing.
    /// The devices of `forced` that the pass would assign end `failed` instead, with nothing
    /// assigned; a failed device keeps its state on later passes until its winning profile
    /// changes (then `pending`) or it is under none (then `notAssigned`).
    /// `None` when the lease is no longer ours (nothing changed).
    async fn assign_deployment_profiles(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        delay: Duration,
        next_pass: &NewJob,
        forced: &ForcedAssignmentFailures,
    ) -> StoreResult<Option<ProfileAssignmentStats>>;
    /// Enqueues, due at `now` and coalesced, `evaluation` for every tenant with a dynamic group
    /// whose processing is `On`, and `pass` for every tenant with an assignment or a device
    /// under a profile; the number enqueued. The server calls it at start: a change that
    /// commits before it asks for an evaluation or a pass (a member added, a group tag changed,
    /// an evaluation that changed members) loses that request if the process dies in between,
    /// and both jobs are idempotent, so asking again for every tenant that may need them heals
    /// what such a death left stale.
    async fn request_recovery_passes(
        &self,
        now: OffsetDateTime,
        evaluation: &NewJob,
        pass: &NewJob,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Claims the oldest runnable job (queued and due by `due` on the Clock, or running with a
    /// lease expired by `wall`), bumping its attempt and leasing it to `owner` until
    /// `wall + lease`. Leases are measured in wall-clock time, not on the Clock: they are about
    /// whether a process is alive, so advancing the Clock must not make running jobs look dead.
    async fn claim_job(
        &self,
        owner: &str,
        due: OffsetDateTime,
        wall: OffsetDateTime,
        lease: Duration,
    ) -> StoreResult<Option<Job>>;
    /// Extends the lease to `until` (wall-clock). False when the lease was lost.
    async fn heartbeat_job(&self, lease: &JobLease, until: OffsetDateTime) -> StoreResult<bool>;
    /// Gives a job back without counting the attempt (graceful shutdown at a safe point).
    async fn release_job(&self, lease: &JobLease) -> StoreResult<()>;
    /// Records a failed attempt: requeued at `retry_at`, or failed for good when `None`.
    async fn fail_job(&self, lease: &JobLease, error: &str, retry_at: Option<OffsetDateTime>) -> StoreResult<bool>;
    /// Returns every running job to the queue. Only for single-node backends at start-up,
    /// where no other process can hold a lease.
    async fn requeue_running_jobs(&self) -> StoreResult<u64>;
    async fn job(&self, id: JobId) -> StoreResult<Option<Job>>;
    /// Enqueues `job` for the tenant at `run_at`, unless a job of its kind for the tenant is
    /// already queued and due by then, so that the requests asking for the same tenant-wide pass
    /// share one. A running job does not count: it may have read the state before the change
    /// that asks for the new one. True when a job was enqueued. Across PostgreSQL replicas two
    /// concurrent calls may both enqueue; the jobs that use this are idempotent.
    async fn enqueue_coalesced_job(
        &self,
        tenant: TenantId,
        job: &NewJob,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Resolves once a job has been enqueued (committed) by this store since the previous call
    /// returned; a job enqueued while nobody waits is remembered. Every enqueuing method
    /// signals it after its commit, so idle workers wake without polling.
    async fn wait_for_enqueued_job(&self);
}

/// The device authorization grant's codes (see [`crate::device_codes`]). Every step that
/// changes a code is one conditional statement, so that replicas polling and approving the same
/// code at once agree on its state.
#[async_trait]
pub trait DeviceCodeStore: Send + Sync {
    /// Stores a new code, first removing the codes that expired more than
    /// [`crate::device_codes::EXPIRED_CODES_KEPT_FOR`] before `now` (nothing else prunes them). `AlreadyExists` when a live code has the same user code: draw another.
    async fn insert_device_code(&self, code: &DeviceCode, now: OffsetDateTime) -> StoreResult<()>;
    /// The code a person typed, while it is pending and has not expired at `now`.
    async fn pending_device_code(&self, user_code: &str, now: OffsetDateTime) -> StoreResult<Option<DeviceCode>>;
    /// Approves or declines a pending code that has not expired at `now`; false otherwise
    /// (unknown, expired, or decided already).
    async fn decide_device_code(
        &self,
        user_code: &str,
        decision: DeviceCodeDecision,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Records a poll at `now` unless the last answered poll was less than `interval` ago, and
    /// returns the code as it was with whether the poll came too soon; `None` for an unknown hash.
    async fn poll_device_code(
        &self,
        device_code_hash: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> StoreResult<Option<DevicePoll>>;
    /// Moves an approved code to redeemed; true for the one caller that did it, so that two
    /// polls racing on an approved code get one set of tokens between them.
    async fn redeem_device_code(&self, device_code_hash: &str) -> StoreResult<bool>;
}

/// Resets and snapshots of the whole state (see `snapshots`). Each is one transaction: a
/// request running beside it sees the state before or after, never between.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Deletes what `scope` names: every table that has a `tenant_id` column, found in the
    /// database's own catalogue so that no table added later is forgotten. Keeps the signing
    /// keys, the certificate authority and the Clock.
    async fn reset(&self, scope: ResetScope) -> StoreResult<()>;
    /// Copies the state (all but the keys, the CA and the Clock) under `name`;
    /// `AlreadyExists` if the name is taken.
    async fn create_snapshot(&self, name: &SnapshotName, now: OffsetDateTime) -> StoreResult<Snapshot>;
    async fn snapshots(&self) -> StoreResult<Vec<Snapshot>>;
    /// `NotFound` if there is no such snapshot.
    async fn delete_snapshot(&self, name: &SnapshotName) -> StoreResult<()>;
    /// Replaces the state with the snapshot's, in one transaction. `NotFound` if there is no
    /// such snapshot; `Database` if it was taken by a different schema version.
    async fn restore_snapshot(&self, name: &SnapshotName) -> StoreResult<()>;
}

/// One bucket a throttled request takes a token from: its key (family, kind and whose) and how
/// many tokens it holds in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleBucket {
    pub key: String,
    pub capacity: u32,
}

/// Throttling's buckets where replicas share them (PostgreSQL); a single-node server keeps
/// its buckets in memory instead. A bucket is full at the start of its window, which begins at
/// the first take after the previous window ended, so that "N per window" holds exactly however
/// long a test takes to send its requests.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Takes one token from every bucket in `buckets`, or from none, in one atomic step at
    /// `now`. `None` when the tokens were taken; otherwise how long until every empty bucket
    /// starts a new window.
    async fn take_throttle_tokens(
        &self,
        buckets: &[ThrottleBucket],
        window: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Duration>>;
}

/// Everything the server needs from storage.
pub trait Store:
    SystemStore
    + IdentityStore
    + AuthorizationCodeStore
    + AutopilotStore
    + ImportStore
    + ExchangeStore
    + RoleScopeTagStore
    + EntraDeviceStore
    + DeploymentProfileStore
    + GroupStore
    + ProfileAssignmentStore
    + JobStore
    + DeviceCodeStore
    + SnapshotStore
    + 'static
{
}

impl<
    T: SystemStore
        + IdentityStore
        + AuthorizationCodeStore
        + AutopilotStore
        + ImportStore
        + ExchangeStore
        + RoleScopeTagStore
        + EntraDeviceStore
        + DeploymentProfileStore
        + GroupStore
        + ProfileAssignmentStore
        + JobStore
        + DeviceCodeStore
        + SnapshotStore
        + 'static,
> Store for T
{
}

/// What a backend provides: everything, the settings included. The server wraps the settings
/// half in its cache and hands handlers a `Store` that has no settings methods.
pub trait Backend: Store + AutopilotSettingsStore + ThrottleStore {}

impl<T: Store + AutopilotSettingsStore + ThrottleStore> Backend for T {}
