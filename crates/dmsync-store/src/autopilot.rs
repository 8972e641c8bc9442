//! [`AutopilotSettingsStore`]: the tenant's settings singleton and its sync decision; and
//! [`AutopilotStore`]: the device identities with their reads and actions. Registration uploads are in `registrations.rs`,
//! the sync's reconciliation in `reconcile.rs`.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use dmsync_core::autopilot::{
    AutopilotDevice, AutopilotSettings, DeletionRequest, DeviceCreationRefusal, DeviceField, DevicePropertiesUpdate,
    DeviceQuery, ForcedImportError, ImportStats, NewAutopilotDevice, ReconcileStats, SyncDecision, SyncOutcome,
    SyncStatus,
};
use dmsync_core::filter::Filter;
use dmsync_core::jobs::{JobLease, JobState, NewJob};
use dmsync_core::store::{AutopilotSettingsStore, AutopilotStore, RegistrationImport};
use dmsync_core::{AutopilotDeviceId, StoreError, StoreResult, TenantId};

use crate::convert::{hash_digest, new_device_id, refusal};
use crate::db::{Query, SqlStore, Value};
use crate::entra::insert_for_devices;
use crate::jobs::{end_job, insert_job};
use crate::registrations::next_registration_seq;
use crate::rows::*;
use crate::sql::{DEVICE_COLUMNS, DEVICE_ROWS, device_column};

impl SqlStore {
    /// Creates the tenant's settings row if it has none yet.
    pub(crate) async fn ensure_settings(&self, tenant: TenantId) -> StoreResult<()> {
        let query = Query::new(
            "INSERT INTO autopilot_settings (tenant_id, id, sync_status) VALUES ($1, $2, 'unknown')
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(Uuid::new_v4());
        self.write().execute(query).await?;
        Ok(())
    }
}

const SETTINGS: &str = "SELECT * FROM autopilot_settings WHERE tenant_id = $1";

/// The settings half: the server wraps it in its cache.
#[async_trait]
impl AutopilotSettingsStore for SqlStore {
    async fn autopilot_settings(&self, tenant: TenantId) -> StoreResult<AutopilotSettings> {
        if let Some(row) = self.read().fetch_optional(Query::new(SETTINGS).bind(tenant)).await? {
            return settings_from_row(&row);
        }
        self.ensure_settings(tenant).await?;
        settings_from_row(&self.write().fetch_one(Query::new(SETTINGS).bind(tenant)).await?)
    }

    async fn trigger_autopilot_sync(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        cooldown: Duration,
        job: &NewJob,
    ) -> StoreResult<SyncDecision> {
        self.ensure_settings(tenant).await?;
        let mut tx = self.begin().await?;
        // The decision is this one conditional update: only a row that is not in progress and
        // whose last sync started a full cooldown ago can move to inProgress. On PostgreSQL,
        // concurrent requests queue on the row lock, and under READ COMMITTED each re-checks the
        // condition against the row the winner committed, so exactly one of them, on any
        // replica, starts the sync.
        let start = Query::new(
            "UPDATE autopilot_settings
                SET sync_status = 'inProgress', last_manual_sync_trigger = $1, cooldown_anchor = $1
              WHERE tenant_id = $2 AND sync_status <> 'inProgress'
                AND (cooldown_anchor IS NULL OR cooldown_anchor <= $3)",
        )
        .bind(now)
        .bind(tenant)
        .bind(now - cooldown);
        if tx.execute(start).await? != 1 {
            let settings = settings_from_row(&tx.exec().fetch_one(Query::new(SETTINGS).bind(tenant)).await?)?;
            tx.rollback().await?;
            return Ok(refusal(&settings, now, cooldown));
        }
        let job_id = insert_job(&mut tx, tenant, job, now, now).await?;
        self.commit_enqueued(tx).await?;
        Ok(SyncDecision::Started { job_id })
    }

    async fn finish_autopilot_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        outcome: SyncOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (job_state, sync_status) = match outcome {
            SyncOutcome::Completed => (JobState::Succeeded, SyncStatus::Completed),
            SyncOutcome::Failed => (JobState::Failed, SyncStatus::Failed),
        };
        let mut tx = self.begin().await?;
        if !end_job(&mut tx, lease, job_state, error, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let query = Query::new(
            "UPDATE autopilot_settings
                SET sync_status = $1,
                    last_sync = CASE WHEN $1 = 'completed' THEN $2 ELSE last_sync END
              WHERE tenant_id = $3",
        )
        .bind(sync_status.as_str())
        .bind(now)
        .bind(tenant);
        tx.execute(query).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn process_imports(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
        follow_up: &NewJob,
        forced: &[ForcedImportError],
    ) -> StoreResult<Option<ImportStats>> {
        self.process_import_job(lease, tenant, now, counts_as_sync, follow_up, forced).await
    }
}

#[async_trait]
impl AutopilotStore for SqlStore {
    async fn begin_registrations(&self, tenant: TenantId) -> StoreResult<Box<dyn RegistrationImport>> {
        self.begin_registration_import(tenant).await
    }

