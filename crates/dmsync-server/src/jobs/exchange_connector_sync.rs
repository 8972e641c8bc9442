//! The Exchange connector sync: reads the connector's source as a stream, stages it batch by
//! batch, then records the result in one transaction (see ARCHITECTURE.md, "Exchange connector
//! syncs"). The scheduler that enqueues the periodic syncs is `crate::exchange_scheduler`.

use anyhow::Context;
use dmsync_core::ConnectorId;
use dmsync_core::exchange::SyncType;
use dmsync_core::jobs::JobPayload;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{BackgroundJob, JobContext, JobEnd};
use crate::control::faults::{DomainEffect, DomainKind};
use crate::exchange_source;

/// Enqueued by the connector's `sync` action and by the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeConnectorSync {
    pub connector_id: ConnectorId,
    #[serde(with = "sync_type_text")]
    pub sync_type: SyncType,
}

impl JobPayload for ExchangeConnectorSync {
    const KIND: &'static str = "exchangeConnectorSync";
}

/// `SyncType` as its Graph text (`fullSync`, `deltaSync`).
mod sync_type_text {
    use dmsync_core::exchange::SyncType;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(sync_type: &SyncType, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(sync_type.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SyncType, D::Error> {
        let text = String::deserialize(deserializer)?;
        SyncType::parse(&text).ok_or_else(|| de::Error::unknown_variant(&text, &["fullSync", "deltaSync"]))
    }
}

/// How the staging of a sync's batches ended.
enum Staged {
    /// Every batch the source gave was staged.
    All,
    /// Shutdown came first: the job is given back, and its next attempt starts staging afresh.
    Released,
    LeaseLost,
}

impl BackgroundJob for ExchangeConnectorSync {
    /// A source that is missing, unreachable or invalid is a failed sync (`disconnected`, cause
    /// logged), not a retry and not a crash; a database error is retried, and the retry reads
    /// the source again.
    async fn run(&self, cx: &JobContext) -> anyhow::Result<JobEnd> {
        let (state, job, id, sync_type) = (&cx.state, &cx.job, self.connector_id, self.sync_type);
        let Some(connector) = state.store().connector(job.tenant_id, id).await.context("reading the connector")? else {
            // Deleted while queued: nothing to sync.
            state.store().fail_job(&cx.lease(), "the connector was deleted", None).await?;
            return Ok(JobEnd::Done);
        };
        let lease = cx.lease();
        // A fault rule may ask that this sync lose the connection to Exchange.
        let fault = state.faults().take_domain(job.tenant_id, DomainKind::ConnectorDisconnected, |effect| {
            matches!(effect, DomainEffect::ConnectorDisconnected { connector } if connector.is_none_or(|c| c == id))
        });
        if let Some((fault, _)) = fault {
            tracing::info!(job.id = %job.id, connector.id = %id, fault.id = %fault, "exchange connector sync failed by a fault rule");
            let error = format!("disconnected by the fault rule {fault}");
            let recorded = state
                .store()
                .fail_connector_sync(&lease, job.tenant_id, id, &error, state.now())
                .await
                .context("recording the failed sync")?;
            return Ok(if recorded { JobEnd::Done } else { JobEnd::LeaseLost });
        }
        if !state.store().begin_connector_staging(&lease, job.tenant_id, id).await.context("emptying the staging")? {
            return Ok(JobEnd::LeaseLost);
        }
        let full = sync_type == SyncType::FullSync;
        let since = if full { None } else { connector.watermark };
        let started = std::time::Instant::now();
        let (sender, batches) = mpsc::channel(exchange_source::BATCHES_AHEAD);
        let reading = exchange_source::read(
            connector.source.as_ref(),
            since,
            &state.config().exchange_source_allowed_hosts,
            sender,
        );
        // The receiver moves into the staging loop, so that a loop that stops early drops it, and
        // the parser stops at its next batch instead of waiting for room in the channel.
        let staging = async {
            let mut batches = batches;
            while let Some(batch) = batches.recv().await {
                if cx.lost.is_cancelled() {
                    return Ok(Staged::LeaseLost);
                }
                if state.shutdown().is_cancelled() {
                    return Ok(Staged::Released);
                }
                if !state
                    .store()
                    .stage_connector_records(&lease, job.tenant_id, id, &batch)
                    .await
                    .context("staging a batch of records")?
                {
                    return Ok(Staged::LeaseLost);
                }
            }
            Ok::<_, anyhow::Error>(Staged::All)
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
                    .store()
                    .fail_connector_sync(&lease, job.tenant_id, id, &error.to_string(), state.now())
                    .await
                    .context("recording the failed sync")?;
                return Ok(if recorded { JobEnd::Done } else { JobEnd::LeaseLost });
            }
        };
        let outcome = state
            .store()
            .complete_connector_sync(&lease, job.tenant_id, id, full, state.now())
            .await
            .context("recording the sync")?;
        let Some(stats) = outcome else { return Ok(JobEnd::LeaseLost) };
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

    /// The connector reads `disconnected` and its staging is emptied, with the job.
    async fn fail_for_good(&self, cx: &JobContext, error: &str) -> anyhow::Result<bool> {
        let (state, job) = (&cx.state, &cx.job);
        Ok(state.store().fail_connector_sync(&cx.lease(), job.tenant_id, self.connector_id, error, state.now()).await?)
    }
}
