//! When group membership is worked out, and the one place that hears that it changed.
//!
//! A dynamic group's members follow its rule some time after a rule or a device changed, as in
//! Entra: every such change asks for the tenant's membership evaluation
//! ([`request_evaluation`]), a durable job due `--group-processing-delay` later on the Clock,
//! coalesced to one pending evaluation per tenant. [`membership_changed`] is called whenever a
//! group's members actually changed (a `members/$ref` write, an evaluation that added or removed
//! members, a group or a device deleted).

use crate::jobs::assign_deployment_profiles::schedule_profile_assignment_after;
use dmsync_core::TenantId;
use dmsync_core::jobs::NewJob;

use crate::jobs::evaluate_group_membership::EvaluateGroupMembership;
use crate::state::AppState;

/// The evaluation job.
pub fn evaluation_job() -> NewJob {
    NewJob::new(&EvaluateGroupMembership {})
}

/// When an evaluation asked for now is due.
pub fn evaluation_due(state: &AppState) -> time::OffsetDateTime {
    state.now() + state.config().group_processing_delay
}

/// Asks for the tenant's membership evaluation after a change to its Entra devices. Nothing is
/// enqueued when the tenant has no dynamic group being processed, or when an evaluation is
/// queued already (it will see this change too).
pub async fn request_evaluation(state: &AppState, tenant: TenantId) -> Result<(), dmsync_core::StoreError> {
    let enqueued =
        state.store().request_group_evaluation(tenant, state.now(), evaluation_due(state), &evaluation_job()).await?;
    if enqueued {
        tracing::debug!(tenant.id = %tenant, "group membership evaluation requested");
    }
    Ok(())
}

/// [`request_evaluation`] after a write that has already answered for itself (its commit is
/// done): a failure here is logged, not turned into the request's error, since the write
/// stands; the next change to the tenant's devices or rules asks again, and so does the next
/// start of the server.
pub async fn request_evaluation_after(state: &AppState, tenant: TenantId) {
    if let Err(error) = request_evaluation(state, tenant).await {
        tracing::warn!(tenant.id = %tenant, error = %error, "group membership evaluation could not be requested");
    }
}

/// Called whenever the members of some group of the tenant changed, once that change is
/// committed: the assignment engine's pass for the tenant is asked for (coalesced). A failure
/// is logged, not returned, since the change stands; a crash between the two loses this one
/// request, which the restarted server's recovery passes make good (ARCHITECTURE.md, "The
/// profile assignment engine").
pub async fn membership_changed(state: &AppState, tenant: TenantId) {
    tracing::debug!(tenant.id = %tenant, "group membership changed");
    metrics::counter!("dmsync_group_membership_changes_total").increment(1);
    schedule_profile_assignment_after(state, tenant).await;
}
