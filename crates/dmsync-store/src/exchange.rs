//! [`ExchangeStore`]: Exchange connectors, the staging and application of a connector sync's
//! records, and the devices the syncs discovered. A connector's sync is claimed with a
//! conditional update of its row (`running_job_id IS NULL`, and for a scheduled sync "still
//! due"), so a sync, manual or scheduled, starts once across replicas.

use std::collections::HashMap;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use dmsync_core::exchange::{
    ConnectorChanges, ConnectorField, ConnectorQuery, ConnectorSource, ConnectorSyncDecision, ConnectorSyncStats,
    EasDevice, ExchangeConnector, ManagedDeviceField, ManagedDeviceQuery, MobileDeviceRecord, SyncType,
};
use dmsync_core::filter::Filter;
use dmsync_core::jobs::{JobLease, JobState, NewJob};
use dmsync_core::store::ExchangeStore;
use dmsync_core::{ConnectorId, EasDeviceId, StoreError, StoreResult, TenantId};

use crate::convert::to_ticks;
use crate::db::{Query, SqlStore, Tx, Value};
use crate::jobs::{end_job, insert_job};
use crate::rows::*;
use crate::sql::{connector_column, managed_device_column};

/// The record columns `eas_sync_staging` and `eas_devices` share, in the order they are bound.
const RECORD_COLUMNS: &str =
    "eas_device_id, id, device_type, device_model, device_os, friendly_name, user_display_name,
     user_principal_name, email_address, access_state, access_state_reason, first_sync, last_success_sync,
     when_changed, device_name, operating_system, os_version, manufacturer";

/// `col = excluded.col` for every record column but the keys and the new device's id.
fn updated_columns() -> String {
    RECORD_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "eas_device_id" | "id"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps the last record of each device id, in their order. A device listed twice keeps its
/// last record, as a row-by-row upsert would; PostgreSQL refuses an upsert that touches one row
/// twice, so each statement must see a device once.
fn last_of_each_device(records: &[MobileDeviceRecord]) -> Vec<&MobileDeviceRecord> {
    let mut last_of: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last_of.insert(r.device_id.as_str(), i);
    }
    records.iter().enumerate().filter(|(i, r)| last_of[r.device_id.as_str()] == *i).map(|(_, r)| r).collect()
}

/// An upsert of `records` into the attempt's staging rows: a device read again in a later batch
/// of the same attempt keeps its later record.
fn stage_records(lease: &JobLease, tenant: TenantId, connector: ConnectorId, records: &[&MobileDeviceRecord]) -> Query {
    let mut insert = Query::new(format!(
        "INSERT INTO eas_sync_staging (tenant_id, connector_id, job_id, attempt, {RECORD_COLUMNS}) VALUES "
    ));
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        let (os, version) = r.operating_system();
        insert.push_row([
            Value::from(tenant),
            Value::from(connector),
            Value::from(lease.job_id),
            Value::from(lease.attempt),
            Value::from(&r.device_id),
            Value::from(EasDeviceId::new()),
            Value::from(&r.device_type),
            Value::from(&r.device_model),
            Value::from(&r.device_os),
            Value::from(&r.friendly_name),
            Value::from(&r.user_display_name),
            Value::from(&r.user_principal_name),
            Value::from(&r.email_address),
            Value::from(r.access_state.as_str()),
            Value::from(&r.access_state_reason),
            Value::from(r.first_sync),
            Value::from(r.last_success_sync),
            Value::from(r.when_changed),
            Value::from(r.device_name()),
            Value::from(os),
            Value::from(version),
            Value::from(r.manufacturer()),
        ]);
    }
    insert.push(" ON CONFLICT (tenant_id, connector_id, job_id, attempt, eas_device_id) DO UPDATE SET ");
    insert.push(&updated_columns());
    insert
}

/// `$1` tenant and `$2` connector, and with a lease `$3` job and `$4` attempt: the connector's
/// staged rows, or the attempt's.
fn staged_by(lease: Option<&JobLease>) -> &'static str {
    match lease {
        Some(_) => "tenant_id = $1 AND connector_id = $2 AND job_id = $3 AND attempt = $4",
        None => "tenant_id = $1 AND connector_id = $2",
    }
}

