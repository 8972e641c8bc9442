//! The PostgreSQL implementation of [`ExchangeStore`]. A connector's sync is claimed with a
//! conditional update of its row (`running_job_id IS NULL`, and for a scheduled sync "still
//! due"), so a sync, manual or scheduled, starts once across replicas.

use async_trait::async_trait;
use sqlx::Postgres;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use dmsync_core::exchange::{
    ConnectorChanges, ConnectorField, ConnectorQuery, ConnectorSource, ConnectorSyncDecision, ConnectorSyncStats,
    EasDevice, ExchangeConnector, ManagedDeviceField, ManagedDeviceQuery, MobileDeviceRecord, SyncType,
};
use dmsync_core::filter::Filter;
use dmsync_core::jobs::{JobKind, JobLease, JobState};
use dmsync_core::store::ExchangeStore;
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::convert::*;
use crate::exchange_sql::{self, SyncSql};
use crate::postgres::{PgStore, Tx, end_job_fenced, insert_job};
use crate::rows::*;

/// Devices per multi-row staging upsert: 22 columns each, far below PostgreSQL's 65,535 parameters.
const UPSERT_CHUNK: usize = 2000;

/// The connector-sync statements this backend shares with the other.
type Sql = SyncSql<Postgres>;

/// Ends the connector's running sync and the job inside `tx`, fenced by the lease.
async fn finish(
    tx: &mut Tx,
    lease: &JobLease,
    tenant: TenantId,
    id: Uuid,
    job_state: JobState,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let fenced = end_job_fenced(tx, lease, job_state, error, now).await?;
    if fenced {
        sqlx::query("UPDATE exchange_connectors SET running_job_id = NULL WHERE tenant_id = $1 AND id = $2 AND running_job_id = $3")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .bind(lease.job_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(fenced)
}

/// When a scheduled sync is due: its type's cut-off times, re-checked by the claim itself.
struct Due {
    full_before: i64,
    delta_before: i64,
}

const FULL_DUE: &str = "coalesce(last_full_sync_start, source_set_at) <= $5";
const ANY_DUE: &str = "(coalesce(last_full_sync_start, source_set_at) <= $5
     OR greatest(coalesce(last_full_sync_start, source_set_at), coalesce(last_delta_sync_start, source_set_at)) <= $6)";

impl PgStore {
    /// Begins a transaction in which the lease is known to hold the job, or `None` when it does not.
    /// A sync's staging writes check it, so a worker whose lease was taken stops writing.
    async fn begin_fenced(&self, lease: &JobLease) -> StoreResult<Option<Tx>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if Sql::lease_held(lease).build().fetch_optional(&mut *tx).await.map_err(db_err)?.is_none() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Marks the connector as syncing and enqueues the job, in one transaction, if no sync of
    /// it runs (and, for a scheduled sync, if it is still due: another replica may have just
    /// started and finished it).
    async fn claim_connector(
        &self,
        tenant: TenantId,
        id: Uuid,
        sync_type: SyncType,
        now: OffsetDateTime,
        due: Option<Due>,
    ) -> StoreResult<ConnectorSyncDecision> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let job_id = Uuid::now_v7();
        let started_column = match sync_type {
            SyncType::FullSync => "last_full_sync_start",
            SyncType::DeltaSync => "last_delta_sync_start",
        };
        let still_due = match (&due, sync_type) {
            (None, _) => "($5::bigint IS NULL AND $6::bigint IS NULL)",
            (Some(_), SyncType::FullSync) => FULL_DUE,
            (Some(_), SyncType::DeltaSync) => ANY_DUE,
        };
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE exchange_connectors SET running_job_id = $1, {started_column} = $2
              WHERE tenant_id = $3 AND id = $4 AND running_job_id IS NULL AND {still_due}"
        )))
        .bind(job_id.to_string())
        .bind(to_ticks(now))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(due.as_ref().map(|d| d.full_before))
        .bind(due.as_ref().map(|d| d.delta_before))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !claimed {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM exchange_connectors WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            tx.rollback().await.map_err(db_err)?;
            return Ok(if exists.is_some() {
                ConnectorSyncDecision::AlreadyRunning
            } else {
                ConnectorSyncDecision::NotFound
            });
        }
        let payload = serde_json::json!({ "connectorId": id, "syncType": sync_type.as_str() }).to_string();
        let inserted = insert_job(&mut tx, tenant, JobKind::ExchangeConnectorSync, &payload, now, now).await?;
        // The job row and the connector's marker must name the same job.
        sqlx::query("UPDATE exchange_connectors SET running_job_id = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(inserted.to_string())
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(ConnectorSyncDecision::Started { job_id: inserted })
    }
}

