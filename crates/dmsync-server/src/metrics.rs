//! Prometheus metrics. The recorder is process-global (the `metrics` facade allows one), so
//! several servers in one test process share it; every name carries the `dmsync_` prefix.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the recorder once per process and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("dmsync_http_request_duration_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        "dmsync_http_requests_total",
        "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("dmsync_http_request_duration_seconds", "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
}

pub fn job_started(kind: &'static str) {
    metrics::counter!("dmsync_jobs_started_total", "kind" => kind).increment(1);
}

pub fn job_finished(kind: &'static str) {
    metrics::counter!("dmsync_jobs_finished_total", "kind" => kind).increment(1);
}

pub fn job_failed(kind: &'static str) {
    metrics::counter!("dmsync_jobs_failed_total", "kind" => kind).increment(1);
}

/// Counts what a sync reconciliation changed.
pub fn sync_devices(created: u64, updated: u64, deleted: u64) {
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "created").increment(created);
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "updated").increment(updated);
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "deleted").increment(deleted);
}
