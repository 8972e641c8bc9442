//! The SQLite backend: one file (or memory), WAL, `synchronous=FULL`, one writer connection and
//! a small pool of readers. SQLite serialises writers, so every write goes through the single
//! writer connection and no transaction can fail with SQLITE_BUSY half-way.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use dmsync_core::autopilot::{
    AutopilotDevice, AutopilotSettings, DeletionRequest, DeviceField, DevicePropertiesUpdate, DeviceQuery, ImportStats,
    ImportStatus, ImportedDevice, ImportedField, ImportedQuery, NewImportedDevice, NewRegistration, ReconcileStats,
    RegistrationProblem, RegistrationRejection, RegistrationSummary, SyncDecision, SyncOutcome, SyncStatus,
    import_errors,
};
use dmsync_core::filter::Filter;
use dmsync_core::identity::{AppRegistration, SigningKey, Tenant, User};
use dmsync_core::jobs::{Job, JobKind, JobLease, JobState};
use dmsync_core::store::{AutopilotStore, IdentityStore, ImportStore, JobStore, RegistrationImport, SystemStore};
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::convert::*;
use crate::reconcile::{self, AFTER_EVERY_ID, Applied, ReconcileSteps, Window};
use crate::rows::*;
use crate::sql::Dialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per multi-row INSERT; 10 columns each stays far below SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 500;
/// Imported identities per multi-row INSERT: 13 columns each, so half the usual chunk.
const IMPORT_CHUNK: usize = INSERT_CHUNK / 2;

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    reconcile_chunk: i64,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (created if missing) or `sqlite::memory:` and migrates it.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(5))
            // FULL makes a commit durable on power loss, not only on a process crash (WAL with
            // NORMAL is already crash-safe). Bulk work is batched into few transactions, so the
            // fsync per commit costs little. See ARCHITECTURE.md, "Durability".
            .synchronous(SqliteSynchronous::Full);
        let options = if memory { options } else { options.journal_mode(SqliteJournalMode::Wal) };
        // Readers and the writer alike, since list queries run on both.
        let options = crate::sql::sqlite_case_hooks(options);

        // An in-memory database exists per connection, so it gets exactly one, shared by
        // readers and the writer.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&writer).await.map_err(|e| StoreError::Database(e.to_string()))?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await.map_err(db_err)?
        };
        Ok(SqliteStore { writer, reader, reconcile_chunk: RECONCILE_CHUNK })
    }
}

crate::common::store_helpers!(SqliteStore, Sqlite, SqliteRow, Dialect::Sqlite, reader: reader, writer: writer);

crate::common::system_store!(SqliteStore, reader: reader, writer: writer, {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
});

// Domains and UPNs are `COLLATE NOCASE` columns on SQLite, so plain `=` ignores case and keeps
// to their unique indexes.
crate::common::identity_store!(SqliteStore, reader: reader, writer: writer, {
    async fn tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>> {
        let query = sqlx::query("SELECT id, domain FROM tenants WHERE domain = $1").bind(domain);
        let row = query.fetch_optional(&self.reader).await.map_err(db_err)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_principal_name = $2");
        let row = query.bind(tenant.to_string()).bind(upn).fetch_optional(&self.reader).await.map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_first_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        // One statement on the single writer: atomic without a lock of our own.
        let query = crate::common::insert_first_signing_key(key);
        Ok(query.execute(&self.writer).await.map_err(db_err)?.rows_affected() == 1)
    }
});

impl SqliteStore {
    /// Rows per reconciliation chunk (tests use small chunks to cover several).
    pub fn set_reconcile_chunk(&mut self, rows: i64) {
        self.reconcile_chunk = rows.max(1);
    }

    async fn ensure_settings(&self, tenant: TenantId) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO autopilot_settings (tenant_id, id, sync_status) VALUES (?, ?, 'unknown')
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.to_string())
        .bind(Uuid::new_v4().to_string())
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

