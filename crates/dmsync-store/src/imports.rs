//! [`ImportStore`]: imported Windows Autopilot device identities, created with their processing
//! job and processed by it with set-based statements.

use async_trait::async_trait;
use time::OffsetDateTime;

use dmsync_core::autopilot::{
    ForcedImportError, ImportStats, ImportStatus, ImportedDevice, ImportedField, ImportedQuery, NewImportedDevice,
    import_errors,
};
use dmsync_core::filter::Filter;
use dmsync_core::jobs::{JobLease, JobState, NewJob};
use dmsync_core::store::ImportStore;
use dmsync_core::{ImportedDeviceId, StoreResult, TenantId};

use crate::convert::{from_ticks, hash_digest, new_device_id, to_ticks};
use crate::db::{Query, SqlStore, Value};
use crate::entra::insert_for_devices;
use crate::jobs::{end_job, insert_coalesced_job, insert_job};
use crate::registrations::next_registration_seq;
use crate::rows::imported_from_row;
use crate::sql::imported_column;

/// The imports a processing job decides: its own and those of every earlier import job of the
/// tenant not processed yet (`$1` job, `$2` tenant). Workers of several replicas process import
/// jobs in parallel; without this, a later import could take the sequence lock first and win a
/// hash that an earlier import asked for. With it, whichever job commits first decides in
/// request order, and the other finds its imports already decided.
const PENDING: &str = "status = 'unknown' AND job_id IN (
    SELECT j.id FROM jobs j
     WHERE j.tenant_id = $2 AND j.kind = 'importAutopilotDevices'
       AND j.run_at <= (SELECT run_at FROM jobs WHERE id = $1))";

/// Marks the pending imports that meet `condition` as failed with the error.
fn fail(condition: &str, (code, name): (i32, &str)) -> String {
    format!(
        "UPDATE imported_devices SET status = 'error', error_code = {code}, error_name = '{name}'
          WHERE {PENDING} AND ({condition})"
    )
}

#[async_trait]
impl ImportStore for SqlStore {
    async fn create_imports(
        &self,
        tenant: TenantId,
        import_id: &str,
        rows: &[NewImportedDevice],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<Vec<ImportedDevice>> {
        let mut tx = self.begin().await?;
        let job_id = insert_job(&mut tx, tenant, job, now, run_at).await?;
        let mut created = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.dialect().rows_per_insert(13)) {
            let mut insert = Query::new(
                "INSERT INTO imported_devices (tenant_id, id, job_id, import_id, serial_number, group_tag, product_key,
                 hardware_hash, hash_digest, assigned_user_principal_name, status, pending_device_id, created_at) VALUES ",
            );
            let ids: Vec<ImportedDeviceId> = chunk.iter().map(|_| ImportedDeviceId::new()).collect();
            for (i, (r, id)) in chunk.iter().zip(&ids).enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert.push_row([
                    Value::from(tenant),
                    Value::from(*id),
                    Value::from(job_id),
                    Value::from(import_id),
                    Value::from(&r.serial_number),
                    Value::from(&r.group_tag),
                    Value::from(&r.product_key),
                    Value::from(r.hardware_hash.as_slice()),
                    Value::from(hash_digest(&r.hardware_hash)),
                    Value::from(&r.assigned_user_principal_name),
                    Value::from(ImportStatus::Unknown.as_str()),
                    Value::from(new_device_id()),
                    Value::from(now),
                ]);
            }
            tx.execute(insert).await?;
            created.extend(chunk.iter().zip(ids).map(|(r, id)| ImportedDevice {
                tenant_id: tenant,
                id,
                import_id: import_id.to_owned(),
                serial_number: r.serial_number.clone(),
                group_tag: r.group_tag.clone(),
                product_key: r.product_key.clone(),
                hardware_hash: r.hardware_hash.clone(),
                assigned_user_principal_name: r.assigned_user_principal_name.clone(),
                status: ImportStatus::Unknown,
                device_registration_id: None,
                error_code: 0,
                error_name: None,
                created_at: from_ticks(to_ticks(now)),
            }));
        }
        self.commit_enqueued(tx).await?;
        Ok(created)
    }

    async fn list_imported_devices(&self, tenant: TenantId, query: &ImportedQuery) -> StoreResult<Vec<ImportedDevice>> {
        self.list_page("imported_devices", tenant, query, imported_column, &[], imported_from_row).await
    }

    async fn count_imported_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ImportedField>>,
    ) -> StoreResult<u64> {
        self.count("imported_devices", tenant, filter, imported_column).await
    }

    async fn imported_device(&self, tenant: TenantId, id: ImportedDeviceId) -> StoreResult<Option<ImportedDevice>> {
        self.by_id("imported_devices", tenant, id, imported_from_row).await
    }

    async fn delete_imported_device(&self, tenant: TenantId, id: ImportedDeviceId) -> StoreResult<bool> {
        let query = Query::new("DELETE FROM imported_devices WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
        Ok(self.write().execute(query).await? == 1)
    }
}

