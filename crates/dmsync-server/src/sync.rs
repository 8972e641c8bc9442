//! The Autopilot sync job: reconcile the tenant's registrations into device identities, stay
//! `inProgress` for the configured sync duration (measured on the Clock, as a real sync takes
//! time), then record `completed` with `lastSyncDateTime`.

use std::time::Duration as StdDuration;

use tokio_util::sync::CancellationToken;

use dmsync_core::autopilot::SyncOutcome;
use dmsync_core::jobs::Job;

use crate::jobs::JobEnd;
use crate::state::AppState;

/// How often a waiting sync looks at the Clock, so that a clock advance ends it promptly.
const CLOCK_POLL: StdDuration = StdDuration::from_millis(50);

pub async fn run_autopilot_sync(state: &AppState, job: &Job, lost: &CancellationToken) -> Result<JobEnd, String> {
    let stats = state.store.reconcile_autopilot_devices(job.tenant_id, state.now()).await.map_err(|e| e.to_string())?;
    tracing::info!(
        job.id = %job.id, tenant.id = %job.tenant_id,
        devices.created = stats.created, devices.updated = stats.updated, devices.deleted = stats.deleted,
        "autopilot sync reconciled"
    );
    crate::metrics::sync_devices(stats.created, stats.updated, stats.deleted);

    let duration = time::Duration::try_from(state.config.sync_duration).unwrap_or(time::Duration::ZERO);
    let done_at = job.created_at + duration;
    loop {
        if state.now() >= done_at {
            break;
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return Ok(JobEnd::Released),
            _ = lost.cancelled() => return Ok(JobEnd::LeaseLost),
            _ = tokio::time::sleep(CLOCK_POLL) => {}
        }
    }
    let recorded = state
        .store
        .finish_autopilot_sync(&job.lease(), job.tenant_id, SyncOutcome::Completed, None, state.now())
        .await
        .map_err(|e| e.to_string())?;
    if !recorded {
        tracing::warn!(job.id = %job.id, "sync finished after its lease was taken; result not recorded");
        return Ok(JobEnd::LeaseLost);
    }
    tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, "autopilot sync completed");
    Ok(JobEnd::Done)
}
