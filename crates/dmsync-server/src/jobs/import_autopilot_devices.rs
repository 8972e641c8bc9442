//! The processing of one import request's identities, in one transaction with the job's
//! fenced completion.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use dmsync_core::jobs::JobPayload;
use dmsync_core::store::AutopilotSettingsStore;

use super::assign_deployment_profiles::AssignDeploymentProfiles;
use super::{BackgroundJob, JobContext, JobEnd};

/// Enqueued by `importedWindowsAutopilotDeviceIdentities` (create and `import`); the store
/// finds the identities by the job's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportAutopilotDevices {}

impl JobPayload for ImportAutopilotDevices {
    const KIND: &'static str = "importAutopilotDevices";
}

impl BackgroundJob for ImportAutopilotDevices {
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job) = (&cx.state, &cx.job);
        // Fault rules may ask that the imports of some serials fail with a given error.
        let faults = state.faults().import_fault_candidates(job.tenant_id);
        let forced: Vec<_> = faults.iter().map(|(_, error)| error.clone()).collect();
        // A completed import moves the settings' cooldown anchor.
        let lease = cx.lease();
        let processed = state
            .settings()
            .process_imports(
                &lease,
                job.tenant_id,
                state.now(),
                state.config().import_counts_as_sync,
                // The new devices may come under a profile (All Devices).
                &AssignDeploymentProfiles::job(),
                &forced,
            )
            .await
            .context("processing the imports")?;
        let Some(stats) = processed else { return Ok(JobEnd::LeaseLost) };
        state.faults().confirm_import_faults(&faults, &stats.forced);
        tracing::info!(
            job.id = %job.id, tenant.id = %job.tenant_id,
            imports.completed = stats.completed, imports.failed = stats.failed,
            "autopilot import processed"
        );
        metrics::counter!("dmsync_autopilot_imports_total", "status" => "complete").increment(stats.completed);
        metrics::counter!("dmsync_autopilot_imports_total", "status" => "error").increment(stats.failed);
        if stats.completed > 0 {
            // The imported devices' Entra objects may match dynamic rules.
            crate::membership::request_evaluation_after(state, job.tenant_id).await;
        }
        Ok(JobEnd::Done)
    }
}
