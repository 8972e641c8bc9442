//! Background workers. Each claims one job at a time from the database under a lease,
//! heartbeats while it works, and completes it fenced by the attempt number. On shutdown a
//! worker stops at a safe point and gives its job back, so the next start picks it up.

use std::time::Duration as StdDuration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use dmsync_core::autopilot::SyncOutcome;
use dmsync_core::jobs::{Job, JobLease, JobPayload, MAX_ATTEMPTS};

use crate::autopilot_jobs::{AutopilotSync, DeregisterAutopilotDevice, ImportAutopilotDevices};
use crate::exchange_jobs::ExchangeConnectorSync;

use crate::state::AppState;

/// How long an idle worker sleeps before looking again when nothing woke it.
const IDLE_POLL: StdDuration = StdDuration::from_millis(500);

/// How a job handler stopped.
pub enum JobEnd {
    /// Completed and recorded (fenced).
    Done,
    /// Shutdown came first: give the job back untouched.
    Released,
    /// Another worker holds the job now; write nothing.
    LeaseLost,
}

pub fn spawn_workers(state: &AppState) -> Vec<JoinHandle<()>> {
    let instance = Uuid::new_v4().simple().to_string()[..8].to_owned();
    (0..state.config.workers.max(1))
        .map(|i| {
            let state = state.clone();
            let owner = format!("{instance}/{i}");
            tokio::spawn(async move { worker_loop(state, owner).await })
        })
        .collect()
}

fn lease_duration(state: &AppState) -> time::Duration {
    time::Duration::try_from(state.config.job_lease).unwrap_or(time::Duration::seconds(30))
}

async fn worker_loop(state: AppState, owner: String) {
    while !state.shutdown.is_cancelled() {
        let wall = time::OffsetDateTime::now_utc();
        match state.store.claim_job(&owner, state.now(), wall, lease_duration(&state)).await {
            Ok(Some(job)) => run_job(&state, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.shutdown.cancelled() => {}
                    _ = state.store.wait_for_enqueued_job() => {}
                    _ = state.jobs_enqueued.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %owner, error = %e, "could not claim a job");
                tokio::select! {
                    _ = state.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(StdDuration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Extends the lease every third of its length; cancels `lost` if it was taken away.
async fn heartbeat(state: AppState, lease: JobLease, lost: CancellationToken) {
    let every = state.config.job_lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match state.store.heartbeat_job(&lease, time::OffsetDateTime::now_utc() + lease_duration(&state)).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job.id = %lease.job_id, job.attempt = lease.attempt, "job lease lost");
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!(job.id = %lease.job_id, error = %e, "heartbeat failed"),
        }
    }
}

async fn run_job(state: &AppState, job: Job) {
    let lease = job.lease();
    let lost = CancellationToken::new();
    let beat = tokio::spawn(heartbeat(state.clone(), lease.clone(), lost.clone()));
    let kind = job.kind.as_str();
    tracing::info!(job.id = %job.id, job.kind = kind, job.attempt = job.attempt, tenant.id = %job.tenant_id, "job claimed");
    let result = match kind {
        AutopilotSync::KIND => crate::autopilot_jobs::run_autopilot_sync(state, &job, &lost).await,
        ImportAutopilotDevices::KIND => crate::autopilot_jobs::run_import(state, &job).await,
        DeregisterAutopilotDevice::KIND => crate::autopilot_jobs::run_deregistration(state, &job).await,
        ExchangeConnectorSync::KIND => crate::exchange_jobs::run_connector_sync(state, &job, &lost).await,
        other => Err(format!("unknown job kind '{other}'")),
    };
    beat.abort();
    match result {
        Ok(JobEnd::Done) => crate::metrics::job_finished(kind),
        Ok(JobEnd::LeaseLost) => {}
        Ok(JobEnd::Released) => {
            if let Err(e) = state.store.release_job(&lease).await {
                tracing::warn!(job.id = %job.id, error = %e, "could not release job at shutdown");
            }
        }
        Err(error) if job.attempt >= MAX_ATTEMPTS => {
            // Logged once, here, where the failure is final.
            tracing::error!(job.id = %job.id, job.kind = kind, tenant.id = %job.tenant_id, error = %error, "job failed for good");
            crate::metrics::job_failed(kind);
            let recorded = match kind {
                AutopilotSync::KIND => {
                    let finish = state.store.finish_autopilot_sync(
                        &lease,
                        job.tenant_id,
                        SyncOutcome::Failed,
                        Some(&error),
                        state.now(),
                    );
                    state.autopilot_settings.write(job.tenant_id, finish).await
                }
                ExchangeConnectorSync::KIND => match crate::exchange_jobs::connector_of(&job) {
                    Some(id) => state.store.fail_connector_sync(&lease, job.tenant_id, id, &error, state.now()).await,
                    None => state.store.fail_job(&lease, &error, None).await,
                },
                _ => state.store.fail_job(&lease, &error, None).await,
            };
            if let Err(e) = recorded {
                tracing::warn!(job.id = %job.id, error = %e, "could not record job failure");
            }
        }
        Err(error) => {
            let backoff = time::Duration::seconds(2i64.pow(job.attempt.clamp(0, 6) as u32));
            tracing::warn!(job.id = %job.id, job.attempt = job.attempt, error = %error, "job attempt failed; will retry");
            if let Err(e) = state.store.fail_job(&lease, &error, Some(state.now() + backoff)).await {
                tracing::warn!(job.id = %job.id, error = %e, "could not record job attempt failure");
            }
        }
    }
}