fn bind_staged(query: Query, tenant: TenantId, connector: ConnectorId, lease: Option<&JobLease>) -> Query {
    let query = query.bind(tenant).bind(connector);
    match lease {
        Some(lease) => query.bind(lease.job_id).bind(lease.attempt),
        None => query,
    }
}

/// Empties the connector's staging: this attempt's rows and any an earlier attempt left.
fn clear_staged(tenant: TenantId, connector: ConnectorId) -> Query {
    bind_staged(Query::new(format!("DELETE FROM eas_sync_staging WHERE {}", staged_by(None))), tenant, connector, None)
}

/// Ends the connector's running sync and the job inside `tx`, fenced by the lease.
async fn end_sync(
    tx: &mut Tx,
    lease: &JobLease,
    tenant: TenantId,
    id: ConnectorId,
    state: JobState,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let fenced = end_job(tx, lease, state, error, now).await?;
    if fenced {
        let query = Query::new(
            "UPDATE exchange_connectors SET running_job_id = NULL WHERE tenant_id = $1 AND id = $2 AND running_job_id = $3",
        )
        .bind(tenant)
        .bind(id)
        .bind(lease.job_id);
        tx.execute(query).await?;
    }
    Ok(fenced)
}

/// When a scheduled sync is due: its type's cut-off times, re-checked by the claim itself.
struct Due {
    full_before: OffsetDateTime,
    delta_before: OffsetDateTime,
}

