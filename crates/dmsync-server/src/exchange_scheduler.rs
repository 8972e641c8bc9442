//! Starts Exchange connector syncs as the real connector does: a delta every 15 minutes and a
//! full sync every 24 hours, by default, on the Clock. The syncs themselves are jobs
//! (`crate::jobs::exchange_connector_sync`).

use std::time::Duration as StdDuration;

use dmsync_core::jobs::NewJob;

use crate::jobs::exchange_connector_sync::ExchangeConnectorSync;
use crate::state::AppState;

/// How often the scheduler looks for due syncs (a clock advance also wakes it).
const SCHEDULER_TICK: StdDuration = StdDuration::from_secs(30);

/// Starts the scheduled syncs that are due, until shutdown. The store wakes the workers for
/// the jobs it enqueues.
pub async fn run_scheduler(state: AppState) {
    let delta = state.config().exchange_delta_interval;
    let full = state.config().exchange_full_interval;
    let job_for = |connector_id, sync_type| NewJob::new(&ExchangeConnectorSync { connector_id, sync_type });
    loop {
        match state.store().schedule_connector_syncs(state.now(), delta, full, &job_for).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(syncs = n, "scheduled exchange connector syncs started"),
            Err(e) => tracing::warn!(error = %e, "could not schedule exchange connector syncs"),
        }
        tokio::select! {
            _ = state.shutdown().cancelled() => return,
            _ = state.clock_advanced().notified() => {}
            _ = tokio::time::sleep(SCHEDULER_TICK) => {}
        }
    }
}