crate::common::autopilot_store!(SqliteStore, reader: reader, writer: writer, {
    async fn trigger_autopilot_sync(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        cooldown: Duration,
    ) -> StoreResult<SyncDecision> {
        self.ensure_settings(tenant).await?;
        let mut tx = self.begin().await?;
        let now_ticks = to_ticks(now);
        let earliest_anchor = to_ticks(now - cooldown);
        // The decision is this one conditional update: only a row that is not in progress and
        // whose last sync started a full cooldown ago can move to inProgress.
        let started = sqlx::query(
            "UPDATE autopilot_settings
                SET sync_status = 'inProgress', last_manual_sync_trigger = ?1, cooldown_anchor = ?1
              WHERE tenant_id = ?2 AND sync_status <> 'inProgress'
                AND (cooldown_anchor IS NULL OR cooldown_anchor <= ?3)",
        )
        .bind(now_ticks)
        .bind(tenant.to_string())
        .bind(earliest_anchor)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !started {
            let row = sqlx::query("SELECT * FROM autopilot_settings WHERE tenant_id = ?")
                .bind(tenant.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let settings = settings_from_row(&row)?;
            tx.rollback().await.map_err(db_err)?;
            return Ok(refusal(&settings, now, cooldown));
        }
        let job_id = insert_job(&mut tx, tenant, JobKind::AutopilotSync, "{}", now, now).await?;
        tx.commit().await.map_err(db_err)?;
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
        let mut tx = self.begin().await?;
        let (job_state, sync_status) = match outcome {
            SyncOutcome::Completed => (JobState::Succeeded, SyncStatus::Completed),
            SyncOutcome::Failed => (JobState::Failed, SyncStatus::Failed),
        };
        let fenced = sqlx::query(
            "UPDATE jobs SET state = ?, finished_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL
              WHERE id = ? AND attempt = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(job_state.as_str())
        .bind(to_ticks(now))
        .bind(error)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !fenced {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE autopilot_settings
                SET sync_status = ?1,
                    last_sync = CASE WHEN ?1 = 'completed' THEN ?2 ELSE last_sync END
              WHERE tenant_id = ?3",
        )
        .bind(sync_status.as_str())
        .bind(to_ticks(now))
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn begin_registrations(&self, tenant: TenantId) -> StoreResult<Box<dyn RegistrationImport>> {
        let mut tx = self.begin().await?;
        // Staged rows live in a temporary table (on disk, not in memory), so every check and
        // the upsert are set-based statements, whatever the size of the upload.
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS registration_staging (
                line INTEGER NOT NULL, serial_number TEXT NOT NULL, device_id TEXT NOT NULL,
                hardware_hash BLOB NOT NULL, hash_digest BLOB NOT NULL, manufacturer TEXT NOT NULL,
                model TEXT NOT NULL, group_tag TEXT NOT NULL, purchase_order_identifier TEXT NOT NULL,
                product_key TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM registration_staging").execute(&mut *tx).await.map_err(db_err)?;
        Ok(Box::new(SqliteRegistrationImport { tx, tenant }))
    }

    async fn reconcile_autopilot_devices_with_progress(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
    ) -> StoreResult<Option<ReconcileStats>> {
        self.ensure_settings(tenant).await?;
        let steps = SqliteReconcile { store: self, tid: tenant.to_string(), ticks: to_ticks(now) };
        reconcile::run(&steps, self.reconcile_chunk, progress).await
    }

    async fn device_ids_by_serial(&self, tenant: TenantId, serials: &[String]) -> StoreResult<Vec<(String, Uuid)>> {
        let mut found = Vec::new();
        for chunk in serials.chunks(INSERT_CHUNK) {
            let mut sql: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT serial_number, id FROM autopilot_devices WHERE tenant_id = ");
            sql.push_bind(tenant.to_string()).push(" AND serial_number IN (");
            let mut list = sql.separated(", ");
            for serial in chunk {
                list.push_bind(serial);
            }
            sql.push(")");
            for row in sql.build().fetch_all(&self.reader).await.map_err(db_err)? {
                let serial: String = row.try_get("serial_number").map_err(db_err)?;
                let id: String = row.try_get("id").map_err(db_err)?;
                found.push((serial, parse_uuid(&id)?));
            }
        }
        Ok(found)
    }
});

pub(crate) type Tx<'a> = sqlx::Transaction<'a, Sqlite>;

/// The SQLite statements of a reconciliation (see `reconcile.rs`). Every statement that walks
/// registrations names the `(tenant_id, device_id, change_seq)` index: it answers both the
/// device-id range and the window from the index alone, where the planner would otherwise pick
/// an index on the window and rescan all of it for every chunk.
struct SqliteReconcile<'a> {
    store: &'a SqliteStore,
    tid: String,
    ticks: i64,
}

#[async_trait]
impl ReconcileSteps for SqliteReconcile<'_> {
    async fn window(&self) -> StoreResult<Window> {
        let from = sqlx::query_scalar(reconcile::WINDOW_FROM)
            .bind(&self.tid)
            .fetch_one(&self.store.reader)
            .await
            .map_err(db_err)?;
        let to = sqlx::query_scalar(reconcile::WINDOW_TO).fetch_one(&self.store.reader).await.map_err(db_err)?;
        Ok(Window { from, to })
    }

    async fn chunk_end(&self, window: Window, low: &str, rows: i64) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT device_id FROM autopilot_registrations INDEXED BY autopilot_registrations_device_changes
              WHERE tenant_id = ?1 AND device_id > ?2 AND change_seq > ?3 AND change_seq <= ?4
              ORDER BY device_id LIMIT 1 OFFSET ?5",
        )
        .bind(&self.tid)
        .bind(low)
        .bind(window.from)
        .bind(window.to)
        .bind(rows - 1)
        .fetch_optional(&self.store.reader)
        .await
        .map_err(db_err)
    }

    async fn apply_chunk(&self, window: Window, low: &str, high: Option<&str>) -> StoreResult<Applied> {
        let high = high.unwrap_or(AFTER_EVERY_ID);
        let mut tx = self.store.begin().await?;
        // SQLite's upsert reports inserted and updated rows together; the devices counted in the
        // range before and after tell them apart.
        let count = "SELECT count(*) FROM autopilot_devices WHERE tenant_id = ?1 AND id > ?2 AND id <= ?3";
        let before: i64 =
            sqlx::query_scalar(count).bind(&self.tid).bind(low).bind(high).fetch_one(&mut *tx).await.map_err(db_err)?;
        // One pass over the chunk in device-id order, which is the devices table's key order.
        let written = sqlx::query(
            "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                 purchase_order_identifier, product_key, created_at, updated_at)
             SELECT r.tenant_id, r.device_id, r.serial_number, r.manufacturer, r.model, r.group_tag,
                    r.purchase_order_identifier, r.product_key, ?6, ?6
               FROM autopilot_registrations r INDEXED BY autopilot_registrations_device_changes
              WHERE r.tenant_id = ?1 AND r.device_id > ?2 AND r.device_id <= ?3
                AND r.change_seq > ?4 AND r.change_seq <= ?5
              ORDER BY r.device_id
             ON CONFLICT (tenant_id, id) DO UPDATE SET
                 serial_number = excluded.serial_number, manufacturer = excluded.manufacturer,
                 model = excluded.model, group_tag = excluded.group_tag,
                 purchase_order_identifier = excluded.purchase_order_identifier,
                 product_key = excluded.product_key, updated_at = excluded.updated_at
             WHERE serial_number <> excluded.serial_number OR manufacturer <> excluded.manufacturer
                OR model <> excluded.model OR group_tag <> excluded.group_tag
                OR purchase_order_identifier <> excluded.purchase_order_identifier
                OR product_key <> excluded.product_key",
        )
        .bind(&self.tid)
        .bind(low)
        .bind(high)
        .bind(window.from)
        .bind(window.to)
        .bind(self.ticks)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let after: i64 =
            sqlx::query_scalar(count).bind(&self.tid).bind(low).bind(high).fetch_one(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let created = (after - before) as u64;
        Ok(Applied { created, updated: written - created })
    }

    async fn finish(&self, window: Window) -> StoreResult<u64> {
        let mut tx = self.store.begin().await?;
        let deleted = reconcile::finish_in_tx!(tx, &self.tid, window);
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }
}

struct SqliteRegistrationImport {
    tx: Tx<'static>,
    tenant: TenantId,
}

#[async_trait]
impl RegistrationImport for SqliteRegistrationImport {
    async fn stage(&mut self, rows: &[(u64, NewRegistration)]) -> StoreResult<()> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO registration_staging (line, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key) ",
            );
            insert.push_values(chunk, |mut b, (line, r)| {
                b.push_bind(*line as i64)
                    .push_bind(&r.serial_number)
                    .push_bind(new_device_id().to_string())
                    .push_bind(&r.hardware_hash)
                    .push_bind(hash_digest(&r.hardware_hash))
                    .push_bind(&r.manufacturer)
                    .push_bind(&r.model)
                    .push_bind(&r.group_tag)
                    .push_bind(&r.purchase_order_identifier)
                    .push_bind(&r.product_key);
            });
            insert.build().execute(&mut *self.tx).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn commit(
        self: Box<Self>,
        now: OffsetDateTime,
    ) -> StoreResult<Result<RegistrationSummary, Vec<RegistrationRejection>>> {
        let SqliteRegistrationImport { mut tx, tenant } = *self;
        let tid = tenant.to_string();
        for index in [
            "CREATE INDEX IF NOT EXISTS temp.registration_staging_serial ON registration_staging (serial_number)",
            "CREATE INDEX IF NOT EXISTS temp.registration_staging_digest ON registration_staging (hash_digest)",
        ] {
            sqlx::query(index).execute(&mut *tx).await.map_err(db_err)?;
        }
        let rejected = sqlx::query(
            "SELECT line, serial_number, problem FROM (
                SELECT line, serial_number, 'duplicateInRequest' AS problem FROM registration_staging
                 WHERE serial_number IN (SELECT serial_number FROM registration_staging
                                          GROUP BY serial_number HAVING count(*) > 1)
                    OR hash_digest IN (SELECT hash_digest FROM registration_staging
                                        GROUP BY hash_digest HAVING count(*) > 1)
                UNION ALL
                SELECT s.line, s.serial_number,
                       CASE WHEN r.tenant_id <> ?1 THEN 'hashRegisteredToOtherTenant'
                            ELSE 'hashRegisteredToOtherSerial' END
                  FROM registration_staging s JOIN autopilot_registrations r ON r.hash_digest = s.hash_digest
                 WHERE r.tenant_id <> ?1 OR r.serial_number <> s.serial_number
             ) ORDER BY line LIMIT ?2",
        )
        .bind(&tid)
        .bind(MAX_REPORTED_REJECTIONS)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if !rejected.is_empty() {
            tx.rollback().await.map_err(db_err)?;
            return rejected
                .iter()
                .map(|r| {
                    let problem: String = r.try_get("problem").map_err(db_err)?;
                    Ok(RegistrationRejection {
                        line: r.try_get::<i64, _>("line").map_err(db_err)? as u64,
                        serial_number: r.try_get("serial_number").map_err(db_err)?,
                        reason: match problem.as_str() {
                            "duplicateInRequest" => RegistrationProblem::DuplicateInRequest,
                            "hashRegisteredToOtherTenant" => RegistrationProblem::HashRegisteredToOtherTenant,
                            _ => RegistrationProblem::HashRegisteredToOtherSerial,
                        },
                    })
                })
                .collect::<StoreResult<Vec<_>>>()
                .map(Err);
        }

        let counts = sqlx::query(
            "SELECT
                count(*) AS total,
                coalesce(sum(r.serial_number IS NULL), 0) AS created,
                coalesce(sum(r.serial_number IS NOT NULL AND (r.hardware_hash <> s.hardware_hash
                    OR r.manufacturer <> s.manufacturer OR r.model <> s.model OR r.group_tag <> s.group_tag
                    OR r.purchase_order_identifier <> s.purchase_order_identifier
                    OR r.product_key <> s.product_key)), 0) AS updated
               FROM registration_staging s
               LEFT JOIN autopilot_registrations r ON r.tenant_id = ?1 AND r.serial_number = s.serial_number",
        )
        .bind(&tid)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let total = counts.try_get::<i64, _>("total").map_err(db_err)? as u64;
        let created = counts.try_get::<i64, _>("created").map_err(db_err)? as u64;
        let updated = counts.try_get::<i64, _>("updated").map_err(db_err)? as u64;

        let seq = next_registration_seq(&mut tx).await?;
        sqlx::query(
            "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT ?1, serial_number, device_id, hardware_hash, hash_digest, manufacturer, model, group_tag,
                    purchase_order_identifier, product_key, ?2, ?2, ?3
               FROM registration_staging WHERE true
             ON CONFLICT (tenant_id, serial_number) DO UPDATE SET
                 hardware_hash = excluded.hardware_hash, hash_digest = excluded.hash_digest,
                 manufacturer = excluded.manufacturer, model = excluded.model, group_tag = excluded.group_tag,
                 purchase_order_identifier = excluded.purchase_order_identifier,
                 product_key = excluded.product_key, updated_at = excluded.updated_at,
                 change_seq = excluded.change_seq
             WHERE hardware_hash <> excluded.hardware_hash OR manufacturer <> excluded.manufacturer
                OR model <> excluded.model OR group_tag <> excluded.group_tag
                OR purchase_order_identifier <> excluded.purchase_order_identifier
                OR product_key <> excluded.product_key",
        )
        .bind(&tid)
        .bind(to_ticks(now))
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DROP TABLE registration_staging").execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Ok(RegistrationSummary { created, updated, unchanged: total - created - updated }))
    }
}

