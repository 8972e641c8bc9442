//! Throttling as Intune documents it (issue 19 §1): off by default; with `--throttling
//! documented` exactly the published number of writes and requests pass per tenant and per app
//! in a window, the rest get Graph's 429 with `Retry-After`; advancing the Clock refills the
//! buckets; a limits file or the admin API sets other limits, on a running server too; `$batch`
//! sub-requests count one by one; and replicas on PostgreSQL share the buckets exactly.

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use dmsync_server::config::ThrottlingSetting;

use crate::helpers::*;

const B: &str = "/beta/deviceManagement";
const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";

/// A token of an application of its own: each minted application token has a new app id.
async fn new_app_token(app: &TestApp) -> String {
    app.admin.mint_token(&app.tenant(), "application", &[RW], "work", None).await.unwrap()
}

/// One device imported in a single POST, as the bulk-import scripts do.
fn import_body(serial: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
        "serialNumber": serial,
        "hardwareIdentifier": hardware_hash(serial),
    })
}

/// What a request got: its status and `Retry-After` (in seconds), if any.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    status: StatusCode,
    retry_after: Option<u64>,
}

async fn request(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Outcome {
    let mut builder = app.raw(method, path, Some(token));
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.expect("request sent");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().expect("Retry-After in whole seconds"));
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests", "{body}");
        assert_eq!(body["error"]["message"], "Please retry again later.", "{body}");
        assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
    }
    Outcome { status, retry_after }
}

