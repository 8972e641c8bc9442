//! The evaluation of a tenant's dynamic device groups: every group whose processing is `On`
//! gets the members its rule selects, set-based, in one transaction with the job's fenced
//! completion. Idempotent: a rerun selects the same devices.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use dmsync_core::jobs::JobPayload;

use super::{BackgroundJob, JobContext, JobEnd};
use crate::membership;

/// Enqueued (coalesced, one queued per tenant) by a dynamic group's create or rule change and by
/// changes to the tenant's Entra devices; the tenant is the job's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluateGroupMembership {}

impl JobPayload for EvaluateGroupMembership {
    const KIND: &'static str = "evaluateGroupMembership";
}

impl BackgroundJob for EvaluateGroupMembership {
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job) = (&cx.state, &cx.job);
        let evaluated = state
            .store()
            .evaluate_group_membership(&cx.lease(), job.tenant_id, state.now())
            .await
            .context("evaluating the dynamic groups")?;
        let Some(stats) = evaluated else { return Ok(JobEnd::LeaseLost) };
        tracing::info!(
            job.id = %job.id, tenant.id = %job.tenant_id, groups.evaluated = stats.groups,
            members.added = stats.added, members.removed = stats.removed,
            "group membership evaluated"
        );
        if stats.changed() {
            membership::membership_changed(state, job.tenant_id).await;
        }
        Ok(JobEnd::Done)
    }
}
