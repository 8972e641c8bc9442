//! Which job runs each kind found in the jobs table. A kind this version does not know (a row
//! written by a newer version) and a payload that does not decode fail the job for good at
//! once: no later attempt could do better.

use std::collections::HashMap;

use futures::future::BoxFuture;

use dmsync_core::jobs::JobPayload;

use super::{BackgroundJob, JobContext, JobEnd};
use super::{
    assign_deployment_profiles, autopilot_sync, deregister_autopilot_device, evaluate_group_membership,
    exchange_connector_sync, import_autopilot_devices,
};

/// A payload in the jobs table that its kind's type cannot decode.
#[derive(Debug, thiserror::Error)]
#[error("the payload {payload} of a {kind} job is not valid")]
pub struct InvalidPayload {
    kind: &'static str,
    payload: serde_json::Value,
    #[source]
    source: serde_json::Error,
}

type RunFn = for<'a> fn(&'a JobContext) -> BoxFuture<'a, anyhow::Result<JobEnd>>;
type FailFn = for<'a> fn(&'a JobContext, &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;

/// One kind's steps, with the payload decoded from the claimed row.
pub struct Handler {
    pub kind: &'static str,
    run: RunFn,
    fail_for_good: FailFn,
}

impl Handler {
    fn of<J: BackgroundJob>() -> Handler {
        Handler { kind: J::KIND, run: run::<J>, fail_for_good: fail_for_good::<J> }
    }

    pub async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        (self.run)(cx).await
    }

    pub async fn fail_for_good(&self, cx: &JobContext, error: &str) -> anyhow::Result<bool> {
        (self.fail_for_good)(cx, error).await
    }
}

fn decode<J: JobPayload>(cx: &JobContext) -> Result<J, InvalidPayload> {
    serde_json::from_value(cx.job.payload.clone()).map_err(|source| InvalidPayload {
        kind: J::KIND,
        payload: cx.job.payload.clone(),
        source,
    })
}

fn run<J: BackgroundJob>(cx: &JobContext) -> BoxFuture<'_, anyhow::Result<JobEnd>> {
    Box::pin(async move { decode::<J>(cx)?.run(cx).await })
}

fn fail_for_good<'a, J: BackgroundJob>(cx: &'a JobContext, error: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
    Box::pin(async move {
        match decode::<J>(cx) {
            Ok(job) => job.fail_for_good(cx, error).await,
            // Without its payload the job's own step cannot run; the row is still ended.
            Err(_) => Ok(cx.state.store().fail_job(&cx.lease(), error, None).await?),
        }
    })
}

pub struct JobRegistry {
    handlers: HashMap<&'static str, Handler>,
}

impl JobRegistry {
    /// Every job this version runs, one line each.
    pub fn new() -> JobRegistry {
        JobRegistry { handlers: HashMap::new() }
            .with::<autopilot_sync::AutopilotSync>()
            .with::<import_autopilot_devices::ImportAutopilotDevices>()
            .with::<deregister_autopilot_device::DeregisterAutopilotDevice>()
            .with::<exchange_connector_sync::ExchangeConnectorSync>()
            .with::<evaluate_group_membership::EvaluateGroupMembership>()
            .with::<assign_deployment_profiles::AssignDeploymentProfiles>()
    }

    fn with<J: BackgroundJob>(mut self) -> JobRegistry {
        let previous = self.handlers.insert(J::KIND, Handler::of::<J>());
        assert!(previous.is_none(), "two jobs share the kind {}", J::KIND);
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Handler> {
        self.handlers.get(kind)
    }
}

impl Default for JobRegistry {
    fn default() -> JobRegistry {
        JobRegistry::new()
    }
}

#[cfg(test)]
mod tests {
    use dmsync_core::exchange::SyncType;
    use dmsync_core::jobs::NewJob;
    use serde_json::json;
    use uuid::Uuid;

    use dmsync_core::{AutopilotDeviceId, ConnectorId};

    use super::*;
    use crate::jobs::assign_deployment_profiles::AssignDeploymentProfiles;
    use crate::jobs::autopilot_sync::AutopilotSync;
    use crate::jobs::deregister_autopilot_device::DeregisterAutopilotDevice;
    use crate::jobs::evaluate_group_membership::EvaluateGroupMembership;
    use crate::jobs::exchange_connector_sync::ExchangeConnectorSync;
    use crate::jobs::import_autopilot_devices::ImportAutopilotDevices;

    /// Rows written by earlier versions must still decode: the kinds and the payload JSON are
    /// what the jobs table has always held.
    #[test]
    fn kinds_and_payloads_keep_their_stored_form() {
        let id = Uuid::new_v4();
        let cases = [
            (NewJob::new(&AutopilotSync {}), "autopilotSync", json!({})),
            (NewJob::new(&ImportAutopilotDevices {}), "importAutopilotDevices", json!({})),
            (
                NewJob::new(&DeregisterAutopilotDevice { device_id: AutopilotDeviceId::from_uuid(id) }),
                "deregisterAutopilotDevice",
                json!({ "deviceId": id }),
            ),
            (
                NewJob::new(&ExchangeConnectorSync {
                    connector_id: ConnectorId::from_uuid(id),
                    sync_type: SyncType::DeltaSync,
                }),
                "exchangeConnectorSync",
                json!({ "connectorId": id, "syncType": "deltaSync" }),
            ),
            (NewJob::new(&EvaluateGroupMembership {}), "evaluateGroupMembership", json!({})),
            (NewJob::new(&AssignDeploymentProfiles {}), "assignDeploymentProfiles", json!({})),
        ];
        let registry = JobRegistry::new();
        for (job, kind, payload) in cases {
            assert_eq!((job.kind(), job.payload()), (kind, &payload));
            assert_eq!(registry.get(kind).map(|h| h.kind), Some(kind), "{kind} is registered");
        }
        assert_eq!(registry.handlers.len(), 6, "every registered kind is covered above");
        let decoded: ExchangeConnectorSync =
            serde_json::from_value(json!({ "connectorId": id, "syncType": "fullSync" })).unwrap();
        assert_eq!((decoded.connector_id, decoded.sync_type), (ConnectorId::from_uuid(id), SyncType::FullSync));
        assert!(registry.get("someFutureJob").is_none());
    }
}