/// `n` single-device imports with `token`, sent a few at a time.
async fn imports(app: &TestApp, token: &str, prefix: &str, n: usize) -> Vec<Outcome> {
    futures::stream::iter(0..n)
        .map(|i| {
            let body = import_body(&format!("{prefix}-{i}"));
            async move {
                request(app, Method::POST, &format!("{B}/importedWindowsAutopilotDeviceIdentities"), token, Some(body))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// `n` reads of the Autopilot settings with `token`.
async fn reads(app: &TestApp, token: &str, n: usize) -> Vec<Outcome> {
    futures::stream::iter(0..n)
        .map(|_| request(app, Method::GET, SETTINGS, token, None))
        .buffer_unordered(8)
        .collect()
        .await
}

fn passed(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| o.status != StatusCode::TOO_MANY_REQUESTS).count()
}

fn throttled(outcomes: &[Outcome]) -> Vec<Outcome> {
    outcomes.iter().copied().filter(|o| o.status == StatusCode::TOO_MANY_REQUESTS).collect()
}

/// A limits file, as `--throttling FILE` reads it.
fn limits_file(limits: Value) -> (tempfile::TempDir, ThrottlingSetting) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.json");
    std::fs::write(&path, limits.to_string()).unwrap();
    let setting = ThrottlingSetting::from_flag(path.to_str().unwrap()).expect("a valid limits file");
    (dir, setting)
}

#[tokio::test]
async fn throttling_is_off_by_default() {
    let app = spawn_app().await;
    let (status, body) = admin(&app, Method::GET, "/_dmsync/throttling", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["mode"], "off");
    let token = new_app_token(&app).await;
    let outcomes = imports(&app, &token, "OFF", 120).await;
    assert!(outcomes.iter().all(|o| o.status == StatusCode::CREATED), "{outcomes:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_write_limits_are_exact_per_app_and_per_tenant() {
    let app = spawn_app_with(|c| c.throttling = ThrottlingSetting::Documented).await;
    // The first app: its 100 writes in the window, then 429s until the window ends.
    let first = new_app_token(&app).await;
    let outcomes = imports(&app, &first, "A", 130).await;
    assert_eq!(passed(&outcomes), 100, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.status == StatusCode::CREATED || o.status == StatusCode::TOO_MANY_REQUESTS));
    for refused in throttled(&outcomes) {
        assert!(matches!(refused.retry_after, Some(1..=20)), "{refused:?}");
    }
    // A second app has 100 of its own, which fills the tenant's 200.
    let second = new_app_token(&app).await;
    assert_eq!(passed(&imports(&app, &second, "B", 130).await), 100);
    // A third app finds the tenant's writes gone, but may still read: reads are counted
    // against the larger limit of requests of any kind, which refused writes did not take.
    let third = new_app_token(&app).await;
    assert_eq!(passed(&imports(&app, &third, "C", 5).await), 0);
    assert_eq!(passed(&reads(&app, &third, 5).await), 5);
    // Other families are not counted with enrollment (this app may not read the devices, but
    // is told so by the route, not by the throttle).
    let outcome = request(&app, Method::GET, "/v1.0/deviceManagement/managedDevices", &third, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    // The window ends on the Clock: everyone may write again.
    app.admin.advance_clock(20.0).await.unwrap();
    assert_eq!(passed(&imports(&app, &third, "C2", 3).await), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_of_500_single_posts_is_throttled_after_the_documented_count() {
    let app = spawn_app_with(|c| c.throttling = ThrottlingSetting::Documented).await;
    let token = new_app_token(&app).await;
    let outcomes = imports(&app, &token, "BULK", 500).await;
    assert_eq!(outcomes.iter().filter(|o| o.status == StatusCode::CREATED).count(), 100);
    assert_eq!(throttled(&outcomes).len(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_limits_file_sets_request_limits_and_retry_after_counts_down_on_the_clock() {
    let (_dir, setting) = limits_file(json!({
        "enrollment": {"tenantRequests": 5, "appRequests": 3, "windowSeconds": 20},
    }));
    let app = spawn_app_with(|c| c.throttling = setting).await;
    let (_, described) = admin(&app, Method::GET, "/_dmsync/throttling", Value::Null).await;
    assert_eq!(described["mode"], "custom");
    assert_eq!(described["limits"]["enrollment"]["appRequests"], 3);
    assert_eq!(described["limits"]["enrollment"]["appWrites"], 100);
    assert_eq!(described["limits"]["devices"]["tenantRequests"], 4000);

    let first = new_app_token(&app).await;
    let second = new_app_token(&app).await;
    assert_eq!(passed(&reads(&app, &first, 3).await), 3);
    let refused = request(&app, Method::GET, SETTINGS, &first, None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(refused.retry_after, Some(19..=20)), "{refused:?}");
    // The tenant has 2 left, for the second app.
    assert_eq!(passed(&reads(&app, &second, 3).await), 2);

    app.admin.advance_clock(10.0).await.unwrap();
    let refused = request(&app, Method::GET, SETTINGS, &second, None).await;
    assert!(matches!(refused.retry_after, Some(9..=10)), "{refused:?}");
    app.admin.advance_clock(10.0).await.unwrap();
    assert_eq!(passed(&reads(&app, &first, 4).await), 3);
    app.stop().await;
}

#[tokio::test]
async fn tenant_and_app_overrides_apply_to_their_own() {
    let app = spawn_app().await;
    let limited = new_app_token(&app).await;
    let limited_id = claims(&limited)["appid"].as_str().unwrap().to_owned();
    let limits = json!({"limits": {
        "tenants": {app.tenant(): {"enrollment": {"appWrites": 4}}},
        "apps": {limited_id: {"enrollment": {"appWrites": 1}}},
    }});
    let (status, body) = admin(&app, Method::PUT, "/_dmsync/throttling", limits).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(passed(&imports(&app, &limited, "L", 3).await), 1);
    let other = new_app_token(&app).await;
    assert_eq!(passed(&imports(&app, &other, "O", 6).await), 4);
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_switches_throttling_on_a_running_server() {
    let app = spawn_app().await;
    let token = new_app_token(&app).await;

    let (status, body) = admin(&app, Method::PUT, "/_dmsync/throttling", json!({"mode": "documented"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mode"], "documented");
    assert_eq!(body["limits"]["enrollment"]["tenantWrites"], 200);
    assert_eq!(body["limits"]["devices"]["appRequests"], 2000);

    let (status, _) = admin(
        &app,
        Method::PUT,
        "/_dmsync/throttling",
        json!({"limits": {"enrollment": {"appWrites": 2, "windowSeconds": 5}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let outcomes = imports(&app, &token, "S", 4).await;
    assert_eq!(passed(&outcomes), 2);
    assert!(throttled(&outcomes).iter().all(|o| matches!(o.retry_after, Some(1..=5))), "{outcomes:?}");

    // Bad changes are refused and change nothing.
    for bad in [
        json!({"mode": "documented", "limits": {}}),
        json!({}),
        json!({"mode": "fast"}),
        json!({"limits": {"enrollment": {"appWrites": -3}}}),
        json!({"limits": {"enrollment": {"windowSeconds": 0}}}),
        json!({"limits": {"groups": {"appWrites": 1}}}),
        json!({"limits": {"tenants": {"../etc": {}}}}),
    ] {
        let (status, body) = admin(&app, Method::PUT, "/_dmsync/throttling", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
    }
    let (_, body) = admin(&app, Method::GET, "/_dmsync/throttling", Value::Null).await;
    assert_eq!(body["mode"], "custom");
    assert_eq!(body["limits"]["enrollment"]["appWrites"], 2);

    let (status, body) = admin(&app, Method::PUT, "/_dmsync/throttling", json!({"mode": "off"})).await;
    assert_eq!((status, &body["mode"]), (StatusCode::OK, &json!("off")));
    assert_eq!(passed(&imports(&app, &token, "S2", 5).await), 5);
    app.stop().await;
}

#[tokio::test]
async fn batch_sub_requests_are_counted_one_by_one() {
    let (_dir, setting) = limits_file(json!({"enrollment": {"appRequests": 3}}));
    let app = spawn_app_with(|c| c.throttling = setting).await;
    let token = new_app_token(&app).await;
    let requests: Vec<Value> = (0..5)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings"}))
        .collect();
    let r =
        app.raw(Method::POST, "/beta/$batch", Some(&token)).json(&json!({"requests": requests})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.iter().filter(|r| r["status"] == 200).count(), 3, "{body}");
    let refused: Vec<&Value> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(refused.len(), 2, "{body}");
    for r in refused {
        assert_eq!(r["body"]["error"]["code"], "TooManyRequests", "{r}");
        assert!(r["headers"]["Retry-After"].as_str().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "{r}");
    }
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_are_not_counted() {
    let (_dir, setting) = limits_file(json!({"enrollment": {"tenantRequests": 1}}));
    let app = spawn_app_with(|c| c.throttling = setting).await;
    for _ in 0..3 {
        let outcome = request(&app, Method::GET, SETTINGS, "not-a-token", None).await;
        assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    }
    let token = new_app_token(&app).await;
    assert_eq!(passed(&reads(&app, &token, 2).await), 1);
    app.stop().await;
}

/// Always on PostgreSQL, whatever `DMSYNC_TEST_BACKEND` says (see `replicas.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_postgresql_share_the_buckets_exactly() {
    let Some((apps, pool)) = crate::replicas::start_replicas(2, |c| c.throttling = ThrottlingSetting::Documented).await
    else {
        return;
    };
    let token = new_app_token(&apps[0]).await;
    // Writes spread over both replicas: exactly the app's 100 pass between them.
    let outcomes: Vec<Outcome> = futures::stream::iter(0..300)
        .map(|i| {
            let path = format!("{B}/importedWindowsAutopilotDeviceIdentities/{}", uuid::Uuid::new_v4());
            let (app, token) = (&apps[i % 2], &token);
            async move { request(app, Method::DELETE, &path, token, None).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(passed(&outcomes), 100, "{outcomes:?}");
    assert_eq!(throttled(&outcomes).len(), 200);
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT tokens_left FROM throttle_buckets WHERE bucket_key LIKE 'enrollment/writes/%/%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, vec![0]);
    crate::replicas::stop_all(apps, pool).await;
}

/// Runs `dmsync throttling ARGS` against `app` and returns its exit code and the JSON it printed.
async fn cli(app: &TestApp, args: &[&str]) -> (i32, Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .arg("throttling")
        .args(args)
        .env("DMSYNC_GRAPH_URL", &app.base_url)
        .env_remove("DMSYNC_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    (output.status.code().unwrap(), serde_json::from_str(&stdout).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_cli_switches_throttling_on_and_off() {
    let app = spawn_app().await;
    assert_eq!(cli(&app, &["show"]).await.1["mode"], "off");
    let (code, shown) = cli(&app, &["on"]).await;
    assert_eq!((code, &shown["mode"]), (0, &json!("documented")));
    let (dir, _) = limits_file(json!({"enrollment": {"appWrites": 1}}));
    let path = dir.path().join("limits.json");
    let (code, shown) = cli(&app, &["on", "--limits", path.to_str().unwrap()]).await;
    assert_eq!((code, &shown["limits"]["enrollment"]["appWrites"]), (0, &json!(1)));
    let token = new_app_token(&app).await;
    assert_eq!(passed(&imports(&app, &token, "CLI", 2).await), 1);
    assert_eq!(cli(&app, &["off"]).await.1["mode"], "off");
    app.stop().await;
}
