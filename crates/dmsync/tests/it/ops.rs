//! Health, readiness and metrics.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.raw(Method::GET, "/healthz", None).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.raw(Method::GET, "/readyz", None).send().await.unwrap().status(), StatusCode::OK);
    let client = app.user_client().await;
    client.get_windows_autopilot_settings().await.unwrap();
    client.sync_windows_autopilot_settings().await.unwrap();
    let text = app.raw(Method::GET, "/metrics", None).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("dmsync_http_requests_total{route=\"/beta/deviceManagement/windowsAutopilotSettings\",method=\"GET\",status=\"200\"}"), "{text}");
    assert!(text.contains("dmsync_http_request_duration_seconds_bucket"), "latency histogram");
    assert!(text.contains("dmsync_jobs_started_total{kind=\"autopilotSync\"}"));
    app.stop().await;
}
