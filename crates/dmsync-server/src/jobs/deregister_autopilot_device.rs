//! The deregistration of a device deleted through Graph: its registration and identity go
//! together, with the job's fenced completion.

use anyhow::Context;
use dmsync_core::AutopilotDeviceId;
use dmsync_core::jobs::JobPayload;
use serde::{Deserialize, Serialize};

use super::{BackgroundJob, JobContext, JobEnd};

/// Enqueued by a device's DELETE and by `deleteDevices`, `--deletion-delay` later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterAutopilotDevice {
    pub device_id: AutopilotDeviceId,
}

impl JobPayload for DeregisterAutopilotDevice {
    const KIND: &'static str = "deregisterAutopilotDevice";
}

impl BackgroundJob for DeregisterAutopilotDevice {
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job) = (&cx.state, &cx.job);
        let done = state
            .store()
            .deregister_device(&cx.lease(), job.tenant_id, self.device_id, state.now())
            .await
            .with_context(|| format!("deregistering device {}", self.device_id))?;
        if !done {
            return Ok(JobEnd::LeaseLost);
        }
        tracing::info!(job.id = %job.id, tenant.id = %job.tenant_id, device.id = %self.device_id, "autopilot device deregistered");
        Ok(JobEnd::Done)
    }
}
