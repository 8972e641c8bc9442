//! Durable background jobs: rows with a lease. A worker claims a job atomically, heartbeats
//! while it works, and completes it fenced by the attempt number, so a worker whose lease ran
//! out can never overwrite a newer attempt's result.

use crate::TenantId;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Reconcile a tenant's Autopilot registrations into device identities.
    AutopilotSync,
    /// Process the imported identities of one create or `import` request.
    ImportAutopilotDevices,
    /// Deregister one Autopilot device deleted through Graph (payload `{"deviceId"}`).
    DeregisterAutopilotDevice,
    /// Sync one Exchange connector (payload `{"connectorId","syncType"}`).
    ExchangeConnectorSync,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::AutopilotSync => "autopilotSync",
            JobKind::ImportAutopilotDevices => "importAutopilotDevices",
            JobKind::DeregisterAutopilotDevice => "deregisterAutopilotDevice",
            JobKind::ExchangeConnectorSync => "exchangeConnectorSync",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "autopilotSync" => Some(JobKind::AutopilotSync),
            "importAutopilotDevices" => Some(JobKind::ImportAutopilotDevices),
            "deregisterAutopilotDevice" => Some(JobKind::DeregisterAutopilotDevice),
            "exchangeConnectorSync" => Some(JobKind::ExchangeConnectorSync),
            _ => None,
        }
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
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: JobKind,
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
    pub job_id: Uuid,
    pub attempt: i64,
    pub owner: String,
}

/// How many times a job is attempted before it is marked failed for good.
pub const MAX_ATTEMPTS: i64 = 5;