    async fn delete_registration(&self, tenant: TenantId, serial_number: &str) -> StoreResult<bool> {
        self.deregister_serial(tenant, serial_number).await
    }

    async fn reconcile_autopilot_devices_with_progress(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
    ) -> StoreResult<Option<ReconcileStats>> {
        self.ensure_settings(tenant).await?;
        crate::reconcile::run(self, tenant, now, progress).await
    }

    async fn list_autopilot_devices(&self, tenant: TenantId, query: &DeviceQuery) -> StoreResult<Vec<AutopilotDevice>> {
        self.list_page(DEVICE_ROWS, tenant, query, device_column, DEVICE_COLUMNS, device_from_row).await
    }

    async fn count_autopilot_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<DeviceField>>,
    ) -> StoreResult<u64> {
        // Only a filter on the assignment status needs the states; a plain count reads the
        // devices alone (SQLite would otherwise look up every device's state).
        let status = DeviceField::DeploymentProfileAssignmentStatus;
        let table = if filter.is_some_and(|f| f.mentions(&status)) { DEVICE_ROWS } else { "autopilot_devices" };
        self.count(table, tenant, filter, device_column).await
    }

    async fn autopilot_device(&self, tenant: TenantId, id: AutopilotDeviceId) -> StoreResult<Option<AutopilotDevice>> {
        self.by_id(DEVICE_ROWS, tenant, id, device_from_row).await
    }