crate::common::tx_helpers!(Tx<'_>);

crate::common::import_store!(SqliteStore, reader: reader, writer: writer, {
    async fn process_imports(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
    ) -> StoreResult<Option<ImportStats>> {
        self.ensure_settings(tenant).await?;
        let mut tx = self.begin().await?;
        if !end_job_fenced(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        let job = lease.job_id.to_string();
        let ticks = to_ticks(now);
        let fail = |condition: &str, (code, name): (i32, &str)| {
            (
                format!(
                    "UPDATE imported_devices SET status = 'error', error_code = {code}, error_name = '{name}'
                      WHERE job_id = ?1 AND status = 'unknown' AND ({condition})"
                ),
                code,
            )
        };
        let steps = [
            fail(&format!("length(hardware_hash) < {}", import_errors::MIN_HASH_BYTES), import_errors::BAD_HARDWARE_HASH),
            fail(
                "EXISTS (SELECT 1 FROM autopilot_registrations r
                          WHERE r.hash_digest = imported_devices.hash_digest AND r.tenant_id <> imported_devices.tenant_id)",
                import_errors::ASSIGNED_TO_OTHER_TENANT,
            ),
            fail(
                "EXISTS (SELECT 1 FROM autopilot_registrations r
                          WHERE r.tenant_id = imported_devices.tenant_id
                            AND (r.hash_digest = imported_devices.hash_digest OR r.serial_number = imported_devices.serial_number))",
                import_errors::ALREADY_ASSIGNED,
            ),
        ];
        for (statement, _) in &steps {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone())).bind(&job).execute(&mut *tx).await.map_err(db_err)?;
        }
        // Register what is left; within one request the first of two equal hashes or serials
        // wins and the other is already assigned.
        sqlx::query(
            "INSERT OR IGNORE INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash,
                 hash_digest, manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT tenant_id, serial_number, pending_device_id, hardware_hash, hash_digest, '', '', group_tag, '',
                    product_key, ?2, ?2, ?3
               FROM imported_devices WHERE job_id = ?1 AND status = 'unknown' ORDER BY created_at, id",
        )
        .bind(&job)
        .bind(ticks)
        .bind(next_registration_seq(&mut tx).await?)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let completed = sqlx::query(
            "UPDATE imported_devices SET status = 'complete', device_registration_id = pending_device_id
              WHERE job_id = ?1 AND status = 'unknown'
                AND EXISTS (SELECT 1 FROM autopilot_registrations r WHERE r.device_id = imported_devices.pending_device_id)",
        )
        .bind(&job)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let (dup, _) = fail("1 = 1", import_errors::ALREADY_ASSIGNED);
        sqlx::query(sqlx::AssertSqlSafe(dup)).bind(&job).execute(&mut *tx).await.map_err(db_err)?;
        // The device is created with its registration, so it is readable no later than the
        // import reads `complete`, as real Intune shows it.
        sqlx::query(
            "INSERT OR IGNORE INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                 purchase_order_identifier, product_key, user_principal_name, created_at, updated_at)
             SELECT i.tenant_id, i.pending_device_id, i.serial_number, '', '', i.group_tag, '', i.product_key,
                    i.assigned_user_principal_name, ?2, ?2
               FROM imported_devices i WHERE i.job_id = ?1 AND i.status = 'complete'",
        )
        .bind(&job)
        .bind(ticks)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM imported_devices WHERE job_id = ? AND status = 'error'")
            .bind(&job)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if counts_as_sync && completed > 0 {
            sqlx::query(
                "UPDATE autopilot_settings SET cooldown_anchor = max(coalesce(cooldown_anchor, ?1), ?1) WHERE tenant_id = ?2",
            )
            .bind(ticks)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Some(ImportStats { completed, failed: failed as u64 }))
    }
});

