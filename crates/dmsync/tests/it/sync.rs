//! The Autopilot sync state machine: 204, 409 while in progress, 429 inside the cooldown, 204
//! again after the cooldown, and exactly one winner under concurrency.

use std::time::Duration;

use dmsync_graph::{GraphDateTime, IntuneErrorMessage};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

const SYNC: &str = "/beta/deviceManagement/windowsAutopilotSettings/sync";

fn intune_message(body: &Value) -> IntuneErrorMessage {
    IntuneErrorMessage::parse(body["error"]["message"].as_str().unwrap()).expect("Intune JSON-in-message")
}

#[tokio::test]
async fn settings_start_unknown_with_minimum_timestamps() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let r = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotSettings/$entity"
    );
    assert_eq!(body["syncStatus"], "unknown");
    assert_eq!(body["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(body["lastManualSyncTriggerDateTime"], "0001-01-01T00:00:00Z");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    // The id is stable.
    let again: Value = app
        .user_client()
        .await
        .get_windows_autopilot_settings()
        .await
        .map(|s| serde_json::to_value(s).unwrap())
        .unwrap();
    assert_eq!(again["id"], id);
    // Keys come in alphabetical order, as Intune sends them.
    let text = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let order: Vec<usize> = ["\"id\"", "\"lastManualSyncTriggerDateTime\"", "\"lastSyncDateTime\"", "\"syncStatus\""]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn sync_runs_204_then_409_then_429_then_204_after_the_cooldown() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::seconds(2)).await;
    let client = app.user_client().await;
    let before = time::OffsetDateTime::now_utc();

    client.sync_windows_autopilot_settings().await.expect("first sync is accepted");
    let settings = serde_json::to_value(client.get_windows_autopilot_settings().await.unwrap()).unwrap();
    assert_eq!(settings["syncStatus"], "inProgress");
    let trigger = GraphDateTime::parse(settings["lastManualSyncTriggerDateTime"].as_str().unwrap()).unwrap().0.unwrap();
    assert!(trigger >= before - time::Duration::seconds(1));
    assert_eq!(settings["lastSyncDateTime"], "0001-01-01T00:00:00Z");

    let conflict = client.sync_windows_autopilot_settings().await.unwrap_err();
    assert_eq!((conflict.status(), conflict.graph_code()), (Some(409), Some("Conflict")));

    let done = app.wait_for_sync_status(&client, "completed", Duration::from_secs(15)).await;
    let last_sync = GraphDateTime::parse(done["lastSyncDateTime"].as_str().unwrap()).unwrap().0.unwrap();
    assert!(last_sync >= trigger + time::Duration::seconds(2), "the sync lasted its configured duration");

    let r = app.raw(Method::POST, SYNC, Some(&app.user_token().await)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none(), "real Intune sends no Retry-After");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(intune_message(&body).retry_after, None);

    app.admin.advance_clock(601.0).await.unwrap();
    let token = app.user_token().await;
    client.with_token(token).sync_windows_autopilot_settings().await.expect("sync allowed after the cooldown");
    app.stop().await;
}

