//! The Autopilot jobs: the sync, the processing of imports, and the deregistration of a device
//! deleted through Graph. Each is idempotent and records its result fenced by its lease.

use std::time::Duration as StdDuration;

use tokio_util::sync::CancellationToken;

use dmsync_core::autopilot::SyncOutcome;
use dmsync_core::jobs::{Job, JobPayload};

use crate::jobs::JobEnd;
use crate::state::AppState;

/// How often a waiting sync looks at the Clock, so that a clock advance ends it promptly.
const CLOCK_POLL: StdDuration = StdDuration::from_millis(50);

/// Reconciles the tenant's registrations into device identities, stays `inProgress` for the
/// configured sync duration (measured on the Clock, as a real sync takes time), then records
/// `completed` with `lastSyncDateTime`.
pub async fn run_autopilot_sync(state: &AppState, job: &Job, lost: &CancellationToken) -> Result<JobEnd, String> {
    let report = |stats: dmsync_core::autopilot::ReconcileStats, rows: u64| {
        tracing::info!(
            job.id = %job.id, tenant.id = %job.tenant_id, rows.covered = rows,
            devices.created = stats.created, devices.updated = stats.updated, devices.deleted = stats.deleted,
            "autopilot sync progress"
        );
        metrics::gauge!("dmsync_autopilot_sync_rows_covered").set(rows as f64);
        // A shutdown stops the sync at this safe point; the next start finishes it.
        !state.shutdown.is_cancelled()
    };
    let reconciled = state
        .store
        .reconcile_autopilot_devices_with_progress(job.tenant_id, state.now(), &report)
        .await
        .map_err(|e| e.to_string())?;
    let Some(stats) = reconciled else { return Ok(JobEnd::Released) };
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
    let lease = job.lease();
    let finish = state.store.finish_autopilot_sync(&lease, job.tenant_id, SyncOutcome::Completed, None, state.now());
    let recorded = state.autopilot_settings.write(job.tenant_id, finish).await.map_err(|e| e.to_string())?;
    if !recorded {
        tracing::warn!(job.id = %job.id, "sync finished after its lease was taken; result not recorded");
        return Ok(JobEnd::LeaseLost);
    }
    tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, "autopilot sync completed");
    Ok(JobEnd::Done)
}

/// Processes one import request's identities in one transaction with the job's completion.
pub async fn run_import(state: &AppState, job: &Job) -> Result<JobEnd, String> {
    // A completed import moves the settings' cooldown anchor.
    let lease = job.lease();
    let process = state.store.process_imports(&lease, job.tenant_id, state.now(), state.config.import_counts_as_sync);
    let processed = state.autopilot_settings.write(job.tenant_id, process).await.map_err(|e| e.to_string())?;
    match processed {
        Some(stats) => {
            tracing::info!(
                job.id = %job.id, tenant.id = %job.tenant_id,
                imports.completed = stats.completed, imports.failed = stats.failed,
                "autopilot import processed"
            );
            metrics::counter!("dmsync_autopilot_imports_total", "status" => "complete").increment(stats.completed);
            metrics::counter!("dmsync_autopilot_imports_total", "status" => "error").increment(stats.failed);
            Ok(JobEnd::Done)
        }
        None => Ok(JobEnd::LeaseLost),
    }
}

/// The payload of a tenant's Autopilot sync: none.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AutopilotSync {}

impl JobPayload for AutopilotSync {
    const KIND: &'static str = "autopilotSync";
}

/// The payload of the processing of one create or `import` request's identities: none.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ImportAutopilotDevices {}

impl JobPayload for ImportAutopilotDevices {
    const KIND: &'static str = "importAutopilotDevices";
}

/// The payload of the deregistration of one device deleted through Graph.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterAutopilotDevice {
    pub device_id: uuid::Uuid,
}

impl JobPayload for DeregisterAutopilotDevice {
    const KIND: &'static str = "deregisterAutopilotDevice";
}

/// Deregisters a device deleted through Graph: its registration and identity go together.
pub async fn run_deregistration(state: &AppState, job: &Job) -> Result<JobEnd, String> {
    let device_id = job
        .payload
        .get("deviceId")
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| format!("deregistration job without a deviceId: {}", job.payload))?;
    let done = state
        .store
        .deregister_device(&job.lease(), job.tenant_id, device_id, state.now())
        .await
        .map_err(|e| e.to_string())?;
    if done {
        tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, device.id = %device_id, "autopilot device deregistered");
        Ok(JobEnd::Done)
    } else {
        Ok(JobEnd::LeaseLost)
    }
}
