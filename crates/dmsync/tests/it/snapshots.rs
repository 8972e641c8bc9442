//! `POST /_dmsync/reset` and `/_dmsync/snapshots`: what a test suite runs between its tests.

use std::time::Duration;

use dmsync_graph::ApiVersion;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const FABRIKAM: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

async fn device_serials(app: &TestApp, token: &str) -> Vec<String> {
    let client = app.graph.with_token(token.to_owned());
    let devices = client.all_windows_autopilot_device_identities(ApiVersion::Beta, "").await.unwrap();
    let mut serials: Vec<String> = devices.into_iter().map(|d| d.serial_number).collect();
    serials.sort();
    serials
}

async fn group_count(app: &TestApp, token: &str) -> usize {
    let (status, body) = send(app, Method::GET, "/v1.0/groups", token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["value"].as_array().unwrap().len()
}

async fn create_group(app: &TestApp, token: &str, name: &str) {
    let group = json!({
        "displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true,
    });
    let (status, body) = send(app, Method::POST, "/v1.0/groups", token, Some(group)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_tenant_reset_empties_that_tenant_only_and_recreates_the_development_identities() {
    let app = synced_app(&["RESET-1", "RESET-2"]).await;
    let token = app.user_token().await;
    create_group(&app, &token, "Before").await;
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.unwrap();
    app.admin.add_registrations(FABRIKAM, &[registration("FAB-1")]).await.unwrap();
    // The sync's cooldown is running.
    let client = app.user_client().await;
    assert_eq!(client.sync_windows_autopilot_settings().await.unwrap_err().status(), Some(429));

    app.admin.reset(Some(&app.tenant())).await.unwrap();

    // A token issued before the reset still works: the keys are kept, and so is the user.
    assert!(device_serials(&app, &token).await.is_empty());
    assert_eq!(group_count(&app, &token).await, 0);
    let settings = app.get_json("/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).await;
    assert_eq!(settings["syncStatus"], "unknown", "{settings}");
    // The cooldown went with the settings, and the development user signs in as before.
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.expect("a sync right after the reset");
    let (status, tags) = send(&app, Method::GET, "/beta/deviceManagement/roleScopeTags", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tags["value"][0]["displayName"], "Default", "{tags}");

    // The other tenant kept its registration: its sync brings the device.
    let fabrikam = app.admin.mint_token(FABRIKAM, "delegated", &[RW], "work", None).await.unwrap();
    let client = app.graph.with_token(fabrikam.clone());
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    assert_eq!(device_serials(&app, &fabrikam).await, ["FAB-1"]);
    app.stop().await;
}

#[tokio::test]
async fn a_full_reset_removes_every_tenant_and_keeps_the_keys() {
    let app = synced_app(&["ALL-1"]).await;
    let token = app.user_token().await;
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.unwrap();
    let fabrikam_token = app.admin.mint_token(FABRIKAM, "delegated", &[RW], "work", None).await.unwrap();

    app.admin.reset(None).await.unwrap();

    assert!(device_serials(&app, &token).await.is_empty(), "the development tenant is back, empty");
    // Fabrikam is gone: its token names no tenant, and it can be created again.
    let (status, _) =
        send(&app, Method::GET, "/beta/deviceManagement/windowsAutopilotDeviceIdentities", &fabrikam_token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.expect("fabrikam can be created again");
    assert!(app.user_client().await.sync_windows_autopilot_settings().await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn a_reset_of_an_unknown_tenant_or_with_a_bad_body_changes_nothing() {
    let app = synced_app(&["KEEP-1"]).await;
    let token = app.user_token().await;
    for (body, want) in [
        (json!({ "tenantId": FABRIKAM }), StatusCode::NOT_FOUND),
        (json!({ "tenantId": "not-a-guid" }), StatusCode::BAD_REQUEST),
        (json!({ "tenantId": null }), StatusCode::BAD_REQUEST),
        (json!({ "tenant": app.tenant() }), StatusCode::BAD_REQUEST),
        (json!([]), StatusCode::BAD_REQUEST),
    ] {
        let (status, error) = admin(&app, Method::POST, "/_dmsync/reset", body.clone()).await;
        assert_eq!(status, want, "{body} → {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    assert_eq!(device_serials(&app, &token).await, ["KEEP-1"]);
    app.stop().await;
}

#[tokio::test]
async fn a_snapshot_restores_the_state_it_was_taken_of() {
    let app = synced_app(&["SNAP-1"]).await;
    let token = app.user_token().await;
    create_group(&app, &token, "InSnapshot").await;
    let taken = app.admin.create_snapshot("before-import").await.unwrap();
    assert_eq!(taken["name"], "before-import");
    assert!(taken["createdDateTime"].as_str().unwrap().ends_with('Z'), "{taken}");

    // Change everything the snapshot holds, and add a tenant.
    app.admin.add_registrations(&app.tenant(), &[registration("SNAP-2")]).await.unwrap();
    app.admin.advance_clock(601.0).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    create_group(&app, &token, "After").await;
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.unwrap();
    assert_eq!(device_serials(&app, &token).await, ["SNAP-1", "SNAP-2"]);

    app.admin.restore_snapshot("before-import").await.unwrap();

    assert_eq!(device_serials(&app, &token).await, ["SNAP-1"]);
    assert_eq!(group_count(&app, &token).await, 1);
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.expect("fabrikam was not in the snapshot");
    // A snapshot outlives its restore, and can be restored again.
    app.admin.restore_snapshot("before-import").await.unwrap();
    let listed = app.admin.snapshots().await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&taken));
    let (status, one) = admin(&app, Method::GET, "/_dmsync/snapshots/before-import", Value::Null).await;
    assert_eq!((status, &one), (StatusCode::OK, &taken));

    // Taken twice under one name: 409. Deleted: gone, and then 404.
    let (status, _) = admin(&app, Method::POST, "/_dmsync/snapshots", json!({ "name": "before-import" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.admin.delete_snapshot("before-import").await.unwrap();
    assert!(app.admin.snapshots().await.unwrap().is_empty());
    assert_eq!(app.admin.delete_snapshot("before-import").await.unwrap_err().status(), Some(404));
    assert_eq!(app.admin.restore_snapshot("before-import").await.unwrap_err().status(), Some(404));
    app.stop().await;
}

#[tokio::test]
async fn snapshot_names_that_could_escape_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    for name in ["../escape", "a.b", "", "a b", "x".repeat(25).as_str(), "é"] {
        let (status, body) = admin(&app, Method::POST, "/_dmsync/snapshots", json!({ "name": name })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
    }
    for path in ["/_dmsync/snapshots/..%2F..%2Fetc/restore", "/_dmsync/snapshots/a.b/restore"] {
        let (status, _) = admin(&app, Method::POST, path, Value::Null).await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{path}: {status}");
    }
    let (status, _) = admin(&app, Method::POST, "/_dmsync/snapshots", json!({ "name": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(app.admin.snapshots().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_restore_while_requests_run_answers_every_request_with_the_old_or_the_new_state() {
    let app = synced_app(&["RUN-1", "RUN-2", "RUN-3"]).await;
    let token = app.user_token().await;
    app.admin.create_snapshot("three").await.unwrap();
    app.admin.reset(Some(&app.tenant())).await.unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/beta/deviceManagement/windowsAutopilotDeviceIdentities", app.base_url);
            let token = token.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..30 {
                    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                    let body: Value = r.json().await.unwrap();
                    seen.push(body["value"].as_array().unwrap().len());
                }
                seen
            })
        })
        .collect();
    for _ in 0..3 {
        app.admin.restore_snapshot("three").await.unwrap();
        app.admin.reset(Some(&app.tenant())).await.unwrap();
    }
    app.admin.restore_snapshot("three").await.unwrap();
    for reader in readers {
        for count in reader.await.unwrap() {
            assert!(count == 0 || count == 3, "a page showed {count} devices, between two states");
        }
    }
    assert_eq!(device_serials(&app, &token).await, ["RUN-1", "RUN-2", "RUN-3"]);
    app.stop().await;
}

/// The control plane's admin bodies go through the bounded JSON reader: deep nesting and a body
/// over the limit are Graph-shaped 400 and 413, and the server keeps answering.
#[tokio::test]
async fn control_plane_bodies_refuse_deep_nesting_and_oversized_input() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(8 * 1024 * 1024));
    for (method, path) in [
        (Method::POST, "/_dmsync/reset"),
        (Method::POST, "/_dmsync/snapshots"),
        (Method::POST, "/_dmsync/faults"),
        (Method::PUT, "/_dmsync/throttling"),
        (Method::POST, "/_dmsync/requests/count"),
    ] {
        for (body, want) in [(&deep, StatusCode::BAD_REQUEST), (&huge, StatusCode::PAYLOAD_TOO_LARGE)] {
            let r = app
                .raw(method.clone(), path, Some("dmsync-dev-admin"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), want, "{method} {path}");
            let error: Value = r.json().await.unwrap();
            assert!(error["error"]["code"].is_string(), "{method} {path}: {error}");
        }
    }
    assert!(app.admin.snapshots().await.unwrap().is_empty());
    let (status, _) = admin(&app, Method::GET, "/_dmsync/faults", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "still up");
    app.stop().await;
}
