//! Durable background jobs: rows with a lease. A worker claims a job atomically, heartbeats
//! while it works, and completes it fenced by the attempt number, so a worker whose lease ran
//! out can never overwrite a newer attempt's result.

use crate::TenantId;
use crate::ids::JobId;
use time::OffsetDateTime;

/// A job's typed payload; `KIND` is what the jobs table's `kind` column holds. The payload
/// types live with the code that runs their jobs (in the server); the store only carries them.
pub trait JobPayload: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static str;
}

/// A job to enqueue, built from a typed payload, so that a kind and its payload always agree.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    kind: &'static str,
    payload: serde_json::Value,
}

impl NewJob {
    pub fn new<P: JobPayload>(payload: &P) -> NewJob {
        let payload = serde_json::to_value(payload).expect("a job payload serialises to JSON");
        NewJob { kind: P::KIND, payload }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn payload(&self) -> &serde_json::Value {
        &self.payload
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub tenant_id: TenantId,
    /// A [`JobPayload::KIND`].
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Incremented at every claim; the fence for heartbeats and completion.
    pub attempt: i64,
    pub run_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

impl Job {
    pub fn lease(&self) -> JobLease {
        JobLease { job_id: self.id, attempt: self.attempt, owner: self.lease_owner.clone().unwrap_or_default() }
    }
}

/// Proof that a worker holds a job: every write about the job checks all three fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub job_id: JobId,
    pub attempt: i64,
    pub owner: String,
}

/// How many times a job is attempted before it is marked failed for good.
pub const MAX_ATTEMPTS: i64 = 5;
