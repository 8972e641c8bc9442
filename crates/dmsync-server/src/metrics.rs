//! Prometheus metrics. The recorder is process-global (the `metrics` facade allows one), so
//! several servers in one test process share it; every name carries the `dmsync_` prefix.

use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

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

/// The handles of one route's request metrics. Looking a metric up in the recorder by name and
/// labels builds and hashes a key with owned labels on every call, which cost a rejected sync
/// more than its whole response body did; so each route's handles are looked up once.
struct RouteHandles {
    duration: Histogram,
    /// Request counters by method and status; a route sees only a few of each.
    requests: Vec<(&'static str, StatusCode, Counter)>,
}

/// Handles by route template. Routes are a fixed set (plus "unmatched"), and methods outside
/// HTTP's own are counted as "other", so this stays small whatever clients send.
static ROUTES: OnceLock<RwLock<foldhash::HashMap<Box<str>, RouteHandles>>> = OnceLock::new();

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

pub fn record_request(route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
    let method = method_label(method);
    let routes = ROUTES.get_or_init(RwLock::default);
    {
        let known = routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(handles) = known.get(route)
            && let Some((_, _, counter)) = handles.requests.iter().find(|(m, s, _)| *m == method && *s == status)
        {
            counter.increment(1);
            handles.duration.record(elapsed.as_secs_f64());
            return;
        }
    }
    let mut known = routes.write().unwrap_or_else(|e| e.into_inner());
    let handles = known.entry(route.into()).or_insert_with(|| RouteHandles {
        duration: metrics::histogram!("dmsync_http_request_duration_seconds", "route" => route.to_owned()),
        requests: Vec::new(),
    });
    let index = match handles.requests.iter().position(|(m, s, _)| *m == method && *s == status) {
        Some(i) => i,
        None => {
            let counter = metrics::counter!(
                "dmsync_http_requests_total",
                "route" => route.to_owned(), "method" => method, "status" => status.as_str().to_owned()
            );
            handles.requests.push((method, status, counter));
            handles.requests.len() - 1
        }
    };
    handles.requests[index].2.increment(1);
    handles.duration.record(elapsed.as_secs_f64());
}

pub fn job_started(kind: &str) {
    metrics::counter!("dmsync_jobs_started_total", "kind" => kind.to_owned()).increment(1);
}

pub fn job_finished(kind: &str) {
    metrics::counter!("dmsync_jobs_finished_total", "kind" => kind.to_owned()).increment(1);
}

pub fn job_failed(kind: &str) {
    metrics::counter!("dmsync_jobs_failed_total", "kind" => kind.to_owned()).increment(1);
}

/// Counts what a sync reconciliation changed.
pub fn sync_devices(created: u64, updated: u64, deleted: u64) {
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "created").increment(created);
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "updated").increment(updated);
    metrics::counter!("dmsync_autopilot_sync_devices_total", "change" => "deleted").increment(deleted);
}
