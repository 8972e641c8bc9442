//! `POST /{version}/$batch`: each request in it runs as a direct call would, through the same
//! routing, token and permission checks and error bodies; a malformed batch is one 400.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn batch(app: &TestApp, version: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let r = app.raw(Method::POST, &format!("/{version}/$batch"), token).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.expect("a JSON body"))
}

fn answer<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["responses"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no {id}: {body}"))
}

#[tokio::test]
async fn each_request_answers_as_the_direct_call_would() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    app.admin.add_registrations(&app.tenant(), &[registration("B-1"), registration("B-2")]).await.unwrap();
    let token = app.user_token().await;
    let (status, body) = batch(
        &app,
        "beta",
        Some(&token),
        json!({"requests": [
            {"id": "sync", "method": "POST", "url": "/deviceManagement/windowsAutopilotSettings/sync"},
            {"id": "again", "method": "POST", "url": "deviceManagement/windowsAutopilotSettings/microsoft.graph.sync",
             "dependsOn": ["sync"]},
            {"id": "nope", "method": "GET", "url": "https://graph.microsoft.com/beta/deviceManagement/gizmos"},
            {"id": "patch", "method": "PATCH", "url": "/deviceManagement/windowsAutopilotSettings",
             "headers": {"Content-Type": "application/json"}, "body": {"syncStatus": "completed"}},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["responses"].as_array().unwrap().len(), 4);
    assert_eq!(answer(&body, "sync")["status"], 204);
    assert!(answer(&body, "sync").get("body").is_none(), "{body}");
    // The second sync ran after the first, and was refused as a direct one would be: Intune's
    // JSON-in-message body, with the URL as the client addressed it.
    let again = answer(&body, "again");
    assert!(again["status"] == 409 || again["status"] == 429, "{again}");
    let message = again["body"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"_version\": 3"), "{message}");
    assert!(message.contains(&format!("Url: {}/beta/deviceManagement/windowsAutopilotSettings/", app.base_url)));
    assert_eq!(again["headers"]["Content-Type"], "application/json");
    let nope = answer(&body, "nope");
    assert_eq!(nope["status"], 400);
    assert_eq!(nope["body"]["error"]["message"], "Resource not found for the segment 'gizmos'.");
    assert_eq!(answer(&body, "patch")["status"], 200, "{body}");

    // Pages keep their absolute nextLink, naming the host the batch was sent to.
    let client = app.user_client().await;
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let (_, body) = batch(
        &app,
        "v1.0",
        Some(&token),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/deviceManagement/windowsAutopilotDeviceIdentities?$top=1"}]}),
    )
    .await;
    let page = &answer(&body, "1")["body"];
    assert_eq!(
        page["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/windowsAutopilotDeviceIdentities"
    );
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?", app.base_url)));
    assert_eq!(app.get_json(&next[app.base_url.len()..], Some(&token)).await["value"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_dependency_is_424_and_stops_its_chain() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let (status, body) = batch(
        &app,
        "beta",
        Some(&token),
        json!({"requests": [
            {"id": "3", "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings", "dependsOn": ["2"]},
            {"id": "1", "method": "GET", "url": "/deviceManagement/gizmos"},
            {"id": "2", "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings", "dependsOn": ["1"]},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(&body, "1")["status"], 400);
    for id in ["2", "3"] {
        let failed = answer(&body, id);
        assert_eq!(failed["status"], 424, "{failed}");
        assert_eq!(failed["body"]["error"]["code"], "FailedDependency");
    }
    app.stop().await;
}

#[tokio::test]
async fn each_request_is_checked_for_its_own_permission() {
    let app = spawn_app().await;
    let read_only = app.admin.mint_token(&app.tenant(), "delegated", &[READ], "work", None).await.unwrap();
    let (status, body) = batch(
        &app,
        "beta",
        Some(&read_only),
        json!({"requests": [
            {"id": "read", "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings"},
            {"id": "write", "method": "POST", "url": "/deviceManagement/windowsAutopilotSettings/sync"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(&body, "read")["status"], 200);
    assert_eq!(answer(&body, "write")["status"], 403);
    // The batch itself needs a token.
    let (status, body) = batch(&app, "beta", None, json!({"requests": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    // A request cannot bring a token of its own, nor reach anything outside Graph's version.
    let (status, body) = batch(
        &app,
        "beta",
        Some(&read_only),
        json!({"requests": [
            {"id": "1", "method": "POST", "url": "/deviceManagement/windowsAutopilotSettings/sync",
             "headers": {"Authorization": format!("Bearer {}", app.user_token().await)}},
            {"id": "2", "method": "GET", "url": "/_dmsync/tenants"},
            {"id": "3", "method": "POST", "url": "/$batch", "headers": {"Content-Type": "application/json"},
             "body": {"requests": []}},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(&body, "1")["status"], 403);
    assert_eq!(answer(&body, "2")["status"], 400, "{body}");
    assert_eq!(answer(&body, "3")["status"], 400, "batches do not nest: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_batch_is_one_400() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let get = |id: &str| json!({"id": id, "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings"});
    let cases = [
        (json!({"requests": (0..21).map(|i| get(&i.to_string())).collect::<Vec<_>>()}), "exceeds the limit"),
        (json!({"requests": [get("a"), get("A")]}), "more than one request with the id"),
        (json!({"requests": [{"id": "1", "method": "GET", "url": "/x", "dependsOn": ["2"]}]}), "depends on '2'"),
        (json!({"requests": [{"id": "1", "method": "POST", "url": "/x", "body": {}}]}), "Content-Type"),
        (json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/x"}]}), "'v1.0'"),
        (json!({"requests": "no"}), "not valid"),
        (json!({}), "not valid"),
    ];
    for (body, says) in cases {
        let (status, answer) = batch(&app, "beta", Some(&token), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["code"], "BadRequest");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{says}: {answer}");
    }
    app.stop().await;
}

/// A batch is bounded like any body: over the size limit is 413, over-deep JSON (inside a
/// request's body too) is 400, and the server keeps serving.
#[tokio::test]
async fn oversized_and_deeply_nested_batches_are_refused() {
    let app = spawn_app_with(|c| c.max_body_bytes = 64 * 1024).await;
    let token = app.user_token().await;
    let big = json!({"requests": [{"id": "1", "method": "PATCH", "url": "/deviceManagement/windowsAutopilotSettings",
        "headers": {"Content-Type": "application/json"}, "body": {"id": "x".repeat(128 * 1024)}}]});
    let (status, body) = batch(&app, "beta", Some(&token), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let deep = format!(
        r#"{{"requests":[{{"id":"1","method":"POST","url":"/x","headers":{{"Content-Type":"application/json"}},"body":{}1{}}}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let r = app
        .raw(Method::POST, "/beta/$batch", Some(&token))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("levels deep"), "{body}");
    let (status, _) = batch(
        &app,
        "beta",
        Some(&token),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/deviceManagement/windowsAutopilotSettings"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
