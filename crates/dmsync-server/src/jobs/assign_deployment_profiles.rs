//! The deployment profile assignment engine: one pass over a tenant's Autopilot devices, in one
//! transaction with the job's fenced completion (`ProfileAssignmentStore` has the steps,
//! `dmsync_core::profile_assignment` the rules). A pass that leaves devices `pending` enqueues
//! the next one for when the earliest of them is due, `--profile-assignment-delay` after it
//! became pending; a clock advance makes that pass due at once.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use dmsync_core::jobs::{JobPayload, NewJob};
use dmsync_core::{StoreResult, TenantId};

use super::{BackgroundJob, JobContext, JobEnd};
use crate::state::AppState;

/// Enqueued, coalesced per tenant, by every change that can move a device in or out of a
/// profile's scope (see [`schedule_profile_assignment`]), and by a pass for its own follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignDeploymentProfiles {}

impl JobPayload for AssignDeploymentProfiles {
    const KIND: &'static str = "assignDeploymentProfiles";
}

impl AssignDeploymentProfiles {
    pub fn job() -> NewJob {
        NewJob::new(&AssignDeploymentProfiles {})
    }
}

/// Asks for a pass of the assignment engine over the tenant, due now. Call it after any change
/// that can move a device in or out of a profile's scope has committed: devices created (a
/// sync, an import), a group tag changed, a group's membership changed, an assignment or a
/// profile created or deleted. Requests made while a pass is queued share it; the pass runs
/// within milliseconds (the store wakes an idle worker), so a client reading the device right
/// after sees the intended profile almost at once.
pub async fn schedule_profile_assignment(state: &AppState, tenant: TenantId) -> StoreResult<()> {
    let now = state.now();
    state.store().enqueue_coalesced_job(tenant, &AssignDeploymentProfiles::job(), now, now).await?;
    Ok(())
}

/// [`schedule_profile_assignment`] after a write that has already committed and answers for
/// itself: a failure is logged, not returned, since the write stands; the tenant's next change
/// asks again, and so does the next start of the server.
pub async fn schedule_profile_assignment_after(state: &AppState, tenant: TenantId) {
    if let Err(error) = schedule_profile_assignment(state, tenant).await {
        tracing::warn!(tenant.id = %tenant, error = %error, "the profile assignment pass could not be requested");
    }
}

impl BackgroundJob for AssignDeploymentProfiles {
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job) = (&cx.state, &cx.job);
        let delay = state.config().profile_assignment_delay;
        // Fault rules may ask that some of the assignments this pass would make fail.
        let faults = state.faults().assignment_fault_candidates(job.tenant_id);
        let pass = state
            .store()
            .assign_deployment_profiles(
                &cx.lease(),
                job.tenant_id,
                state.now(),
                delay,
                &AssignDeploymentProfiles::job(),
                &faults.forced(),
            )
            .await
            .context("assigning deployment profiles")?;
        let Some(stats) = pass else { return Ok(JobEnd::LeaseLost) };
        state.faults().confirm_assignment_faults(&faults, &stats);
        tracing::info!(
            job.id = %job.id, tenant.id = %job.tenant_id,
            devices.pending = stats.pending, devices.assigned = stats.assigned, devices.unassigned = stats.unassigned,
            devices.failed = stats.failed, next_pass = ?stats.next_pass_at,
            "deployment profiles assigned"
        );
        Ok(JobEnd::Done)
    }
}