impl SqlStore {
    /// Due relative to the last sync of each kind, or to when the source was set: `full` and
    /// `delta` are the placeholders of the cut-off times.
    fn due_condition(&self, sync_type: SyncType, full: &str, delta: &str) -> String {
        let greatest = self.dialect().greatest();
        let full_due = format!("coalesce(last_full_sync_start, source_set_at) <= {full}");
        match sync_type {
            SyncType::FullSync => full_due,
            SyncType::DeltaSync => format!(
                "({full_due} OR {greatest}(coalesce(last_full_sync_start, source_set_at),
                                             coalesce(last_delta_sync_start, source_set_at)) <= {delta})"
            ),
        }
    }

    /// Marks the connector as syncing and enqueues the job, in one transaction, if no sync of
    /// it runs (and, for a scheduled sync, if it is still due: another replica may have just
    /// started and finished it).
    async fn claim_connector(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        sync_type: SyncType,
        now: OffsetDateTime,
        due: Option<Due>,
        job: &NewJob,
    ) -> StoreResult<ConnectorSyncDecision> {
        let mut tx = self.begin().await?;
        let started_column = match sync_type {
            SyncType::FullSync => "last_full_sync_start",
            SyncType::DeltaSync => "last_delta_sync_start",
        };
        let mut claim = Query::new(format!(
            "UPDATE exchange_connectors SET running_job_id = $1, {started_column} = $2
              WHERE tenant_id = $3 AND id = $4 AND running_job_id IS NULL"
        ))
        .bind(Uuid::now_v7())
        .bind(now)
        .bind(tenant)
        .bind(id);
        if let Some(due) = due {
            claim.push(" AND ").push(&self.due_condition(sync_type, "$5", "$6"));
            claim = claim.bind(due.full_before).bind(due.delta_before);
        }
        if tx.execute(claim).await? != 1 {
            let exists =
                Query::new("SELECT 1 FROM exchange_connectors WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
            let exists = tx.exec().fetch_optional(exists).await?.is_some();
            tx.rollback().await?;
            return Ok(if exists { ConnectorSyncDecision::AlreadyRunning } else { ConnectorSyncDecision::NotFound });
        }
        let job_id = insert_job(&mut tx, tenant, job, now, now).await?;
        // The job row and the connector's marker must name the same job.
        let mark = Query::new("UPDATE exchange_connectors SET running_job_id = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(job_id);
        tx.execute(mark.bind(tenant).bind(id)).await?;
        self.commit_enqueued(tx).await?;
        Ok(ConnectorSyncDecision::Started { job_id })
    }
}

#[async_trait]
impl ExchangeStore for SqlStore {
    async fn create_connector(&self, c: &ExchangeConnector, now: OffsetDateTime) -> StoreResult<()> {
        let query = Query::new(
            "INSERT INTO exchange_connectors (tenant_id, id, last_sync, status, primary_smtp_address, server_name,
                 connector_server_name, connector_type, version, exchange_alias, exchange_organization, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(c.tenant_id)
        .bind(c.id)
        .bind(c.last_sync)
        .bind(c.status.as_str())
        .bind(&c.primary_smtp_address)
        .bind(&c.server_name)
        .bind(&c.connector_server_name)
        .bind(c.connector_type.as_str())
        .bind(&c.version)
        .bind(&c.exchange_alias)
        .bind(&c.exchange_organization)
        .bind(now);
        self.write().execute(query).await?;
        Ok(())
    }

    async fn list_connectors(&self, tenant: TenantId, query: &ConnectorQuery) -> StoreResult<Vec<ExchangeConnector>> {
        self.list_page("exchange_connectors", tenant, query, connector_column, &[], connector_from_row).await
    }

    async fn count_connectors(&self, tenant: TenantId, filter: Option<&Filter<ConnectorField>>) -> StoreResult<u64> {
        self.count("exchange_connectors", tenant, filter, connector_column).await
    }

    async fn connector(&self, tenant: TenantId, id: ConnectorId) -> StoreResult<Option<ExchangeConnector>> {
        self.by_id("exchange_connectors", tenant, id, connector_from_row).await
    }

    async fn update_connector(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        changes: &ConnectorChanges,
    ) -> StoreResult<Option<ExchangeConnector>> {
        let query = Query::new(
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
        .bind(tenant)
        .bind(id)
        .bind(&changes.primary_smtp_address)
        .bind(&changes.server_name)
        .bind(&changes.connector_server_name)
        .bind(changes.connector_type.map(|t| t.as_str()))
        .bind(&changes.version)
        .bind(&changes.exchange_alias)
        .bind(&changes.exchange_organization);
        self.write().fetch_optional(query).await?.as_ref().map(connector_from_row).transpose()
    }

    async fn delete_connector(&self, tenant: TenantId, id: ConnectorId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let query =
            Query::new("DELETE FROM exchange_connectors WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
        let deleted = tx.execute(query).await? == 1;
        let query =
            Query::new("DELETE FROM eas_devices WHERE tenant_id = $1 AND connector_id = $2").bind(tenant).bind(id);
        tx.execute(query).await?;
        tx.execute(clear_staged(tenant, id)).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn set_connector_source(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        source: &ConnectorSource,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let json = serde_json::to_string(source).map_err(|e| StoreError::Database(e.to_string()))?;
        let query = Query::new(
            "UPDATE exchange_connectors SET source = $1, source_set_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(json)
        .bind(now)
        .bind(tenant)
        .bind(id);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn trigger_connector_sync(
        &self,
        tenant: TenantId,
        id: ConnectorId,
        sync_type: SyncType,
        now: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<ConnectorSyncDecision> {
        self.claim_connector(tenant, id, sync_type, now, None, job).await
    }

    async fn schedule_connector_syncs(
        &self,
        now: OffsetDateTime,
        delta_every: Duration,
        full_every: Duration,
        job_for: &(dyn Fn(ConnectorId, SyncType) -> NewJob + Send + Sync),
    ) -> StoreResult<u64> {
        let (full_before, delta_before) = (now - full_every, now - delta_every);
        // The same condition is checked again by each claim, under the row lock.
        let query = Query::new(format!(
            "SELECT tenant_id, id, {} AS full_due FROM exchange_connectors
              WHERE source IS NOT NULL AND running_job_id IS NULL AND {}",
            self.due_condition(SyncType::FullSync, "$1", "$2"),
            self.due_condition(SyncType::DeltaSync, "$1", "$2"),
        ))
        .bind(full_before)
        .bind(delta_before);
        let mut started = 0;
        for row in self.read().fetch_all(query).await? {
            let kind = if row.flag("full_due")? { SyncType::FullSync } else { SyncType::DeltaSync };
            let (tenant, id) = (row.id("tenant_id")?, row.id("id")?);
            let due = Due { full_before, delta_before };
            if let ConnectorSyncDecision::Started { .. } =
                self.claim_connector(tenant, id, kind, now, Some(due), &job_for(id, kind)).await?
            {
                started += 1;
            }
        }
        Ok(started)
    }

    async fn begin_connector_staging(&self, lease: &JobLease, tenant: TenantId, id: ConnectorId) -> StoreResult<bool> {
        let Some(mut tx) = self.begin_fenced(lease).await? else { return Ok(false) };
        tx.execute(clear_staged(tenant, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn stage_connector_records(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        records: &[MobileDeviceRecord],
    ) -> StoreResult<bool> {
        let Some(mut tx) = self.begin_fenced(lease).await? else { return Ok(false) };
        let unique = last_of_each_device(records);
        for chunk in unique.chunks(self.dialect().rows_per_insert(22)) {
            tx.execute(stage_records(lease, tenant, id, chunk)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn complete_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        full: bool,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ConnectorSyncStats>> {
        let mut tx = self.begin().await?;
        if !end_sync(&mut tx, lease, tenant, id, JobState::Succeeded, None, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        // Marks which devices this sync saw: unique per attempt of this job.
        let mark = to_ticks(now) ^ lease.attempt;
        // The attempt's staged records go to the connector's devices, each stamped with the
        // mark: new devices are inserted, known ones updated (keyed by their Exchange device
        // id). The WHERE also settles SQLite's parsing ambiguity of ON CONFLICT after a SELECT.
        let apply = Query::new(format!(
            "INSERT INTO eas_devices (tenant_id, connector_id, {RECORD_COLUMNS}, enrolled_at, seen_mark)
             SELECT tenant_id, connector_id, {RECORD_COLUMNS}, $5, $6 FROM eas_sync_staging WHERE {}
             ON CONFLICT (connector_id, eas_device_id) DO UPDATE SET {}, seen_mark = excluded.seen_mark",
            staged_by(Some(lease)),
            updated_columns()
        ));
        let upserted = tx.execute(bind_staged(apply, tenant, id, Some(lease)).bind(now).bind(mark)).await?;
        let removed = if full {
            // The connector's devices the full sync did not see.
            let unseen =
                Query::new("DELETE FROM eas_devices WHERE tenant_id = $1 AND connector_id = $2 AND seen_mark <> $3");
            tx.execute(unseen.bind(tenant).bind(id).bind(mark)).await?
        } else {
            0
        };
        // The largest `WhenChanged` among the attempt's staged records: the next watermark.
        let watermark =
            Query::new(format!("SELECT max(when_changed) FROM eas_sync_staging WHERE {}", staged_by(Some(lease))));
        let watermark: Option<i64> = tx.exec().scalar(bind_staged(watermark, tenant, id, Some(lease))).await?;
        tx.execute(clear_staged(tenant, id)).await?;
        let greatest = self.dialect().greatest();
        let connected = Query::new(format!(
            "UPDATE exchange_connectors
                SET status = 'connected', last_sync = $1,
                    watermark = CASE WHEN $2 IS NULL THEN watermark ELSE {greatest}(coalesce(watermark, $2), $2) END
              WHERE tenant_id = $3 AND id = $4"
        ))
        .bind(now)
        .bind(watermark)
        .bind(tenant)
        .bind(id);
        tx.execute(connected).await?;
        tx.commit().await?;
        // Every staged device is inserted or updated once, so the devices read are those upserted.
        Ok(Some(ConnectorSyncStats { read: upserted, upserted, removed }))
    }

    async fn fail_connector_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        id: ConnectorId,
        error: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !end_sync(&mut tx, lease, tenant, id, JobState::Failed, Some(error), now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let query =
            Query::new("UPDATE exchange_connectors SET status = 'disconnected' WHERE tenant_id = $1 AND id = $2")
                .bind(tenant);
        tx.execute(query.bind(id)).await?;
        tx.execute(clear_staged(tenant, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_managed_devices(&self, tenant: TenantId, query: &ManagedDeviceQuery) -> StoreResult<Vec<EasDevice>> {
        self.list_page("eas_devices", tenant, query, managed_device_column, &[], eas_from_row).await
    }

    async fn count_managed_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ManagedDeviceField>>,
    ) -> StoreResult<u64> {
        self.count("eas_devices", tenant, filter, managed_device_column).await
    }

    async fn managed_device(&self, tenant: TenantId, id: EasDeviceId) -> StoreResult<Option<EasDevice>> {
        self.by_id("eas_devices", tenant, id, eas_from_row).await
    }
}