crate::common::exchange_store!(PgStore, reader: pool, writer: pool, {
    async fn update_connector(&self, tenant: TenantId, id: Uuid, changes: &ConnectorChanges) -> StoreResult<Option<ExchangeConnector>> {
        let row = sqlx::query(
            "UPDATE exchange_connectors SET
                primary_smtp_address = coalesce($3, primary_smtp_address),
                server_name = coalesce($4, server_name),
                connector_server_name = coalesce($5, connector_server_name),
                connector_type = coalesce($6, connector_type),
                version = coalesce($7, version),
                exchange_alias = coalesce($8, exchange_alias),
                exchange_organization = coalesce($9, exchange_organization)
              WHERE tenant_id = $1 AND id = $2
              RETURNING *",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(&changes.primary_smtp_address)
        .bind(&changes.server_name)
        .bind(&changes.connector_server_name)
        .bind(changes.connector_type.map(|t| t.as_str()))
        .bind(&changes.version)
        .bind(&changes.exchange_alias)
        .bind(&changes.exchange_organization)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(connector_from_row).transpose()
    }

    async fn trigger_connector_sync(
        &self,
        tenant: TenantId,
        id: Uuid,
        sync_type: SyncType,
        now: OffsetDateTime,
    ) -> StoreResult<ConnectorSyncDecision> {
        self.claim_connector(tenant, id, sync_type, now, None).await
    }

    async fn schedule_connector_syncs(&self, now: OffsetDateTime, delta_every: Duration, full_every: Duration) -> StoreResult<u64> {
        let full_before = to_ticks(now - full_every);
        let delta_before = to_ticks(now - delta_every);
        // Due relative to the last sync of each kind, or to when the source was set. The same
        // condition is checked again by each claim, under the row lock.
        let due = sqlx::query(
            "SELECT tenant_id, id, coalesce(last_full_sync_start, source_set_at) <= $1 AS full_due
               FROM exchange_connectors
              WHERE source IS NOT NULL AND running_job_id IS NULL
                AND (coalesce(last_full_sync_start, source_set_at) <= $1
                     OR greatest(coalesce(last_full_sync_start, source_set_at),
                                 coalesce(last_delta_sync_start, source_set_at)) <= $2)",
        )
        .bind(full_before)
        .bind(delta_before)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut started = 0;
        for row in due {
            let kind = if row.flag("full_due")? { SyncType::FullSync } else { SyncType::DeltaSync };
            let due = Due { full_before, delta_before };
            if let ConnectorSyncDecision::Started { .. } =
                self.claim_connector(row.uuid("tenant_id")?, row.uuid("id")?, kind, now, Some(due)).await?
            {
                started += 1;
            }
        }
        Ok(started)
    }

    async fn complete_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: Uuid,
        full: bool,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ConnectorSyncStats>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if !finish(&mut tx, lease, tenant, id, JobState::Succeeded, None, now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        // Marks which devices this sync saw: unique per attempt of this job.
        let mark = to_ticks(now) ^ lease.attempt;
        let upserted = Sql::apply_staged(lease, tenant, id, to_ticks(now), mark)
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let removed = if full {
            Sql::remove_unseen(tenant, id, mark).build().execute(&mut *tx).await.map_err(db_err)?.rows_affected()
        } else {
            0
        };
        let watermark: Option<i64> =
            Sql::staged_watermark(lease, tenant, id).build_query_scalar().fetch_one(&mut *tx).await.map_err(db_err)?;
        Sql::clear_staged(tenant, id).build().execute(&mut *tx).await.map_err(db_err)?;
        sqlx::query(
            "UPDATE exchange_connectors
                SET status = 'connected', last_sync = $1,
                    watermark = CASE WHEN $2::bigint IS NULL THEN watermark ELSE greatest(watermark, $2::bigint) END
              WHERE tenant_id = $3 AND id = $4",
        )
        .bind(to_ticks(now))
        .bind(watermark)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        // Every staged device is inserted or updated once, so the devices read are those upserted.
        Ok(Some(ConnectorSyncStats { read: upserted, upserted, removed }))
    }

    async fn fail_connector_sync(&self, lease: &JobLease, tenant: TenantId, id: Uuid, error: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if !finish(&mut tx, lease, tenant, id, JobState::Failed, Some(error), now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query("UPDATE exchange_connectors SET status = 'disconnected' WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Sql::clear_staged(tenant, id).build().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
});
