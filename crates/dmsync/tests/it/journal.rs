//! The request journal (`GET /_dmsync/requests`, `POST /_dmsync/requests/count`, `DELETE`):
//! what it records of Graph and sign-in requests, what it redacts, how it cuts bodies, and how
//! its filters refuse bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use dmsync_client::RequestFilter;
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};

use crate::helpers::*;

const SYNC: &str = "/beta/deviceManagement/windowsAutopilotSettings/sync";

fn on_path(path: &str) -> RequestFilter {
    RequestFilter { path: Some(path.into()), ..RequestFilter::default() }
}

#[tokio::test]
async fn a_sync_and_its_409_are_journalled_and_counted() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::minutes(5)).await;
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    let conflict = client.sync_windows_autopilot_settings().await.unwrap_err();
    assert_eq!(conflict.status(), Some(409));

    let post_sync = RequestFilter { method: Some("post".into()), ..on_path(SYNC) };
    assert_eq!(app.admin.count_requests(&post_sync).await.unwrap(), 2);
    let ok = RequestFilter { status: Some("204".into()), ..post_sync.clone() };
    // "The sync was called exactly once" and succeeded.
    assert_eq!(app.admin.count_requests(&ok).await.unwrap(), 1);
    let wildcard = RequestFilter { status: Some("4xx".into()), ..on_path("/beta/*/sync") };
    assert_eq!(app.admin.count_requests(&wildcard).await.unwrap(), 1);

    let entries = app.admin.list_requests(&post_sync).await.unwrap();
    assert_eq!(entries.len(), 2);
    let (first, second) = (&entries[0], &entries[1]);
    assert_eq!((first.status, second.status), (204, 409));
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, SYNC);
    assert_eq!(first.tenant_id.as_deref(), Some(app.tenant().as_str()));
    assert_eq!(first.app_id.as_deref(), Some(DEV_CLIENT_ID.to_string().as_str()));
    assert!(first.duration_ms >= 0.0);
    assert!(first.sequence < second.sequence);
    // The 409 is journalled as the client got it: Graph's rendered error body.
    let error: Value = serde_json::from_str(second.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "Conflict");
    // The token request and the calls are there too; the admin API is not.
    let all = app.admin.list_requests(&RequestFilter::default()).await.unwrap();
    assert!(all.iter().any(|e| e.path.ends_with("/oauth2/v2.0/token")), "{all:?}");
    assert!(all.iter().all(|e| !e.path.starts_with("/_dmsync")), "{all:?}");

    // Filtering by tenant and by time.
    let other = RequestFilter { tenant_id: Some(uuid::Uuid::new_v4().to_string()), ..on_path(SYNC) };
    assert_eq!(app.admin.count_requests(&other).await.unwrap(), 0);
    let since = RequestFilter { since: Some(second.time.clone()), ..on_path(SYNC) };
    assert_eq!(app.admin.count_requests(&since).await.unwrap(), 1);

    // DELETE clears it.
    app.admin.clear_requests().await.unwrap();
    assert_eq!(app.admin.count_requests(&RequestFilter::default()).await.unwrap(), 0);
}

