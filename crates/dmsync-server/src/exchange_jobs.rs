//! The Exchange connector sync job and the scheduler that starts syncs as the real connector
//! does: a delta every 15 minutes and a full sync every 24 hours, by default, on the Clock.

use std::time::Duration as StdDuration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use dmsync_core::exchange::SyncType;
use dmsync_core::jobs::{Job, JobPayload, NewJob};

use crate::exchange_source;
use crate::jobs::JobEnd;
use crate::state::AppState;

/// How often the scheduler looks for due syncs (a clock advance also wakes it).
const SCHEDULER_TICK: StdDuration = StdDuration::from_secs(30);

/// The payload of one connector's sync.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeConnectorSync {
    pub connector_id: Uuid,
    /// `fullSync` or `deltaSync`.
    pub sync_type: String,
}

impl JobPayload for ExchangeConnectorSync {
    const KIND: &'static str = "exchangeConnectorSync";
}

/// The job that syncs the connector.
pub fn connector_sync_job(connector_id: Uuid, sync_type: SyncType) -> NewJob {
    NewJob::new(&ExchangeConnectorSync { connector_id, sync_type: sync_type.as_str().to_owned() })
}

pub fn connector_of(job: &Job) -> Option<Uuid> {
    job.payload.get("connectorId").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok())
}

/// How the staging of a sync's batches ended.
enum Staged {
    /// Every batch the source gave was staged.
    All,
    /// Shutdown came first: the job is given back, and its next attempt starts staging afresh.
    Released,
    LeaseLost,
}

/// Reads the connector's source as a stream and stages it batch by batch, then records the
/// result in one transaction (see ARCHITECTURE.md, "Exchange connector syncs"). A source that is
/// missing, unreachable or invalid is a failed sync (`disconnected`, cause logged), not a retry
/// and not a crash; a database error is retried, and the retry reads the source again.
pub async fn run_connector_sync(state: &AppState, job: &Job, lost: &CancellationToken) -> Result<JobEnd, String> {
    let id = connector_of(job).ok_or_else(|| format!("connector sync job without a connectorId: {}", job.payload))?;
    let sync_type = job
        .payload
        .get("syncType")
        .and_then(|v| v.as_str())
        .and_then(SyncType::parse)
        .ok_or_else(|| format!("connector sync job without a syncType: {}", job.payload))?;
    let Some(connector) = state.store.connector(job.tenant_id, id).await.map_err(|e| e.to_string())? else {
        // Deleted while queued: nothing to sync.
        state.store.fail_job(&job.lease(), "the connector was deleted", None).await.map_err(|e| e.to_string())?;
        return Ok(JobEnd::Done);
    };
    let lease = job.lease();
    if !state.store.begin_connector_staging(&lease, job.tenant_id, id).await.map_err(|e| e.to_string())? {
        return Ok(JobEnd::LeaseLost);
    }
    let full = sync_type == SyncType::FullSync;
    let since = if full { None } else { connector.watermark };
    let started = std::time::Instant::now();
    let (sender, batches) = mpsc::channel(exchange_source::BATCHES_AHEAD);
    let reading =
        exchange_source::read(connector.source.as_ref(), since, &state.config.exchange_source_allowed_hosts, sender);
    // The receiver moves into the staging loop, so that a loop that stops early drops it, and
    // the parser stops at its next batch instead of waiting for room in the channel.
    let staging = async {
        let mut batches = batches;
        while let Some(batch) = batches.recv().await {
            if lost.is_cancelled() {
                return Ok(Staged::LeaseLost);
            }
            if state.shutdown.is_cancelled() {
                return Ok(Staged::Released);
            }
            if !state
                .store
                .stage_connector_records(&lease, job.tenant_id, id, &batch)
                .await
                .map_err(|e| e.to_string())?
            {
                return Ok(Staged::LeaseLost);
            }
        }
        Ok::<_, String>(Staged::All)
    };
    let (read, staged) = tokio::join!(reading, staging);
    match staged? {
        Staged::All => {}
        Staged::Released => return Ok(JobEnd::Released),
        Staged::LeaseLost => return Ok(JobEnd::LeaseLost),
    }
    let records_read = match read {
        Ok(records) => records,
        Err(error) => {
            // Logged once, here, where the failure is handled.
            tracing::warn!(job.id = %job.id, tenant.id = %job.tenant_id, connector.id = %id, sync.kind = sync_type.as_str(), error = %error, "exchange connector sync failed; connector disconnected");
            metrics::counter!("dmsync_exchange_syncs_total", "kind" => sync_type.as_str(), "outcome" => "failed")
                .increment(1);
            let recorded = state
                .store
                .fail_connector_sync(&lease, job.tenant_id, id, &error.to_string(), state.now())
                .await
                .map_err(|e| e.to_string())?;
            return Ok(if recorded { JobEnd::Done } else { JobEnd::LeaseLost });
        }
    };
    let outcome = state
        .store
        .complete_connector_sync(&lease, job.tenant_id, id, full, state.now())
        .await
        .map_err(|e| e.to_string())?;
    match outcome {
        Some(stats) => {
            tracing::info!(
                job.id = %job.id, tenant.id = %job.tenant_id, connector.id = %id, sync.kind = sync_type.as_str(),
                records.read = records_read, devices.upserted = stats.upserted, devices.removed = stats.removed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "exchange connector synced"
            );
            metrics::counter!("dmsync_exchange_syncs_total", "kind" => sync_type.as_str(), "outcome" => "completed")
                .increment(1);
            Ok(JobEnd::Done)
        }
        None => Ok(JobEnd::LeaseLost),
    }
}

/// Starts the scheduled syncs that are due, until shutdown.
pub async fn run_scheduler(state: AppState) {
    let delta = time::Duration::try_from(state.config.exchange_delta_interval).unwrap_or(time::Duration::minutes(15));
    let full = time::Duration::try_from(state.config.exchange_full_interval).unwrap_or(time::Duration::hours(24));
    loop {
        match state.store.schedule_connector_syncs(state.now(), delta, full, &connector_sync_job).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(syncs = n, "scheduled exchange connector syncs started"),
            Err(e) => tracing::warn!(error = %e, "could not schedule exchange connector syncs"),
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = state.clock_advanced.notified() => {}
            _ = tokio::time::sleep(SCHEDULER_TICK) => {}
        }
    }
}
