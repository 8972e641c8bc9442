//! The Autopilot sync: reconciles the tenant's registrations into device identities, stays
//! `inProgress` for the configured sync duration (measured on the Clock, as a real sync takes
//! time), then records `completed` with `lastSyncDateTime`. Idempotent; its result is recorded
//! fenced by its lease.

use std::time::Duration as StdDuration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use dmsync_core::autopilot::{ReconcileStats, SyncOutcome};
use dmsync_core::jobs::JobPayload;
use dmsync_core::store::AutopilotSettingsStore;

use super::assign_deployment_profiles::schedule_profile_assignment;
use super::{BackgroundJob, JobContext, JobEnd};
use crate::control::faults::DomainKind;

/// How often a waiting sync looks at the Clock, so that a clock advance ends it promptly.
const CLOCK_POLL: StdDuration = StdDuration::from_millis(50);

/// Enqueued by `syncAutopilotDevices`; the tenant is the job's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotSync {}

impl JobPayload for AutopilotSync {
    const KIND: &'static str = "autopilotSync";
}

impl BackgroundJob for AutopilotSync {
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job) = (&cx.state, &cx.job);
        // A fault rule may ask that this sync fail: it changes nothing, and ends `failed` after
        // its usual duration, as a sync the service could not finish does.
        if let Some((fault, _)) = state.faults().take_domain(job.tenant_id, DomainKind::AutopilotSyncFailed, |_| true) {
            if let Some(end) = wait_for_the_sync_duration(cx).await {
                return Ok(end);
            }
            let error = format!("failed by the fault rule {fault}");
            let recorded = state
                .settings()
                .finish_autopilot_sync(&cx.lease(), job.tenant_id, SyncOutcome::Failed, Some(&error), state.now())
                .await
                .context("recording the failed sync")?;
            tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, fault.id = %fault, "autopilot sync failed by a fault rule");
            return Ok(if recorded { JobEnd::Done } else { JobEnd::LeaseLost });
        }
        let report = |stats: ReconcileStats, rows: u64| {
            tracing::info!(
                job.id = %job.id, tenant.id = %job.tenant_id, rows.covered = rows,
                devices.created = stats.created, devices.updated = stats.updated, devices.deleted = stats.deleted,
                "autopilot sync progress"
            );
            metrics::gauge!("dmsync_autopilot_sync_rows_covered").set(rows as f64);
            // A shutdown stops the sync at this safe point; the next start finishes it.
            !state.shutdown().is_cancelled()
        };
        let reconciled = state
            .store()
            .reconcile_autopilot_devices_with_progress(job.tenant_id, state.now(), &report)
            .await
            .context("reconciling the registrations into devices")?;
        let Some(stats) = reconciled else { return Ok(JobEnd::Released) };
        tracing::info!(
            job.id = %job.id, tenant.id = %job.tenant_id,
            devices.created = stats.created, devices.updated = stats.updated, devices.deleted = stats.deleted,
            "autopilot sync reconciled"
        );
        crate::metrics::sync_devices(stats.created, stats.updated, stats.deleted);
        // Reconciliation creates Entra devices and moves their [OrderId]; asked for before the
        // job completes, so a crash in between repeats the request rather than losing it.
        crate::membership::request_evaluation(state, job.tenant_id)
            .await
            .context("requesting the group membership evaluation")?;
        // Created devices may come under a profile. Asked for on every run, not only when this
        // one created devices: a run after a crash finds the devices already there, and the
        // sync is not complete (so it runs again) until this request has committed.
        schedule_profile_assignment(state, job.tenant_id).await.context("scheduling profile assignment")?;

        if let Some(end) = wait_for_the_sync_duration(cx).await {
            return Ok(end);
        }
        let lease = cx.lease();
        let recorded = state
            .settings()
            .finish_autopilot_sync(&lease, job.tenant_id, SyncOutcome::Completed, None, state.now())
            .await
            .context("recording the sync")?;
        if !recorded {
            tracing::warn!(job.id = %job.id, "sync finished after its lease was taken; result not recorded");
            return Ok(JobEnd::LeaseLost);
        }
        tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, "autopilot sync completed");
        Ok(JobEnd::Done)
    }

    /// The settings must not stay `inProgress`: they read `failed`, with the job, in one step.
    async fn fail_for_good(&self, cx: &JobContext, error: &str) -> anyhow::Result<bool> {
        let (state, job) = (&cx.state, &cx.job);
        let lease = cx.lease();
        let finish = state.settings().finish_autopilot_sync(
            &lease,
            job.tenant_id,
            SyncOutcome::Failed,
            Some(error),
            state.now(),
        );
        Ok(finish.await?)
    }
}

/// Waits until the sync has lasted its configured duration on the Clock; `Some` with how the
/// attempt ends when a shutdown or a lost lease comes first.
async fn wait_for_the_sync_duration(cx: &JobContext) -> Option<JobEnd> {
    let (state, job) = (&cx.state, &cx.job);
    let done_at = job.created_at + state.config().sync_duration;
    while state.now() < done_at {
        tokio::select! {
            _ = state.shutdown().cancelled() => return Some(JobEnd::Released),
            _ = cx.lost.cancelled() => return Some(JobEnd::LeaseLost),
            _ = tokio::time::sleep(CLOCK_POLL) => {}
        }
    }
    None
}
