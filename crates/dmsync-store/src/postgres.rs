//! The PostgreSQL backend: one pool shared by any number of dmsync replicas. Everything the
//! replicas share (signing keys, the clock offset, jobs, every tenant's state) is in the
//! database, and every decision that must happen once across replicas is one conditional
//! statement or a row lock:
//! - the Autopilot sync decision is one conditional `UPDATE` (READ COMMITTED re-checks its
//!   condition on the row a concurrent winner committed, so exactly one request wins);
//! - jobs are claimed with `FOR UPDATE SKIP LOCKED` and completed fenced by (id, attempt, owner);
//! - the registration change sequence is a counter row whose lock is held until commit, so
//!   sequence values are committed in the order they are handed out (see
//!   `next_registration_seq` in common.rs).

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT: 13 columns each stays far below PostgreSQL's 65,535 parameters.
const INSERT_CHUNK: usize = 2000;
/// Imported identities per multi-row INSERT (13 columns each).
const IMPORT_CHUNK: usize = INSERT_CHUNK;

pub(crate) type Tx = sqlx::Transaction<'static, Postgres>;

pub struct PgStore {
    pub(crate) pool: PgPool,
    reconcile_chunk: i64,
}

impl PgStore {
    /// Connects to `postgres://…` and runs the migrations. Replicas starting together are safe:
    /// sqlx's migrator holds an advisory lock while it migrates.
    pub async fn open(url: &str) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect(url)
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(PgStore { pool, reconcile_chunk: RECONCILE_CHUNK })
    }

    /// Rows per reconciliation chunk (tests use small chunks to cover several).
    pub fn set_reconcile_chunk(&mut self, rows: i64) {
        self.reconcile_chunk = rows.max(1);
    }

    async fn ensure_settings(&self, tenant: TenantId) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO autopilot_settings (tenant_id, id, sync_status) VALUES ($1, $2, 'unknown')
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.to_string())
        .bind(Uuid::new_v4().to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

crate::common::store_helpers!(PgStore, Postgres, PgRow, Dialect::Postgres, reader: pool, writer: pool);

crate::common::system_store!(PgStore, reader: pool, writer: pool, {
    async fn close(&self) {
        // close() waits for every connection to come back, so a statement still running after
        // the shutdown deadline would hold the process; past a few seconds it is dropped, and
        // PostgreSQL rolls its transaction back when the connection goes.
        if tokio::time::timeout(StdDuration::from_secs(5), self.pool.close()).await.is_err() {
            tracing::warn!("database connections still busy at shutdown; closing them");
        }
    }
});

// Domains and UPNs compare with lower() on both sides; the unique indexes are on lower(…).
crate::common::identity_store!(PgStore, reader: pool, writer: pool, {
    async fn tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>> {
        let query = sqlx::query("SELECT id, domain FROM tenants WHERE lower(domain) = lower($1)").bind(domain);
        let row = query.fetch_optional(&self.pool).await.map_err(db_err)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND lower(user_principal_name) = lower($2)");
        let row = query.bind(tenant.to_string()).bind(upn).fetch_optional(&self.pool).await.map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_first_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // Replicas starting together on an empty database each generate a key; the table lock
        // makes the emptiness check and the insert one step, so exactly one key is kept.
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await.map_err(db_err)?;
        let n = crate::common::insert_first_signing_key(key).execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(n == 1)
    }
});

crate::common::tx_helpers!(Tx);

crate::common::autopilot_store!(PgStore, reader: pool, writer: pool, {
    async fn trigger_autopilot_sync(&self, tenant: TenantId, now: OffsetDateTime, cooldown: Duration) -> StoreResult<SyncDecision> {
        self.ensure_settings(tenant).await?;
        let mut tx = self.begin().await?;
        // The decision is this one conditional update. Concurrent requests queue on the row
        // lock; under READ COMMITTED each re-checks the condition against the row the winner
        // committed, so exactly one of them, on any replica, starts the sync.
        let started = sqlx::query(
            "UPDATE autopilot_settings
                SET sync_status = 'inProgress', last_manual_sync_trigger = $1, cooldown_anchor = $1
              WHERE tenant_id = $2 AND sync_status <> 'inProgress'
                AND (cooldown_anchor IS NULL OR cooldown_anchor <= $3)",
        )
        .bind(to_ticks(now))
        .bind(tenant.to_string())
        .bind(to_ticks(now - cooldown))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !started {
            let row = sqlx::query("SELECT * FROM autopilot_settings WHERE tenant_id = $1")
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
        let (job_state, sync_status) = match outcome {
            SyncOutcome::Completed => (JobState::Succeeded, SyncStatus::Completed),
            SyncOutcome::Failed => (JobState::Failed, SyncStatus::Failed),
        };
        let mut tx = self.begin().await?;
        if !end_job_fenced(&mut tx, lease, job_state, error, now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE autopilot_settings
                SET sync_status = $1,
                    last_sync = CASE WHEN $1 = 'completed' THEN $2 ELSE last_sync END
              WHERE tenant_id = $3",
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
        // Staged rows live in a temporary table of this transaction's connection, so every
        // check and the upsert are set-based statements, whatever the size of the upload.
        sqlx::query(
            r#"CREATE TEMP TABLE registration_staging (
                line BIGINT NOT NULL, serial_number TEXT COLLATE "C" NOT NULL, device_id TEXT COLLATE "C" NOT NULL,
                hardware_hash BYTEA NOT NULL, hash_digest BYTEA NOT NULL, manufacturer TEXT COLLATE "C" NOT NULL,
                model TEXT COLLATE "C" NOT NULL, group_tag TEXT COLLATE "C" NOT NULL,
                purchase_order_identifier TEXT COLLATE "C" NOT NULL, product_key TEXT COLLATE "C" NOT NULL
            ) ON COMMIT DROP"#,
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        Ok(Box::new(PgRegistrationImport { tx, tenant }))
    }

    async fn reconcile_autopilot_devices_with_progress(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
    ) -> StoreResult<Option<ReconcileStats>> {
        self.ensure_settings(tenant).await?;
        let steps = PgReconcile { store: self, tid: tenant.to_string(), ticks: to_ticks(now) };
        reconcile::run(&steps, self.reconcile_chunk, progress).await
    }

    async fn device_ids_by_serial(&self, tenant: TenantId, serials: &[String]) -> StoreResult<Vec<(String, Uuid)>> {
        let rows = sqlx::query("SELECT serial_number, id FROM autopilot_devices WHERE tenant_id = $1 AND serial_number = ANY($2)")
            .bind(tenant.to_string())
            .bind(serials)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(|row| Ok((row.text("serial_number")?, row.uuid("id")?))).collect()
    }
});

/// The PostgreSQL statements of a reconciliation (see `reconcile.rs`).
struct PgReconcile<'a> {
    store: &'a PgStore,
    tid: String,
    ticks: i64,
}

#[async_trait]
impl ReconcileSteps for PgReconcile<'_> {
    async fn window(&self) -> StoreResult<Window> {
        let from = sqlx::query_scalar(reconcile::WINDOW_FROM)
            .bind(&self.tid)
            .fetch_one(&self.store.pool)
            .await
            .map_err(db_err)?;
        let to = sqlx::query_scalar(reconcile::WINDOW_TO).fetch_one(&self.store.pool).await.map_err(db_err)?;
        Ok(Window { from, to })
    }

    async fn chunk_end(&self, window: Window, low: &str, rows: i64) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT device_id FROM autopilot_registrations
              WHERE tenant_id = $1 AND device_id > $2 AND change_seq > $3 AND change_seq <= $4
              ORDER BY device_id LIMIT 1 OFFSET $5",
        )
        .bind(&self.tid)
        .bind(low)
        .bind(window.from)
        .bind(window.to)
        .bind(rows - 1)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(db_err)
    }

    async fn apply_chunk(&self, window: Window, low: &str, high: Option<&str>) -> StoreResult<Applied> {
        // One upsert; `xmax = 0` marks the rows it inserted rather than updated. Existing devices
        // are found by the conflict clause, not by an anti-join: on a table that has just grown,
        // stale statistics can make the planner rescan it for every registration.
        let (created, updated): (i64, i64) = sqlx::query_as(
            "WITH written AS (
                INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                     purchase_order_identifier, product_key, created_at, updated_at)
                SELECT r.tenant_id, r.device_id, r.serial_number, r.manufacturer, r.model, r.group_tag,
                       r.purchase_order_identifier, r.product_key, $6, $6
                  FROM autopilot_registrations r
                 WHERE r.tenant_id = $1 AND r.device_id > $2 AND r.device_id <= $3
                   AND r.change_seq > $4 AND r.change_seq <= $5
                 ORDER BY r.device_id
                ON CONFLICT (tenant_id, id) DO UPDATE SET
                    serial_number = excluded.serial_number, manufacturer = excluded.manufacturer,
                    model = excluded.model, group_tag = excluded.group_tag,
                    purchase_order_identifier = excluded.purchase_order_identifier,
                    product_key = excluded.product_key, updated_at = excluded.updated_at
                WHERE (autopilot_devices.serial_number, autopilot_devices.manufacturer, autopilot_devices.model,
                       autopilot_devices.group_tag, autopilot_devices.purchase_order_identifier,
                       autopilot_devices.product_key)
                      IS DISTINCT FROM (excluded.serial_number, excluded.manufacturer, excluded.model,
                       excluded.group_tag, excluded.purchase_order_identifier, excluded.product_key)
                RETURNING xmax = 0 AS inserted
             )
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
        )
        .bind(&self.tid)
        .bind(low)
        .bind(high.unwrap_or(AFTER_EVERY_ID))
        .bind(window.from)
        .bind(window.to)
        .bind(self.ticks)
        .fetch_one(&self.store.pool)
        .await
        .map_err(db_err)?;
        Ok(Applied { created: created as u64, updated: updated as u64 })
    }

    async fn finish(&self, window: Window) -> StoreResult<u64> {
        let mut tx = self.store.begin().await?;
        let deleted = reconcile::finish_in_tx!(tx, &self.tid, window);
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }
}

