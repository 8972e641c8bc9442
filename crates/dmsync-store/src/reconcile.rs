//! The Autopilot sync's reconciliation: the loop, its chunking and its progress reports
//! ([`run_steps`]) over the few statements of [`ReconcileSteps`], which [`SqlReconcile`] runs on
//! either engine.
//!
//! A run covers a window of the registration change sequence: after what the last run
//! reconciled, up to what is committed when this run starts. Registrations written in the window
//! are applied to `autopilot_devices` in chunks of consecutive device ids, each chunk one short
//! write transaction; then deregistrations and the new watermark commit together. A run that
//! stops half-way leaves the watermark where it was, so the next run covers the same window
//! again and converges (every step is an idempotent upsert or delete).

use async_trait::async_trait;
use dmsync_core::autopilot::ReconcileStats;
use dmsync_core::{StoreResult, TenantId};
use time::OffsetDateTime;

use crate::db::{Query, SqlStore};
use crate::entra::insert_for_devices;
use crate::sql::Dialect;

/// The window's start: `$1` tenant.
const WINDOW_FROM: &str = "SELECT reconciled_seq FROM autopilot_settings WHERE tenant_id = $1";
/// The window's end: the last value of the registration change sequence.
const WINDOW_TO: &str = "SELECT coalesce(max(value), 0) FROM system_state WHERE key = 'registration_seq'";
/// Devices deregistered in the window and not registered again: `$1` tenant, `$2`, `$3` window.
const DELETE_DEREGISTERED: &str = "DELETE FROM autopilot_devices
      WHERE tenant_id = $1
        AND id IN (SELECT device_id FROM registration_tombstones
                    WHERE tenant_id = $1 AND change_seq > $2 AND change_seq <= $3)
        AND NOT EXISTS (SELECT 1 FROM autopilot_registrations r
                         WHERE r.tenant_id = $1 AND r.device_id = autopilot_devices.id)";
/// Devices with no registration at all (data from before change tracking), removed by a
/// tenant's first run only: `$1` tenant.
const DELETE_UNREGISTERED: &str = "DELETE FROM autopilot_devices
      WHERE tenant_id = $1
        AND NOT EXISTS (SELECT 1 FROM autopilot_registrations r
                         WHERE r.tenant_id = $1 AND r.device_id = autopilot_devices.id)";
/// Tombstones the run has applied: `$1` tenant, `$2` window end.
const DELETE_TOMBSTONES: &str = "DELETE FROM registration_tombstones WHERE tenant_id = $1 AND change_seq <= $2";
/// The watermark never moves back: `$1` window end, `$2` tenant.
const MOVE_WATERMARK: &str = "UPDATE autopilot_settings
        SET reconciled_seq = CASE WHEN reconciled_seq > $1 THEN reconciled_seq ELSE $1 END
      WHERE tenant_id = $2";

/// An upper bound above every device id. Ids are GUIDs in lowercase ASCII and both backends
/// compare ids bytewise, so a chunk's range always has both bounds and stays an index range.
const AFTER_EVERY_ID: &str = "\u{10FFFF}";

/// The registration change sequence values a run covers: `from < change_seq <= to`.
#[derive(Debug, Clone, Copy)]
struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    /// The first run of a tenant also removes devices that have no registration at all.
    pub fn is_first(&self) -> bool {
        self.from == 0
    }
}

/// One chunk's result.
#[derive(Debug, Clone, Copy, Default)]
struct Applied {
    pub created: u64,
    pub updated: u64,
}

/// The statements of one tenant's reconciliation.
#[async_trait]
trait ReconcileSteps: Sync {
    /// The window this run covers.
    async fn window(&self) -> StoreResult<Window>;
    /// The device id that ends the chunk starting after `low` (exclusive): the `rows`-th
    /// registration of the window in device-id order, or `None` when fewer are left.
    async fn chunk_end(&self, window: Window, low: &str, rows: i64) -> StoreResult<Option<String>>;
    /// Creates or updates the devices of the window's registrations with `low < device_id <=
    /// high` (no upper bound when `high` is `None`), in one transaction.
    async fn apply_chunk(&self, window: Window, low: &str, high: Option<&str>) -> StoreResult<Applied>;
    /// Deletes the devices deregistered in the window and moves the watermark to `window.to`,
    /// in one transaction; returns how many devices it deleted.
    async fn finish(&self, window: Window) -> StoreResult<u64>;
}

