//! The SQLite implementation of [`ExchangeStore`].

use async_trait::async_trait;
use sqlx::Sqlite;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use dmsync_core::exchange::{
    ConnectorChanges, ConnectorField, ConnectorQuery, ConnectorSource, ConnectorSyncDecision, ConnectorSyncStats,
    EasDevice, ExchangeConnector, ManagedDeviceField, ManagedDeviceQuery, MobileDeviceRecord, SyncType,
};
use dmsync_core::filter::Filter;
use dmsync_core::jobs::{JobKind, JobLease};
use dmsync_core::store::ExchangeStore;
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::convert::*;
use crate::exchange_sql::{self, SyncSql};
use crate::rows::*;
use crate::sqlite::{SqliteStore, Tx, insert_job};

/// Devices per multi-row staging upsert: 22 columns each, far below SQLite's bound-parameter
/// limit.
const UPSERT_CHUNK: usize = 500;

/// The connector-sync statements this backend shares with the other.
type Sql = SyncSql<Sqlite>;

/// Ends the connector's running sync and the job inside `tx`, fenced by the lease.
async fn finish(
    tx: &mut Tx<'_>,
    lease: &JobLease,
    tenant: TenantId,
    id: Uuid,
    job_state: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let fenced = sqlx::query(
        "UPDATE jobs SET state = ?, finished_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL
          WHERE id = ? AND attempt = ? AND lease_owner = ? AND state = 'running'",
    )
    .bind(job_state)
    .bind(to_ticks(now))
    .bind(error)
    .bind(lease.job_id.to_string())
    .bind(lease.attempt)
    .bind(&lease.owner)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected()
        == 1;
    if fenced {
        sqlx::query("UPDATE exchange_connectors SET running_job_id = NULL WHERE tenant_id = ? AND id = ? AND running_job_id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .bind(lease.job_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(fenced)
}

impl SqliteStore {
    /// Begins a transaction in which the lease is known to hold the job, or `None` when it does not.
    /// A sync's staging writes check it, so a worker whose lease was taken stops writing.
    async fn begin_fenced(&self, lease: &JobLease) -> StoreResult<Option<Tx<'_>>> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        if Sql::lease_held(lease).build().fetch_optional(&mut *tx).await.map_err(db_err)?.is_none() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        Ok(Some(tx))
    }
}

crate::common::exchange_store!(SqliteStore, reader: reader, writer: writer, {
    async fn update_connector(
        &self,
        tenant: TenantId,
        id: Uuid,
        changes: &ConnectorChanges,
    ) -> StoreResult<Option<ExchangeConnector>> {
        let row = sqlx::query(
            "UPDATE exchange_connectors SET
                primary_smtp_address = coalesce(?3, primary_smtp_address),
                server_name = coalesce(?4, server_name),
                connector_server_name = coalesce(?5, connector_server_name),
                connector_type = coalesce(?6, connector_type),
                version = coalesce(?7, version),
                exchange_alias = coalesce(?8, exchange_alias),
                exchange_organization = coalesce(?9, exchange_organization)
              WHERE tenant_id = ?1 AND id = ?2
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
        .fetch_optional(&self.writer)
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let job_id = Uuid::now_v7();
        let started_column = match sync_type {
            SyncType::FullSync => "last_full_sync_start",
            SyncType::DeltaSync => "last_delta_sync_start",
        };
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE exchange_connectors SET running_job_id = ?1, {started_column} = ?2
              WHERE tenant_id = ?3 AND id = ?4 AND running_job_id IS NULL"
        )))
        .bind(job_id.to_string())
        .bind(to_ticks(now))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !claimed {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM exchange_connectors WHERE tenant_id = ? AND id = ?")
                .bind(tenant.to_string())
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.rollback().await.map_err(db_err)?;
            return Ok(if exists.is_some() { ConnectorSyncDecision::AlreadyRunning } else { ConnectorSyncDecision::NotFound });
        }
        let payload = serde_json::json!({ "connectorId": id, "syncType": sync_type.as_str() }).to_string();
        let inserted = insert_job(&mut tx, tenant, JobKind::ExchangeConnectorSync, &payload, now, now).await?;
        // The job row and the connector's marker must name the same job.
        sqlx::query("UPDATE exchange_connectors SET running_job_id = ? WHERE tenant_id = ? AND id = ?")
            .bind(inserted.to_string())
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(ConnectorSyncDecision::Started { job_id: inserted })
    }

    async fn schedule_connector_syncs(
        &self,
        now: OffsetDateTime,
        delta_every: Duration,
        full_every: Duration,
    ) -> StoreResult<u64> {
        // Due relative to the last sync of each kind, or to when the source was set.
        let due = sqlx::query(
            "SELECT tenant_id, id,
                    coalesce(last_full_sync_start, source_set_at) <= ?1 AS full_due
               FROM exchange_connectors
              WHERE source IS NOT NULL AND running_job_id IS NULL
                AND (coalesce(last_full_sync_start, source_set_at) <= ?1
                     OR max(coalesce(last_full_sync_start, source_set_at),
                            coalesce(last_delta_sync_start, source_set_at)) <= ?2)",
        )
        .bind(to_ticks(now - full_every))
        .bind(to_ticks(now - delta_every))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let mut started = 0;
        for row in due {
            let tenant = row.uuid("tenant_id")?;
            let id = row.uuid("id")?;
            let kind = if row.flag("full_due")? { SyncType::FullSync } else { SyncType::DeltaSync };
            // The conditional claim makes a sync due on several replicas start once.
            if let ConnectorSyncDecision::Started { .. } = self.trigger_connector_sync(tenant, id, kind, now).await? {
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        if !finish(&mut tx, lease, tenant, id, "succeeded", None, now).await? {
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
                SET status = 'connected', last_sync = ?1,
                    watermark = CASE WHEN ?2 IS NULL THEN watermark ELSE max(coalesce(watermark, ?2), ?2) END
              WHERE tenant_id = ?3 AND id = ?4",
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

    async fn fail_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: Uuid,
        error: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        if !finish(&mut tx, lease, tenant, id, "failed", Some(error), now).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query("UPDATE exchange_connectors SET status = 'disconnected' WHERE tenant_id = ? AND id = ?")
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
