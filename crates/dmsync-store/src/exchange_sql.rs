//! The connector-sync statements both backends share: staging a batch of the records a sync
//! reads, applying one attempt's staged records to `eas_devices`, and removing the devices a
//! full sync did not see. `QueryBuilder` writes each backend's placeholders, so the text is one;
//! the fencing and the transactions stay in `sqlite_exchange.rs` and `postgres_exchange.rs`.

use std::collections::HashMap;
use std::marker::PhantomData;

use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use dmsync_core::TenantId;
use dmsync_core::exchange::MobileDeviceRecord;
use dmsync_core::jobs::JobLease;

use crate::convert::to_ticks;

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
pub fn last_of_each_device(records: &[MobileDeviceRecord]) -> Vec<&MobileDeviceRecord> {
    let mut last_of: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last_of.insert(r.device_id.as_str(), i);
    }
    records.iter().enumerate().filter(|(i, r)| last_of[r.device_id.as_str()] == *i).map(|(_, r)| r).collect()
}

/// The statements, for one backend. The bounds are what they bind: text and integers.
pub struct SyncSql<DB>(PhantomData<DB>);

impl<DB> SyncSql<DB>
where
    DB: Database,
    <DB as Database>::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
{
    /// An upsert of `records` into the attempt's staging rows: a device read again in a later
    /// batch of the same attempt keeps its later record.
    pub fn stage_records(
        lease: &JobLease,
        tenant: TenantId,
        connector: Uuid,
        records: &[&MobileDeviceRecord],
    ) -> QueryBuilder<DB> {
        let mut insert: QueryBuilder<DB> = QueryBuilder::new(format!(
            "INSERT INTO eas_sync_staging (tenant_id, connector_id, job_id, attempt, {RECORD_COLUMNS}) "
        ));
        insert.push_values(records, |mut b, r| {
            let (os, version) = r.operating_system();
            b.push_bind(tenant.to_string())
                .push_bind(connector.to_string())
                .push_bind(lease.job_id.to_string())
                .push_bind(lease.attempt)
                .push_bind(r.device_id.clone())
                .push_bind(Uuid::new_v4().to_string())
                .push_bind(r.device_type.clone())
                .push_bind(r.device_model.clone())
                .push_bind(r.device_os.clone())
                .push_bind(r.friendly_name.clone())
                .push_bind(r.user_display_name.clone())
                .push_bind(r.user_principal_name.clone())
                .push_bind(r.email_address.clone())
                .push_bind(r.access_state.as_str().to_owned())
                .push_bind(r.access_state_reason.clone())
                .push_bind(r.first_sync.map(to_ticks))
                .push_bind(r.last_success_sync.map(to_ticks))
                .push_bind(r.when_changed.map(to_ticks))
                .push_bind(r.device_name())
                .push_bind(os)
                .push_bind(version)
                .push_bind(r.manufacturer());
        });
        insert.push(" ON CONFLICT (tenant_id, connector_id, job_id, attempt, eas_device_id) DO UPDATE SET ");
        insert.push(updated_columns());
        insert
    }

    /// Whether the lease still holds the job: selects a row if so. Staging checks it in the
    /// transaction that writes a batch, so a worker whose lease was taken stops writing; the rows of
    /// an attempt that lost its lease are never applied anyway, as they carry its attempt number.
    pub fn lease_held(lease: &JobLease) -> QueryBuilder<DB> {
        let mut sql: QueryBuilder<DB> = QueryBuilder::new("SELECT 1 FROM jobs WHERE id = ");
        sql.push_bind(lease.job_id.to_string());
        sql.push(" AND attempt = ").push_bind(lease.attempt);
        sql.push(" AND lease_owner = ").push_bind(lease.owner.clone());
        sql.push(" AND state = 'running'");
        sql
    }

    /// Pushes `tenant_id = … AND connector_id = …` and, with a lease, the attempt's key.
    fn push_staged_by(sql: &mut QueryBuilder<DB>, tenant: TenantId, connector: Uuid, lease: Option<&JobLease>) {
        sql.push(" WHERE tenant_id = ").push_bind(tenant.to_string());
        sql.push(" AND connector_id = ").push_bind(connector.to_string());
        if let Some(lease) = lease {
            sql.push(" AND job_id = ").push_bind(lease.job_id.to_string());
            sql.push(" AND attempt = ").push_bind(lease.attempt);
        }
    }

    /// Applies the attempt's staged records to the connector's devices, stamping each with `mark`:
    /// new devices are inserted, known ones updated (keyed by their Exchange device id).
    pub fn apply_staged(
        lease: &JobLease,
        tenant: TenantId,
        connector: Uuid,
        enrolled_at: i64,
        mark: i64,
    ) -> QueryBuilder<DB> {
        let mut sql: QueryBuilder<DB> = QueryBuilder::new(format!(
            "INSERT INTO eas_devices (tenant_id, connector_id, {RECORD_COLUMNS}, enrolled_at, seen_mark)
             SELECT tenant_id, connector_id, {RECORD_COLUMNS}, "
        ));
        sql.push_bind(enrolled_at).push(", ").push_bind(mark).push(" FROM eas_sync_staging");
        Self::push_staged_by(&mut sql, tenant, connector, Some(lease));
        // The WHERE above also settles SQLite's parsing ambiguity of ON CONFLICT after a SELECT.
        sql.push(" ON CONFLICT (connector_id, eas_device_id) DO UPDATE SET ");
        sql.push(updated_columns());
        sql.push(", seen_mark = excluded.seen_mark");
        sql
    }

    /// The largest `WhenChanged` among the attempt's staged records: the connector's next watermark.
    pub fn staged_watermark(lease: &JobLease, tenant: TenantId, connector: Uuid) -> QueryBuilder<DB> {
        let mut sql: QueryBuilder<DB> = QueryBuilder::new("SELECT max(when_changed) FROM eas_sync_staging");
        Self::push_staged_by(&mut sql, tenant, connector, Some(lease));
        sql
    }

    /// Empties the connector's staging: this attempt's rows and any an earlier attempt left.
    pub fn clear_staged(tenant: TenantId, connector: Uuid) -> QueryBuilder<DB> {
        let mut sql: QueryBuilder<DB> = QueryBuilder::new("DELETE FROM eas_sync_staging");
        Self::push_staged_by(&mut sql, tenant, connector, None);
        sql
    }

    /// Removes the connector's devices that the full sync stamped `mark` did not see.
    pub fn remove_unseen(tenant: TenantId, connector: Uuid, mark: i64) -> QueryBuilder<DB> {
        let mut sql: QueryBuilder<DB> = QueryBuilder::new("DELETE FROM eas_devices WHERE tenant_id = ");
        sql.push_bind(tenant.to_string());
        sql.push(" AND connector_id = ").push_bind(connector.to_string());
        sql.push(" AND seen_mark <> ").push_bind(mark);
        sql
    }
}