#[tokio::test]
async fn retry_after_option_sends_the_remaining_seconds() {
    let app = spawn_app_with(|c| {
        c.sync_retry_after = true;
        c.sync_duration = time::Duration::ZERO;
    })
    .await;
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    app.admin.advance_clock(100.0).await.unwrap();
    let err = client.sync_windows_autopilot_settings().await.unwrap_err();
    let dmsync_client::ClientError::Graph { status, error, retry_after, .. } = err else { panic!("{err:?}") };
    assert_eq!(status, 429);
    let seconds: u64 = retry_after.expect("Retry-After header").parse().expect("integer seconds");
    assert!((495..=500).contains(&seconds), "about 500 s remain, got {seconds}");
    let inner = IntuneErrorMessage::parse(&error.message).unwrap();
    assert_eq!(inner.retry_after, Some(seconds));
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_syncs_start_exactly_one() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::seconds(5)).await;
    let token = app.user_token().await;
    let requests = (0..100).map(|_| {
        let request = app.raw(Method::POST, SYNC, Some(&token));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let accepted = statuses.iter().filter(|s| **s == 204).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert_eq!(conflicts, 99, "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn action_accepts_every_empty_body_form_and_the_namespaced_name() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let token = app.user_token().await;
    let client = app.graph.with_token(token.clone());
    type Form = Box<dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder>;
    let forms: Vec<(&str, Form)> = vec![
        ("no body headers", Box::new(|r| r)),
        ("Content-Length: 0", Box::new(|r| r.header("content-length", "0").body(""))),
        ("JSON type, empty", Box::new(|r| r.header("content-type", "application/json").body(""))),
        ("{}", Box::new(|r| r.header("content-type", "application/json").body("{}"))),
    ];
    for (i, (name, form)) in forms.iter().enumerate() {
        let path =
            if i % 2 == 0 { SYNC } else { "/beta/deviceManagement/windowsAutopilotSettings/microsoft.graph.sync" };
        let r = form(app.raw(Method::POST, path, Some(&token))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{name}");
        app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
        app.admin.advance_clock(601.0).await.unwrap();
    }
    // Malformed JSON is not "no body".
    let r = app
        .raw(Method::POST, SYNC, Some(&app.user_token().await))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn patch_validates_and_leaves_server_owned_fields_alone() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let path = "/beta/deviceManagement/windowsAutopilotSettings";
    let r = app
        .raw(Method::PATCH, path, Some(&token))
        .json(&serde_json::json!({"syncStatus": "completed", "lastSyncDateTime": "2030-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["syncStatus"], "unknown", "server-owned fields ignore client writes");
    assert_eq!(body["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    // The Python SDK sends {} for an empty patch.
    let r = app.raw(Method::PATCH, path, Some(&token)).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bad values and unknown properties are 400.
    for bad in [r#"{"syncStatus":"sideways"}"#, r#"{"lastSyncDateTime":"yesterday"}"#, r#"{"color":"blue"}"#] {
        let r = app
            .raw(Method::PATCH, path, Some(&token))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    app.stop().await;
}

const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";

/// The status a GET shows moves with every write, even when the GET before it was answered from
/// memory: `inProgress` as soon as the trigger answered 204, `completed` as soon as the sync
/// ended.
#[tokio::test]
async fn a_get_shows_the_sync_started_and_then_completed_at_once() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::seconds(60)).await;
    let token = app.user_token().await;
    for _ in 0..3 {
        assert_eq!(app.get_json(SETTINGS, Some(&token)).await["syncStatus"], "unknown");
    }
    let r = app.raw(Method::POST, SYNC, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let started = app.get_json(SETTINGS, Some(&token)).await;
    assert_eq!(started["syncStatus"], "inProgress");
    assert_ne!(started["lastManualSyncTriggerDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(started["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(app.get_json(SETTINGS, Some(&token)).await["syncStatus"], "inProgress");

    // The sync lasts 60 s on the Clock; the job records `completed` within 50 ms of the advance.
    app.admin.advance_clock(61.0).await.unwrap();
    let client = app.graph.with_token(app.user_token().await);
    let done = app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    assert_ne!(done["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(done["lastManualSyncTriggerDateTime"], started["lastManualSyncTriggerDateTime"]);
    assert_eq!(done["id"], started["id"]);
    app.stop().await;
}

/// A sync in progress is a 409 whatever the cooldown says, also when it runs longer than the
/// cooldown; a 429 is only ever answered when no sync runs.
#[tokio::test]
async fn a_sync_in_progress_is_a_409_and_never_a_429() {
    let app = spawn_app_with(|c| {
        c.sync_duration = time::Duration::seconds(3600);
        c.sync_retry_after = true;
    })
    .await;
    let token = app.user_token().await;
    assert_eq!(app.raw(Method::POST, SYNC, Some(&token)).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let statuses = |token: String| {
        let requests = (0..20).map(|i| {
            let request = if i % 2 == 0 {
                app.raw(Method::POST, SYNC, Some(&token))
            } else {
                app.raw(Method::GET, SETTINGS, Some(&token))
            };
            async move { request.send().await.unwrap().status().as_u16() }
        });
        futures::future::join_all(requests)
    };
    // Inside the cooldown, and then past it while the sync still runs.
    for advance in [100.0, 600.0] {
        app.admin.advance_clock(advance).await.unwrap();
        let token = app.user_token().await;
        let seen = statuses(token).await;
        for (i, status) in seen.iter().enumerate() {
            assert_eq!(*status, if i % 2 == 0 { 409 } else { 200 }, "after advancing {advance} s: {seen:?}");
        }
    }
    // Once it completed (after 3600 s, long past the cooldown), a sync starts again.
    app.admin.advance_clock(2901.0).await.unwrap();
    let client = app.graph.with_token(app.user_token().await);
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    client.sync_windows_autopilot_settings().await.expect("a sync after the last one completed");
    app.stop().await;
}

/// A completed import restarts the cooldown, and the next 429 says so at once, though the 429
/// before the import was answered from the state then.
#[tokio::test]
async fn a_completed_import_restarts_the_cooldown_the_next_429_reports() {
    let app = spawn_app_with(|c| {
        c.sync_duration = time::Duration::ZERO;
        c.sync_retry_after = true;
        c.import_delay = time::Duration::seconds(60);
    })
    .await;
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    app.admin.advance_clock(300.0).await.unwrap();
    let client = app.user_client().await;
    let retry_after = |err: dmsync_client::ClientError| -> u64 {
        let dmsync_client::ClientError::Graph { status: 429, retry_after: Some(seconds), .. } = err else {
            panic!("{err:?}")
        };
        seconds.parse().unwrap()
    };
    for _ in 0..3 {
        let seconds = retry_after(client.sync_windows_autopilot_settings().await.unwrap_err());
        assert!((295..=300).contains(&seconds), "about 300 s remain, got {seconds}");
    }

    let device = dmsync_client::NewImportedDevice {
        serial_number: "IMPORTED-1".into(),
        hardware_identifier: hardware_hash("IMPORTED-1"),
        ..Default::default()
    };
    let imported =
        client.import_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, &[device]).await.unwrap();
    let path = format!("/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities/{}", imported[0].id);
    app.admin.advance_clock(61.0).await.unwrap();
    let client = app.user_client().await;
    let token = app.user_token().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get_json(&path, Some(&token)).await["state"]["deviceImportStatus"] != "complete" {
        assert!(tokio::time::Instant::now() < deadline, "the import never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = retry_after(client.sync_windows_autopilot_settings().await.unwrap_err());
    assert!((595..=600).contains(&seconds), "the cooldown restarted at the import, got {seconds}");
    app.stop().await;
}