crate::common::job_store!(SqliteStore, reader: reader, writer: writer, {
    async fn claim_job(&self, owner: &str, due: OffsetDateTime, wall: OffsetDateTime, lease: Duration) -> StoreResult<Option<Job>> {
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2
              WHERE id = (SELECT id FROM jobs
                           WHERE (state = 'queued' AND run_at <= ?3)
                              OR (state = 'running' AND lease_expires_at <= ?4)
                           ORDER BY run_at, id LIMIT 1)
              RETURNING *",
        )
        .bind(owner)
        .bind(to_ticks(wall + lease))
        .bind(to_ticks(due))
        .bind(to_ticks(wall))
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The Unicode collation must not cost `serialNumber eq` its index: the plan is a search on
    /// the tenant's key, as it was with `COLLATE NOCASE`, never a scan.
    #[tokio::test]
    async fn serial_number_eq_still_searches_by_index() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let filter =
            dmsync_core::filter::parse_filter("serialNumber eq 'üni-1'", |_| Some(DeviceField::SerialNumber)).unwrap();
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new("EXPLAIN QUERY PLAN SELECT * FROM autopilot_devices WHERE tenant_id = ");
        sql.push_bind(Uuid::nil().to_string()).push(" AND ");
        crate::sql::push_filter(&mut sql, Dialect::Sqlite, &filter, crate::sql::device_column);
        let plan: Vec<String> = sql
            .build()
            .fetch_all(&store.reader)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>("detail").unwrap())
            .collect();
        println!("{plan:?}");
        assert!(plan.iter().all(|step| step.starts_with("SEARCH autopilot_devices USING")), "{plan:?}");
    }
}