impl SqlStore {
    /// See `AutopilotSettingsStore::process_imports`.
    pub(crate) async fn process_import_job(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
        follow_up: &NewJob,
        forced: &[ForcedImportError],
    ) -> StoreResult<Option<ImportStats>> {
        self.ensure_settings(tenant).await?;
        let dialect = self.dialect();
        let mut tx = self.begin().await?;
        // The sequence first: it is the lock that orders registration writers.
        let seq = next_registration_seq(&mut tx).await?;
        if !end_job(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let pending = |sql: String| Query::new(sql).bind(lease.job_id).bind(tenant);
        // Forced errors first: they stand in for whatever the checks below would find.
        let mut forced_serials = Vec::new();
        for error in forced {
            let force = pending(format!(
                "UPDATE imported_devices SET status = 'error', error_code = $3, error_name = $4
                  WHERE {PENDING} AND serial_number = $5"
            ))
            .bind(i64::from(error.code))
            .bind(error.name())
            .bind(&error.serial_number);
            if tx.execute(force).await? > 0 {
                forced_serials.push(error.serial_number.clone());
            }
        }
        let length = dialect.byte_length();
        let steps = [
            fail(&format!("{length}(hardware_hash) < {}", import_errors::MIN_HASH_BYTES), import_errors::BAD_HARDWARE_HASH),
            fail(
                "EXISTS (SELECT 1 FROM autopilot_registrations r
                          WHERE r.hash_digest = imported_devices.hash_digest AND r.tenant_id <> imported_devices.tenant_id)",
                import_errors::ASSIGNED_TO_OTHER_TENANT,
            ),
            // Two EXISTS, not one with an OR inside: each uses its own index (the digest's, the
            // primary key), where the OR made PostgreSQL scan a million registrations per import.
            fail(
                "EXISTS (SELECT 1 FROM autopilot_registrations r
                          WHERE r.tenant_id = imported_devices.tenant_id AND r.hash_digest = imported_devices.hash_digest)
                 OR EXISTS (SELECT 1 FROM autopilot_registrations r
                             WHERE r.tenant_id = imported_devices.tenant_id AND r.serial_number = imported_devices.serial_number)",
                import_errors::ALREADY_ASSIGNED,
            ),
        ];
        for statement in steps {
            tx.execute(pending(statement)).await?;
        }
        // Register what is left; of two equal hashes or serials the earlier request wins and
        // the other is already assigned.
        let register = pending(format!(
            "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash,
                 hash_digest, manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT tenant_id, serial_number, pending_device_id, hardware_hash, hash_digest, '', '', group_tag, '',
                    product_key, $3, $3, $4
               FROM imported_devices WHERE {PENDING} ORDER BY created_at, id
             ON CONFLICT DO NOTHING"
        ))
        .bind(now)
        .bind(seq);
        tx.execute(register).await?;
        // Which imports just became complete: their devices are created below.
        let complete = pending(format!(
            "UPDATE imported_devices SET status = 'complete', device_registration_id = pending_device_id
              WHERE {PENDING}
                AND EXISTS (SELECT 1 FROM autopilot_registrations r WHERE r.device_id = imported_devices.pending_device_id)
              RETURNING id"
        ));
        let completed_ids: Vec<String> =
            tx.exec().fetch_all(complete).await?.iter().map(|row| row.get(0)).collect::<StoreResult<_>>()?;
        let completed = completed_ids.len() as u64;
        // What the insert skipped lost to a registration of the same serial or hash (one of this
        // job's, or another tenant's). Only those: on PostgreSQL each statement sees what was
        // committed when it began, so an earlier import job's rows that committed after the insert
        // are pending here too, and must stay pending for their own job rather than fail.
        let lost = fail(
            "EXISTS (SELECT 1 FROM autopilot_registrations r WHERE r.hash_digest = imported_devices.hash_digest)
             OR EXISTS (SELECT 1 FROM autopilot_registrations r
                         WHERE r.tenant_id = imported_devices.tenant_id AND r.serial_number = imported_devices.serial_number)",
            import_errors::ALREADY_ASSIGNED,
        );
        tx.execute(pending(lost)).await?;
        let failed = Query::new("SELECT count(*) FROM imported_devices WHERE job_id = $1 AND status = 'error'")
            .bind(lease.job_id);
        let failed: i64 = tx.exec().scalar(failed).await?;
        // The device is created with its registration, so it is readable no later than the
        // import reads `complete`, as real Intune shows it.
        let listed = dialect.in_list("i.id", "$2");
        let azure_ad_device_id = dialect.guid_like("i.pending_device_id");
        let devices = Query::new(format!(
            "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                 purchase_order_identifier, product_key, user_principal_name, azure_ad_device_id, created_at, updated_at)
             SELECT i.tenant_id, i.pending_device_id, i.serial_number, '', '', i.group_tag, '', i.product_key,
                    i.assigned_user_principal_name, {azure_ad_device_id}, $3, $3
               FROM imported_devices i WHERE i.tenant_id = $1 AND {listed}
             ON CONFLICT DO NOTHING"
        ))
        .bind(tenant)
        .bind(Value::TextList(completed_ids.clone()))
        .bind(now);
        tx.execute(devices).await?;
        // Their Entra objects, in the same transaction: a client that reads `complete` finds
        // the device's `deviceId` among the tenant's devices at once.
        let entra = Query::new(insert_for_devices(
            dialect,
            "imported_devices i
             JOIN autopilot_devices d ON d.tenant_id = i.tenant_id AND d.id = i.pending_device_id
             JOIN autopilot_registrations r ON r.tenant_id = d.tenant_id AND r.device_id = d.id",
            &format!("i.tenant_id = $1 AND {listed}"),
        ))
        .bind(tenant)
        .bind(Value::TextList(completed_ids));
        tx.execute(entra).await?;
        if counts_as_sync && completed > 0 {
            let greatest = dialect.greatest();
            let anchor = Query::new(format!(
                "UPDATE autopilot_settings SET cooldown_anchor = {greatest}(coalesce(cooldown_anchor, $1), $1)
                  WHERE tenant_id = $2"
            ))
            .bind(now)
            .bind(tenant);
            tx.execute(anchor).await?;
        }
        if completed > 0 && insert_coalesced_job(&mut tx, tenant, follow_up, now, now).await? {
            self.commit_enqueued(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok(Some(ImportStats { completed, failed: failed as u64, forced: forced_serials }))
    }
}
