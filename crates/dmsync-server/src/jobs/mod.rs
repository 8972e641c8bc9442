//! Durable background jobs. A job is a typed payload (its [`JobPayload::KIND`] names it in the
//! jobs table) with a [`BackgroundJob`] impl: how an attempt runs and what is recorded when the
//! job fails for good. [`registry`] maps each kind to its job, and [`worker`] claims jobs under
//! a lease, heartbeats, and ends each attempt fenced by its attempt number.
//!
//! Adding a job takes one new file here (the payload, its `KIND`, its `run` and, if the default
//! will not do, its failed-for-good step), one `mod` line below and one line in the registry.
//! Handlers enqueue it by handing `NewJob::new(&Payload { .. })` to the store method that makes
//! the state change asking for it; the store wakes the workers once that commits.

pub mod assign_deployment_profiles;
pub mod autopilot_sync;
pub mod deregister_autopilot_device;
pub mod evaluate_group_membership;
pub mod exchange_connector_sync;
pub mod import_autopilot_devices;
pub mod registry;
pub mod worker;

use std::future::Future;

use tokio_util::sync::CancellationToken;

use dmsync_core::jobs::{Job, JobLease, JobPayload};

use crate::state::AppState;

pub use worker::spawn_workers;

/// How an attempt stopped, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Completed and recorded (fenced).
    Done,
    /// Shutdown came first: give the job back untouched.
    Released,
    /// Another worker holds the job now; write nothing.
    LeaseLost,
}

/// What an attempt works with besides its payload.
pub struct JobContext {
    pub state: AppState,
    /// The claimed row; its lease fences every write about the job.
    pub job: Job,
    /// Cancelled when a heartbeat finds the lease taken by another worker.
    pub lost: CancellationToken,
}

impl JobContext {
    pub fn lease(&self) -> JobLease {
        self.job.lease()
    }
}

/// A kind of background job; the implementing type is its payload.
pub trait BackgroundJob: JobPayload {
    /// One attempt. An error is retried with backoff until the last attempt, then the job
    /// fails for good; its cause chain is what `last_error` keeps. Every write about the job
    /// is fenced by `cx.lease()`.
    fn run(&self, cx: &JobContext) -> impl Future<Output = anyhow::Result<JobEnd>> + Send;

    /// Records that the job failed for good with `error`; false when the lease is no longer
    /// ours. By default only the job row is marked failed; a job that also left state behind
    /// (a sync shown `inProgress`, say) settles it here in the same fenced transaction.
    fn fail_for_good(&self, cx: &JobContext, error: &str) -> impl Future<Output = anyhow::Result<bool>> + Send {
        async move { Ok(cx.state.store().fail_job(&cx.lease(), error, None).await?) }
    }
}