/// Runs a reconciliation. `progress` gets the running totals after each chunk and stops the run
/// (returning `Ok(None)`) by answering false, which the job does when it lost its lease.
async fn run_steps(
    steps: &dyn ReconcileSteps,
    chunk_rows: i64,
    progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
) -> StoreResult<Option<ReconcileStats>> {
    let window = steps.window().await?;
    let mut stats = ReconcileStats::default();
    let mut covered = 0u64;
    let mut low = String::new();
    // An empty window has nothing to apply; the walk would read the whole index to learn that.
    if window.from < window.to {
        loop {
            let high = steps.chunk_end(window, &low, chunk_rows).await?;
            let applied = steps.apply_chunk(window, &low, high.as_deref()).await?;
            stats.created += applied.created;
            stats.updated += applied.updated;
            let Some(next) = high else { break };
            covered += chunk_rows as u64;
            low = next;
            if !progress(stats, covered) {
                return Ok(None);
            }
        }
    }
    stats.deleted += steps.finish(window).await?;
    covered += stats.created + stats.updated;
    progress(stats, covered);
    Ok(Some(stats))
}

/// Reconciles the tenant's devices with its registrations (see the module's comment).
pub(crate) async fn run(
    store: &SqlStore,
    tenant: TenantId,
    now: OffsetDateTime,
    progress: &(dyn Fn(ReconcileStats, u64) -> bool + Send + Sync),
) -> StoreResult<Option<ReconcileStats>> {
    run_steps(&SqlReconcile { store, tenant, now }, store.reconcile_chunk, progress).await
}

/// The statements of one tenant's reconciliation. On SQLite every statement that walks
/// registrations names the `(tenant_id, device_id, change_seq)` index: it answers both the
/// device-id range and the window from the index alone, where the planner would otherwise pick
/// an index on the window and rescan all of it for every chunk.
struct SqlReconcile<'a> {
    store: &'a SqlStore,
    tenant: TenantId,
    now: OffsetDateTime,
}

/// Creates or updates the devices of the window's registrations in a device-id range: `$1`
/// tenant, `$2`, `$3` range, `$4`, `$5` window, `$6` now. One pass over the chunk in device-id
/// order, which is the devices table's key order. Existing devices are found by the conflict
/// clause, not by an anti-join: on a table that has just grown, stale statistics can make the
/// planner rescan it for every registration. A new device gets its Entra `deviceId` here; an
/// existing one keeps its own.
fn apply_registrations(dialect: Dialect) -> String {
    let indexed_by = dialect.indexed_by("autopilot_registrations_device_changes");
    let azure_ad_device_id = dialect.guid_like("r.device_id");
    format!(
        "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
             purchase_order_identifier, product_key, azure_ad_device_id, created_at, updated_at)
         SELECT r.tenant_id, r.device_id, r.serial_number, r.manufacturer, r.model, r.group_tag,
                r.purchase_order_identifier, r.product_key, {azure_ad_device_id}, $6, $6
           FROM autopilot_registrations r {indexed_by}
          WHERE r.tenant_id = $1 AND r.device_id > $2 AND r.device_id <= $3
            AND r.change_seq > $4 AND r.change_seq <= $5
          ORDER BY r.device_id
         ON CONFLICT (tenant_id, id) DO UPDATE SET
             serial_number = excluded.serial_number, manufacturer = excluded.manufacturer,
             model = excluded.model, group_tag = excluded.group_tag,
             purchase_order_identifier = excluded.purchase_order_identifier,
             product_key = excluded.product_key, updated_at = excluded.updated_at
         WHERE autopilot_devices.serial_number <> excluded.serial_number
            OR autopilot_devices.manufacturer <> excluded.manufacturer
            OR autopilot_devices.model <> excluded.model OR autopilot_devices.group_tag <> excluded.group_tag
            OR autopilot_devices.purchase_order_identifier <> excluded.purchase_order_identifier
            OR autopilot_devices.product_key <> excluded.product_key"
    )
}

/// Creates the Entra objects of the devices [`apply_registrations`] just created (those created
/// at `$6`), with the same parameters, walking the same registrations.
fn create_entra_devices(dialect: Dialect) -> String {
    let indexed_by = dialect.indexed_by("autopilot_registrations_device_changes");
    insert_for_devices(
        dialect,
        &format!(
            "autopilot_registrations r {indexed_by}
             JOIN autopilot_devices d ON d.tenant_id = r.tenant_id AND d.id = r.device_id"
        ),
        "r.tenant_id = $1 AND r.device_id > $2 AND r.device_id <= $3 AND r.change_seq > $4 AND r.change_seq <= $5
         AND d.created_at = $6",
    )
}