    async fn update_autopilot_device(
        &self,
        tenant: TenantId,
        id: AutopilotDeviceId,
        update: &DevicePropertiesUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let query = Query::new(
            "UPDATE autopilot_devices SET
                user_principal_name = coalesce($3, user_principal_name),
                addressable_user_name = coalesce($4, addressable_user_name),
                group_tag = coalesce($5, group_tag),
                display_name = coalesce($6, display_name),
                device_account_upn = coalesce($7, device_account_upn),
                device_account_password = coalesce($8, device_account_password),
                device_friendly_name = coalesce($9, device_friendly_name),
                resource_name = coalesce($11, resource_name),
                updated_at = $10
              WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(&update.user_principal_name)
        .bind(&update.addressable_user_name)
        .bind(&update.group_tag)
        .bind(&update.display_name)
        .bind(&update.device_account_upn)
        .bind(&update.device_account_password)
        .bind(&update.device_friendly_name)
        .bind(now)
        .bind(&update.resource_name);
        if tx.execute(query).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The group tag lives in the deployment service too; without this the next sync would
        // put the old one back.
        if let Some(tag) = &update.group_tag {
            let query = Query::new(
                "UPDATE autopilot_registrations SET group_tag = $1, updated_at = $2 WHERE tenant_id = $3 AND device_id = $4",
            )
            .bind(tag)
            .bind(now)
            .bind(tenant)
            .bind(id);
            tx.execute(query).await?;
            // Autopilot writes the group tag into the Entra object's `[OrderId]`, which
            // dynamic groups match.
            let query = Query::new("UPDATE entra_devices SET order_id = $1 WHERE tenant_id = $2 AND ztdid = $3")
                .bind(tag)
                .bind(tenant)
                .bind(id);
            tx.execute(query).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn request_device_deletion(
        &self,
        tenant: TenantId,
        id: AutopilotDeviceId,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<DeletionRequest> {
        let mut tx = self.begin().await?;
        let mark = Query::new(
            "UPDATE autopilot_devices SET deletion_requested_at = $1
              WHERE tenant_id = $2 AND id = $3 AND deletion_requested_at IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(id);
        if tx.execute(mark).await? != 1 {
            let exists =
                Query::new("SELECT 1 FROM autopilot_devices WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
            let exists = tx.exec().fetch_optional(exists).await?.is_some();
            tx.rollback().await?;
            return Ok(if exists {
                DeletionRequest::AlreadyInProgress { device_id: id }
            } else {
                DeletionRequest::NotFound
            });
        }
        insert_job(&mut tx, tenant, job, now, run_at).await?;
        self.commit_enqueued(tx).await?;
        Ok(DeletionRequest::Accepted { device_id: id })
    }

    async fn create_autopilot_device(
        &self,
        tenant: TenantId,
        device: &NewAutopilotDevice,
        now: OffsetDateTime,
    ) -> StoreResult<Result<AutopilotDevice, DeviceCreationRefusal>> {
        let dialect = self.dialect();
        let id = new_device_id();
        let mut tx = self.begin().await?;
        // The sequence first: it is the lock that orders registration writers, and the next
        // sync's window then holds this registration.
        let seq = next_registration_seq(&mut tx).await?;
        // No hardware hash comes with the request. The registration stores an empty one and,
        // for the unique digest, a digest of the device id, which no real hash can share.
        let register = Query::new(
            "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&device.serial_number)
        .bind(id)
        .bind(Value::from(&[] as &[u8]))
        .bind(hash_digest(format!("dmsync:direct:{id}").as_bytes()))
        .bind(&device.manufacturer)
        .bind(&device.model)
        .bind(&device.group_tag)
        .bind(&device.purchase_order_identifier)
        .bind(&device.product_key)
        .bind(now)
        .bind(seq);
        if tx.execute(register).await? == 0 {
            tx.rollback().await?;
            return Ok(Err(DeviceCreationRefusal::SerialNumberRegistered));
        }
        let azure_ad_device_id = dialect.guid_like("r.device_id");
        let insert = Query::new(format!(
            "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                 purchase_order_identifier, product_key, display_name, user_principal_name, addressable_user_name,
                 resource_name, device_account_upn, device_account_password, device_friendly_name,
                 azure_ad_device_id, created_at, updated_at)
             SELECT r.tenant_id, r.device_id, r.serial_number, r.manufacturer, r.model, r.group_tag,
                    r.purchase_order_identifier, r.product_key, $3, $4, $5, $6, $7, $8, $9,
                    {azure_ad_device_id}, $10, $10
               FROM autopilot_registrations r WHERE r.tenant_id = $1 AND r.device_id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .bind(&device.display_name)
        .bind(&device.user_principal_name)
        .bind(&device.addressable_user_name)
        .bind(&device.resource_name)
        .bind(&device.device_account_upn)
        .bind(&device.device_account_password)
        .bind(&device.device_friendly_name)
        .bind(now);
        tx.execute(insert).await?;
        // Its Entra object in the same transaction, as imports and syncs create theirs. With
        // no hardware hash there is no `[HWID]` to write.
        let entra = Query::new(insert_for_devices(
            dialect,
            "autopilot_devices d JOIN autopilot_registrations r ON r.tenant_id = d.tenant_id AND r.device_id = d.id",
            "d.tenant_id = $1 AND d.id = $2",
        ))
        .bind(tenant)
        .bind(id);
        tx.execute(entra).await?;
        let no_hardware_id =
            Query::new("UPDATE entra_devices SET hardware_id = '' WHERE tenant_id = $1 AND ztdid = $2")
                .bind(tenant)
                .bind(id);
        tx.execute(no_hardware_id).await?;
        let read =
            Query::new(format!("SELECT * FROM {DEVICE_ROWS} WHERE tenant_id = $1 AND id = $2")).bind(tenant).bind(id);
        let row = tx.exec().fetch_optional(read).await?;
        let created = row.as_ref().map(device_from_row).transpose()?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Ok(created))
    }

    async fn device_ids_by_serial(
        &self,
        tenant: TenantId,
        serials: &[String],
    ) -> StoreResult<Vec<(String, AutopilotDeviceId)>> {
        let listed = self.dialect().in_list("serial_number", "$2");
        let query =
            Query::new(format!("SELECT serial_number, id FROM autopilot_devices WHERE tenant_id = $1 AND {listed}"))
                .bind(tenant)
                .bind(Value::from(serials));
        self.read().fetch_all(query).await?.iter().map(|row| Ok((row.text("serial_number")?, row.id("id")?))).collect()
    }

    async fn deregister_device(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: AutopilotDeviceId,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !end_job(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        for table in [
            "autopilot_registrations WHERE tenant_id = $1 AND device_id = $2",
            "autopilot_devices WHERE tenant_id = $1 AND id = $2",
        ] {
            tx.execute(Query::new(format!("DELETE FROM {table}")).bind(tenant).bind(id)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