struct PgRegistrationImport {
    tx: Tx,
    tenant: TenantId,
}

#[async_trait]
impl RegistrationImport for PgRegistrationImport {
    async fn stage(&mut self, rows: &[(u64, NewRegistration)]) -> StoreResult<()> {
        // One statement per batch whatever its size: each column travels as one array.
        let column =
            |f: fn(&NewRegistration) -> &String| rows.iter().map(|(_, r)| f(r).clone()).collect::<Vec<String>>();
        sqlx::query(
            "INSERT INTO registration_staging (line, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[],
                                  $7::text[], $8::text[], $9::text[], $10::text[])",
        )
        .bind(rows.iter().map(|(line, _)| *line as i64).collect::<Vec<i64>>())
        .bind(column(|r| &r.serial_number))
        .bind(rows.iter().map(|_| new_device_id().to_string()).collect::<Vec<String>>())
        .bind(rows.iter().map(|(_, r)| r.hardware_hash.clone()).collect::<Vec<Vec<u8>>>())
        .bind(rows.iter().map(|(_, r)| hash_digest(&r.hardware_hash)).collect::<Vec<Vec<u8>>>())
        .bind(column(|r| &r.manufacturer))
        .bind(column(|r| &r.model))
        .bind(column(|r| &r.group_tag))
        .bind(column(|r| &r.purchase_order_identifier))
        .bind(column(|r| &r.product_key))
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn commit(
        self: Box<Self>,
        now: OffsetDateTime,
    ) -> StoreResult<Result<RegistrationSummary, Vec<RegistrationRejection>>> {
        let PgRegistrationImport { mut tx, tenant } = *self;
        let tid = tenant.to_string();
        // From here to the commit, registration writers are serialised (see
        // next_registration_seq), so the checks below see every registration they could
        // conflict with, as on SQLite.
        let seq = next_registration_seq(&mut tx).await?;
        for index in [
            "CREATE INDEX ON registration_staging (serial_number)",
            "CREATE INDEX ON registration_staging (hash_digest)",
            "ANALYZE registration_staging",
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
                       CASE WHEN r.tenant_id <> $1 THEN 'hashRegisteredToOtherTenant'
                            ELSE 'hashRegisteredToOtherSerial' END
                  FROM registration_staging s JOIN autopilot_registrations r ON r.hash_digest = s.hash_digest
                 WHERE r.tenant_id <> $1 OR r.serial_number <> s.serial_number
             ) AS refused ORDER BY line LIMIT $2",
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
                    Ok(RegistrationRejection {
                        line: r.int("line")? as u64,
                        serial_number: r.text("serial_number")?,
                        reason: match r.text("problem")?.as_str() {
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
                count(*) FILTER (WHERE r.serial_number IS NULL) AS created,
                count(*) FILTER (WHERE r.serial_number IS NOT NULL AND (r.hardware_hash <> s.hardware_hash
                    OR r.manufacturer <> s.manufacturer OR r.model <> s.model OR r.group_tag <> s.group_tag
                    OR r.purchase_order_identifier <> s.purchase_order_identifier
                    OR r.product_key <> s.product_key)) AS updated
               FROM registration_staging s
               LEFT JOIN autopilot_registrations r ON r.tenant_id = $1 AND r.serial_number = s.serial_number",
        )
        .bind(&tid)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let total = counts.int("total")? as u64;
        let created = counts.int("created")? as u64;
        let updated = counts.int("updated")? as u64;

        sqlx::query(
            "INSERT INTO autopilot_registrations AS r (tenant_id, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT $1, serial_number, device_id, hardware_hash, hash_digest, manufacturer, model, group_tag,
                    purchase_order_identifier, product_key, $2, $2, $3
               FROM registration_staging
             ON CONFLICT (tenant_id, serial_number) DO UPDATE SET
                 hardware_hash = excluded.hardware_hash, hash_digest = excluded.hash_digest,
                 manufacturer = excluded.manufacturer, model = excluded.model, group_tag = excluded.group_tag,
                 purchase_order_identifier = excluded.purchase_order_identifier,
                 product_key = excluded.product_key, updated_at = excluded.updated_at,
                 change_seq = excluded.change_seq
             WHERE r.hardware_hash <> excluded.hardware_hash OR r.manufacturer <> excluded.manufacturer
                OR r.model <> excluded.model OR r.group_tag <> excluded.group_tag
                OR r.purchase_order_identifier <> excluded.purchase_order_identifier
                OR r.product_key <> excluded.product_key",
        )
        .bind(&tid)
        .bind(to_ticks(now))
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Ok(RegistrationSummary { created, updated, unchanged: total - created - updated }))
    }
}

crate::common::import_store!(PgStore, reader: pool, writer: pool, {
    async fn process_imports(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
    ) -> StoreResult<Option<ImportStats>> {
        self.ensure_settings(tenant).await?;
        let mut tx = self.begin().await?;
        // The sequence first: it is the lock that orders registration writers.
        let seq = next_registration_seq(&mut tx).await?;
        if !end_job_fenced(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        let job = lease.job_id.to_string();
        let tid = tenant.to_string();
        let ticks = to_ticks(now);
        // The imports of this job and of every earlier import job of the tenant not processed
        // yet. Workers of several replicas process import jobs in parallel; without this, a
        // later import could take the seq lock first and win a hash that an earlier import
        // asked for. With it, whichever job commits first decides in request order, and the
        // other finds its imports already decided.
        let pending = "status = 'unknown' AND job_id IN (
            SELECT j.id FROM jobs j
             WHERE j.tenant_id = $2 AND j.kind = 'importAutopilotDevices'
               AND j.run_at <= (SELECT run_at FROM jobs WHERE id = $1))";
        let fail = |condition: &str, (code, name): (i32, &str)| {
            format!(
                "UPDATE imported_devices SET status = 'error', error_code = {code}, error_name = '{name}'
                  WHERE {pending} AND ({condition})"
            )
        };
        let steps = [
            fail(&format!("octet_length(hardware_hash) < {}", import_errors::MIN_HASH_BYTES), import_errors::BAD_HARDWARE_HASH),
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
            sqlx::query(sqlx::AssertSqlSafe(statement)).bind(&job).bind(&tid).execute(&mut *tx).await.map_err(db_err)?;
        }
        // Register what is left; of two equal hashes or serials the earlier request wins and
        // the other is already assigned.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash,
                 hash_digest, manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT tenant_id, serial_number, pending_device_id, hardware_hash, hash_digest, '', '', group_tag, '',
                    product_key, $3, $3, $4
               FROM imported_devices WHERE {pending} ORDER BY created_at, id
             ON CONFLICT DO NOTHING"
        )))
        .bind(&job)
        .bind(&tid)
        .bind(ticks)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Which imports just became complete: their devices are created below.
        let completed_ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE imported_devices SET status = 'complete', device_registration_id = pending_device_id
              WHERE {pending}
                AND EXISTS (SELECT 1 FROM autopilot_registrations r WHERE r.device_id = imported_devices.pending_device_id)
              RETURNING id"
        )))
        .bind(&job)
        .bind(&tid)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let completed = completed_ids.len() as u64;
        sqlx::query(sqlx::AssertSqlSafe(fail("true", import_errors::ALREADY_ASSIGNED)))
            .bind(&job)
            .bind(&tid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM imported_devices WHERE job_id = $1 AND status = 'error'")
            .bind(&job)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        // The device is created with its registration, so it is readable no later than the
        // import reads `complete`, as real Intune shows it.
        sqlx::query(
            "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
                 purchase_order_identifier, product_key, user_principal_name, created_at, updated_at)
             SELECT i.tenant_id, i.pending_device_id, i.serial_number, '', '', i.group_tag, '', i.product_key,
                    i.assigned_user_principal_name, $3, $3
               FROM imported_devices i WHERE i.tenant_id = $1 AND i.id = ANY($2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&tid)
        .bind(&completed_ids)
        .bind(ticks)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if counts_as_sync && completed > 0 {
            sqlx::query(
                "UPDATE autopilot_settings SET cooldown_anchor = greatest(coalesce(cooldown_anchor, $1), $1) WHERE tenant_id = $2",
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

crate::common::job_store!(PgStore, reader: pool, writer: pool, {
    async fn claim_job(&self, owner: &str, due: OffsetDateTime, wall: OffsetDateTime, lease: Duration) -> StoreResult<Option<Job>> {
        // SKIP LOCKED: workers of every replica claim at once without waiting on each other's
        // candidate rows; the row lock then makes the claim exclusive.
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2
              WHERE id = (SELECT id FROM jobs
                           WHERE (state = 'queued' AND run_at <= $3)
                              OR (state = 'running' AND lease_expires_at <= $4)
                           ORDER BY run_at, id LIMIT 1
                           FOR UPDATE SKIP LOCKED)
              RETURNING *",
        )
        .bind(owner)
        .bind(to_ticks(wall + lease))
        .bind(to_ticks(due))
        .bind(to_ticks(wall))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }
});