/// Brings the `[OrderId]` and `[PurchaseOrderId]` of the Entra objects of the window's
/// registrations to their devices' group tag and purchase order, which the upsert has just
/// written: `$1` tenant, `$2`, `$3` range, `$4`, `$5` window. The objects are found from the
/// window's registrations by their `[ZTDID]`, so that a small window never walks the tenant's
/// objects; SQLite is told to use that index, as it would otherwise walk every object of the
/// tenant and test each against the list.
fn update_entra_devices(dialect: Dialect) -> String {
    let registrations = dialect.indexed_by("autopilot_registrations_device_changes");
    let objects = dialect.indexed_by("entra_devices_ztdid");
    let device = |column: &str| {
        format!(
            "(SELECT d.{column} FROM autopilot_devices d
               WHERE d.tenant_id = entra_devices.tenant_id AND d.id = entra_devices.ztdid)"
        )
    };
    let (group_tag, purchase_order) = (device("group_tag"), device("purchase_order_identifier"));
    format!(
        "UPDATE entra_devices {objects} SET order_id = {group_tag}, purchase_order_id = {purchase_order}
          WHERE tenant_id = $1
            AND ztdid IN (SELECT r.device_id FROM autopilot_registrations r {registrations}
                           WHERE r.tenant_id = $1 AND r.device_id > $2 AND r.device_id <= $3
                             AND r.change_seq > $4 AND r.change_seq <= $5)
            AND (order_id <> {group_tag} OR purchase_order_id <> {purchase_order})"
    )
}

#[async_trait]
impl ReconcileSteps for SqlReconcile<'_> {
    async fn window(&self) -> StoreResult<Window> {
        let from = self.store.read().scalar(Query::new(WINDOW_FROM).bind(self.tenant)).await?;
        let to = self.store.read().scalar(Query::new(WINDOW_TO)).await?;
        Ok(Window { from, to })
    }

    async fn chunk_end(&self, window: Window, low: &str, rows: i64) -> StoreResult<Option<String>> {
        let indexed_by = self.store.dialect().indexed_by("autopilot_registrations_device_changes");
        let query = Query::new(format!(
            "SELECT device_id FROM autopilot_registrations {indexed_by}
              WHERE tenant_id = $1 AND device_id > $2 AND change_seq > $3 AND change_seq <= $4
              ORDER BY device_id LIMIT 1 OFFSET $5"
        ))
        .bind(self.tenant)
        .bind(low)
        .bind(window.from)
        .bind(window.to)
        .bind(rows - 1);
        self.store.read().fetch_optional(query).await?.map(|row| row.get(0)).transpose()
    }

    async fn apply_chunk(&self, window: Window, low: &str, high: Option<&str>) -> StoreResult<Applied> {
        let high = high.unwrap_or(AFTER_EVERY_ID);
        let dialect = self.store.dialect();
        let upsert = apply_registrations(dialect);
        let bind = |sql: String| {
            Query::new(sql).bind(self.tenant).bind(low).bind(high).bind(window.from).bind(window.to).bind(self.now)
        };
        // The devices and their Entra objects commit together.
        let mut tx = self.store.begin().await?;
        let applied = if dialect.returns_inserted() {
            // `xmax = 0` marks the rows the upsert inserted rather than updated.
            let query = bind(format!(
                "WITH written AS ({upsert} RETURNING xmax = 0 AS inserted)
                 SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
            ));
            let row = tx.exec().fetch_one(query).await?;
            Applied { created: row.get::<i64, _>(0)? as u64, updated: row.get::<i64, _>(1)? as u64 }
        } else {
            // The upsert reports inserted and updated rows together; the devices counted in the
            // range before and after tell them apart.
            let count = || {
                Query::new("SELECT count(*) FROM autopilot_devices WHERE tenant_id = $1 AND id > $2 AND id <= $3")
                    .bind(self.tenant)
                    .bind(low)
                    .bind(high)
            };
            let before: i64 = tx.exec().scalar(count()).await?;
            let written = tx.execute(bind(upsert)).await?;
            let after: i64 = tx.exec().scalar(count()).await?;
            let created = (after - before) as u64;
            Applied { created, updated: written - created }
        };
        if applied.created > 0 {
            tx.execute(bind(create_entra_devices(dialect))).await?;
        }
        if applied.updated > 0 {
            let query = Query::new(update_entra_devices(dialect))
                .bind(self.tenant)
                .bind(low)
                .bind(high)
                .bind(window.from)
                .bind(window.to);
            tx.execute(query).await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn finish(&self, window: Window) -> StoreResult<u64> {
        let mut tx = self.store.begin().await?;
        let query = Query::new(DELETE_DEREGISTERED).bind(self.tenant).bind(window.from).bind(window.to);
        let mut deleted = tx.execute(query).await?;
        if window.is_first() {
            deleted += tx.execute(Query::new(DELETE_UNREGISTERED).bind(self.tenant)).await?;
        }
        tx.execute(Query::new(DELETE_TOMBSTONES).bind(self.tenant).bind(window.to)).await?;
        tx.execute(Query::new(MOVE_WATERMARK).bind(window.to).bind(self.tenant)).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
