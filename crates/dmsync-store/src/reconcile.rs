//! The Autopilot sync's reconciliation, shared by both backends: the loop, its chunking and its
//! progress reports live here once; each backend supplies the few statements in its own SQL.
//!
//! A run covers a window of the registration change sequence: after what the last run
//! reconciled, up to what is committed when this run starts. Registrations written in the window
//! are applied to `autopilot_devices` in chunks of consecutive device ids, each chunk one short
//! write transaction; then deregistrations and the new watermark commit together. A run that
//! stops half-way leaves the watermark where it was, so the next run covers the same window
//! again and converges (every step is an idempotent upsert or delete).

use async_trait::async_trait;
use dmsync_core::StoreResult;
use dmsync_core::autopilot::ReconcileStats;

// Statements both backends run as they are: SQLite binds `$N` by position like PostgreSQL.

/// The window's start: `$1` tenant.
pub(crate) const WINDOW_FROM: &str = "SELECT reconciled_seq FROM autopilot_settings WHERE tenant_id = $1";
/// The window's end: the last value of the registration change sequence.
pub(crate) const WINDOW_TO: &str = "SELECT coalesce(max(value), 0) FROM system_state WHERE key = 'registration_seq'";
/// Devices deregistered in the window and not registered again: `$1` tenant, `$2`, `$3` window.
pub(crate) const DELETE_DEREGISTERED: &str = "DELETE FROM autopilot_devices
      WHERE tenant_id = $1
        AND id IN (SELECT device_id FROM registration_tombstones
                    WHERE tenant_id = $1 AND change_seq > $2 AND change_seq <= $3)
        AND NOT EXISTS (SELECT 1 FROM autopilot_registrations r
                         WHERE r.tenant_id = $1 AND r.device_id = autopilot_devices.id)";
/// Devices with no registration at all (data from before change tracking), removed by a
/// tenant's first run only: `$1` tenant.
pub(crate) const DELETE_UNREGISTERED: &str = "DELETE FROM autopilot_devices
      WHERE tenant_id = $1
        AND NOT EXISTS (SELECT 1 FROM autopilot_registrations r
                         WHERE r.tenant_id = $1 AND r.device_id = autopilot_devices.id)";
/// Tombstones the run has applied: `$1` tenant, `$2` window end.
pub(crate) const DELETE_TOMBSTONES: &str =
    "DELETE FROM registration_tombstones WHERE tenant_id = $1 AND change_seq <= $2";
/// The watermark never moves back: `$1` window end, `$2` tenant.
pub(crate) const MOVE_WATERMARK: &str = "UPDATE autopilot_settings
        SET reconciled_seq = CASE WHEN reconciled_seq > $1 THEN reconciled_seq ELSE $1 END
      WHERE tenant_id = $2";

/// The body of [`ReconcileSteps::finish`] on a backend's open transaction `$tx`: the same
/// statements and binds on both backends, whose transaction types share no trait that reports
/// affected rows. Evaluates to the number of devices deleted; the caller commits.
macro_rules! finish_in_tx {
    ($tx:expr, $tid:expr, $window:expr) => {{
        let (tid, window) = ($tid, $window);
        let query = sqlx::query(reconcile::DELETE_DEREGISTERED).bind(tid).bind(window.from).bind(window.to);
        let mut deleted = query.execute(&mut *$tx).await.map_err(db_err)?.rows_affected();
        if window.is_first() {
            let query = sqlx::query(reconcile::DELETE_UNREGISTERED).bind(tid);
            deleted += query.execute(&mut *$tx).await.map_err(db_err)?.rows_affected();
        }
        let query = sqlx::query(reconcile::DELETE_TOMBSTONES).bind(tid).bind(window.to);
        query.execute(&mut *$tx).await.map_err(db_err)?;
        let query = sqlx::query(reconcile::MOVE_WATERMARK).bind(window.to).bind(tid);
        query.execute(&mut *$tx).await.map_err(db_err)?;
        deleted
    }};
}
pub(crate) use finish_in_tx;

/// An upper bound above every device id. Ids are GUIDs in lowercase ASCII and both backends
/// compare ids bytewise, so a chunk's range always has both bounds and stays an index range.
pub(crate) const AFTER_EVERY_ID: &str = "\u{10FFFF}";

/// The registration change sequence values a run covers: `from < change_seq <= to`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
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
pub(crate) struct Applied {
    pub created: u64,
    pub updated: u64,
}

/// What a backend provides for one tenant's reconciliation.
#[async_trait]
pub(crate) trait ReconcileSteps: Sync {
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
pub(crate) async fn run(
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
