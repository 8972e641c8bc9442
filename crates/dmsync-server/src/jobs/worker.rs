//! Background workers. Each claims one job at a time from the database under a lease,
//! heartbeats while it works, runs it through the registry, and ends it fenced by the attempt
//! number. An idle worker sleeps until the store reports a job it enqueued, the Clock moves,
//! or the poll interval passes (for jobs that came due, or that another replica enqueued). On
//! shutdown a worker stops at a safe point and gives its job back, so the next start picks it up.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use dmsync_core::jobs::{Job, JobLease, MAX_ATTEMPTS};

use super::registry::{InvalidPayload, JobRegistry};
use super::{JobContext, JobEnd};
use crate::state::AppState;

pub fn spawn_workers(state: &AppState) -> Vec<JoinHandle<()>> {
    let instance = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let registry = Arc::new(JobRegistry::new());
    (0..state.config().workers.max(1))
        .map(|i| {
            let state = state.clone();
            let registry = registry.clone();
            let owner = format!("{instance}/{i}");
            tokio::spawn(async move { worker_loop(state, registry, owner).await })
        })
        .collect()
}

fn lease_duration(state: &AppState) -> time::Duration {
    state.config().job_lease
}

async fn worker_loop(state: AppState, registry: Arc<JobRegistry>, owner: String) {
    while !state.shutdown().is_cancelled() {
        let wall = time::OffsetDateTime::now_utc();
        match state.store().claim_job(&owner, state.now(), wall, lease_duration(&state)).await {
            Ok(Some(job)) => run_job(&state, &registry, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.shutdown().cancelled() => {}
                    _ = state.store().wait_for_enqueued_job() => {}
                    // Jobs waiting for a time that has now come are due at once.
                    _ = state.clock_advanced().notified() => {}
                    // Never a busy loop, whatever the configuration says.
                    _ = tokio::time::sleep(state.config().job_poll_interval.max(StdDuration::from_millis(10))) => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %owner, error = %e, "could not claim a job");
                tokio::select! {
                    _ = state.shutdown().cancelled() => {}
                    _ = tokio::time::sleep(StdDuration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Extends the lease every third of its length; cancels `lost` if it was taken away.
async fn heartbeat(state: AppState, lease: JobLease, lost: CancellationToken) {
    let every = (state.config().job_lease / 3_i32).unsigned_abs();
    loop {
        tokio::time::sleep(every).await;
        match state.store().heartbeat_job(&lease, time::OffsetDateTime::now_utc() + lease_duration(&state)).await {
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

async fn run_job(state: &AppState, registry: &JobRegistry, job: Job) {
    tracing::info!(job.id = %job.id, job.kind = %job.kind, job.attempt = job.attempt, tenant.id = %job.tenant_id, "job claimed");
    let Some(handler) = registry.get(&job.kind) else {
        // A newer version's job: this one cannot run it, now or at a later attempt.
        let error = format!("unknown job kind '{}': this version of dmsync cannot run it", job.kind);
        tracing::error!(job.id = %job.id, job.kind = %job.kind, tenant.id = %job.tenant_id, error = %error, "job failed for good");
        crate::metrics::job_failed("unknown");
        if let Err(e) = state.store().fail_job(&job.lease(), &error, None).await {
            tracing::warn!(job.id = %job.id, error = %e, "could not record job failure");
        }
        return;
    };
    let kind = handler.kind;
    let cx = JobContext { state: state.clone(), job, lost: CancellationToken::new() };
    let lease = cx.lease();
    let beat = tokio::spawn(heartbeat(state.clone(), lease.clone(), cx.lost.clone()));
    let result = handler.run(&cx).await;
    beat.abort();
    let job = &cx.job;
    match result {
        Ok(JobEnd::Done) => crate::metrics::job_finished(kind),
        Ok(JobEnd::LeaseLost) => {}
        Ok(JobEnd::Released) => {
            if let Err(e) = state.store().release_job(&lease).await {
                tracing::warn!(job.id = %job.id, error = %e, "could not release job at shutdown");
            }
        }
        // A payload that does not decode now never will.
        Err(error) if job.attempt >= MAX_ATTEMPTS || error.is::<InvalidPayload>() => {
            // The whole cause chain, on one line.
            let error = format!("{error:#}");
            // Logged once, here, where the failure is final.
            tracing::error!(job.id = %job.id, job.kind = kind, tenant.id = %job.tenant_id, error = %error, "job failed for good");
            crate::metrics::job_failed(kind);
            if let Err(e) = handler.fail_for_good(&cx, &error).await {
                tracing::warn!(job.id = %job.id, error = %format!("{e:#}"), "could not record job failure");
            }
        }
        Err(error) => {
            let error = format!("{error:#}");
            let backoff = time::Duration::seconds(2i64.pow(job.attempt.clamp(0, 6) as u32));
            tracing::warn!(job.id = %job.id, job.attempt = job.attempt, error = %error, "job attempt failed; will retry");
            if let Err(e) = state.store().fail_job(&lease, &error, Some(state.now() + backoff)).await {
                tracing::warn!(job.id = %job.id, error = %e, "could not record job attempt failure");
            }
        }
    }
}
