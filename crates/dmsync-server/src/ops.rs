//! Operational endpoints, outside Graph: liveness, readiness and Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(metrics: metrics_exporter_prometheus::PrometheusHandle) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut response = metrics.render().into_response();
                    response
                        .headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                    response
                }
            }),
        )
}

/// Ready when the database answers; otherwise a 503 in Graph's error shape, as every error.
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(json!({ "status": "ok", "database": "ok" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable(format!("the database does not answer: {e}")))
        }
    }
}