#[tokio::test]
async fn passwords_tokens_and_bearer_headers_are_never_kept() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let client_id = DEV_CLIENT_ID.to_string();
    let (status, body) = token_request(
        &app,
        &tenant,
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("username", DEV_USER_UPN),
            ("password", DEV_USER_PASSWORD),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", &token, None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, journal) = admin(&app, Method::GET, "/_dmsync/requests", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let text = journal.to_string();
    assert!(!text.contains(DEV_USER_PASSWORD), "{text}");
    assert!(!text.contains(&token), "the bearer token is in the journal: {text}");
    assert!(!text.contains(token.split('.').nth(1).unwrap()), "{text}");
    let grant = journal["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/oauth2/v2.0/token"))
        .unwrap();
    let request = grant["requestBody"].as_str().unwrap();
    assert!(request.contains("password=[REDACTED]") && request.contains("grant_type=password"), "{request}");
    let response = grant["responseBody"].as_str().unwrap();
    assert!(response.contains(r#""access_token":"[REDACTED]""#), "{response}");
    assert!(response.contains(r#""token_type":"Bearer""#), "{response}");
    assert_eq!(grant["tenantId"], Value::Null, "the token request had no token");
}

#[tokio::test]
async fn bodies_are_cut_at_the_limit_with_a_marker() {
    let app = synced_app_with(&["J-1", "J-2", "J-3"], |c| c.journal_body_bytes = 64).await;
    let client = app.user_client().await;
    let devices = client.all_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, "").await.unwrap();
    assert_eq!(devices.len(), 3);
    let entries =
        app.admin.list_requests(&on_path("/beta/deviceManagement/windowsAutopilotDeviceIdentities*")).await.unwrap();
    let body = entries.last().unwrap().response_body.as_deref().unwrap();
    assert!(body.ends_with("…[truncated by dmsync]"), "{body}");
    assert!(body.len() <= 64 + "…[truncated by dmsync]".len(), "{body}");
    assert!(body.starts_with(r#"{"@odata.context""#), "{body}");
}

#[tokio::test]
async fn an_unknown_route_is_journalled_with_the_nearest_known_one() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let (status, _) =
        send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSetings?$select=id", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let entries = app.admin.list_requests(&on_path("/beta/deviceManagement/windowsAutopilotSetings")).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].nearest_route.as_deref(), Some("/beta/deviceManagement/windowsAutopilotSettings"));
    assert_eq!(entries[0].path, "/beta/deviceManagement/windowsAutopilotSetings?$select=id");
    // A known route has none.
    let (status, _) = send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let known = app.admin.list_requests(&on_path("/beta/deviceManagement/windowsAutopilotSettings")).await.unwrap();
    assert_eq!(known[0].nearest_route, None);
}

#[tokio::test]
async fn bad_filters_are_a_400_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", &token, None).await;
    let before = app.admin.count_requests(&RequestFilter::default()).await.unwrap();
    assert!(before >= 2);
    for query in
        ["status=conflict", "status=4000", "since=yesterday", "tenantId=contoso", "method=FETCH", "path=", "regex=.*"]
    {
        let (status, body) = admin(&app, Method::GET, &format!("/_dmsync/requests?{query}"), Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest", "{query}: {body}");
    }
    for filter in [json!({"status": "teapot"}), json!({"since": "2026-13-01"}), json!({"regex": ".*"}), json!([1])] {
        let (status, body) = admin(&app, Method::POST, "/_dmsync/requests/count", filter.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
    }
    let (status, body) = admin(&app, Method::POST, "/_dmsync/requests/count", json!({"status": 200})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.admin.count_requests(&RequestFilter::default()).await.unwrap(), before);
    // The admin token is required, as on every admin route.
    let r = app.raw(Method::DELETE, "/_dmsync/requests", Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.admin.count_requests(&RequestFilter::default()).await.unwrap(), before);
}

#[tokio::test]
async fn a_journal_of_zero_entries_is_off() {
    let app = spawn_app_with(|c| c.journal_entries = 0).await;
    let token = app.user_token().await;
    send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", &token, None).await;
    assert_eq!(app.admin.list_requests(&RequestFilter::default()).await.unwrap().len(), 0);
}

#[tokio::test]
async fn the_cli_lists_and_tails_the_journal() {
    use tokio::io::AsyncBufReadExt;

    let app = spawn_app().await;
    let token = app.user_token().await;
    let cli = crate::cli::Cli::new(&app);
    send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", &token, None).await;

    let listed = cli.run(&["requests", "list", "--path", "/beta/*Settings", "--status", "2xx"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{listed:?}");
    assert!(lines[0].contains("  200  GET    /beta/deviceManagement/windowsAutopilotSettings  "), "{listed:?}");
    assert!(lines[0].ends_with("ms"), "{listed:?}");
    let bad = cli.run(&["requests", "list", "--status", "teapot"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("teapot"), "{bad:?}");

    // `tail` prints what is there, then each new request as it comes.
    let mut tail =
        cli.command(&["requests", "tail", "--json", "--interval", "100ms", "--path", "/beta/*"]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await;
        let line = line.expect("a line within 20 s").unwrap().expect("tail still running");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    assert_eq!(next_line().await["path"], "/beta/deviceManagement/windowsAutopilotSettings");
    let (status, _) = send(&app, Method::POST, SYNC, &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let followed = next_line().await;
    assert_eq!((followed["path"].as_str(), followed["status"].as_u64()), (Some(SYNC), Some(204)));
    tail.kill().await.unwrap();
}
