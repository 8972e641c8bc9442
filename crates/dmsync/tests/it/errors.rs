//! Every error is Graph-shaped JSON with the request ids, whatever produced it.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// Checks the envelope and returns the body.
async fn graph_error(r: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let request_id = r.headers()["request-id"].to_str().unwrap().to_owned();
    let client_request_id = r.headers()["client-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.expect("a JSON body, never empty or HTML");
    assert_eq!(body["error"]["code"], code, "{body}");
    let inner = &body["error"]["innerError"];
    assert_eq!(inner["request-id"], request_id.as_str());
    assert_eq!(inner["client-request-id"], client_request_id.as_str());
    let date = inner["date"].as_str().unwrap();
    assert_eq!(date.len(), 19, "yyyy-MM-ddTHH:mm:ss with no zone or fraction: {date}");
    body
}

#[tokio::test]
async fn unknown_segments_and_versions_are_400_with_graphs_message() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let body = graph_error(
        app.raw(Method::GET, "/v1.0/deviceManagement/windowsAutopilotSettings", Some(&token)).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    assert_eq!(body["error"]["message"], "Resource not found for the segment 'windowsAutopilotSettings'.");
    let body = graph_error(
        app.raw(Method::GET, "/beta/deviceManagement/gizmos", Some(&token)).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    assert_eq!(body["error"]["message"], "Resource not found for the segment 'gizmos'.");
    let body =
        graph_error(app.raw(Method::GET, "/v9/me", None).send().await.unwrap(), StatusCode::BAD_REQUEST, "BadRequest")
            .await;
    assert_eq!(body["error"]["message"], "Invalid version: v9");
    app.stop().await;
}

#[tokio::test]
async fn segments_match_case_insensitively_and_tolerate_a_trailing_slash() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    for path in [
        "/BETA/DEVICEMANAGEMENT/WindowsAutopilotSettings",
        "/beta/deviceManagement/windowsAutopilotSettings/",
        "/beta/deviceManagement/windowsautopilotdeviceidentities/?$top=1",
        "/V1.0/deviceManagement/windowsAutopilotDeviceIdentities",
    ] {
        let r = app.raw(Method::GET, path, Some(&token)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    app.stop().await;
}

/// `msgraph-beta-sdk` 1.66.0 with its default base URL sends `/beta//deviceManagement/...`, which
/// Graph accepts; so does every route here, the identity provider's included.
#[tokio::test]
async fn empty_path_segments_are_ignored_on_every_route() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let r = app
        .raw(Method::POST, "/beta//deviceManagement/windowsAutopilotSettings/sync", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let body = app
        .get_json("/beta//deviceManagement//windowsAutopilotDeviceIdentities/?$top=1&$count=true", Some(&token))
        .await;
    assert_eq!(body["@odata.count"], 0, "{body}");
    let r = app
        .raw(Method::POST, &format!("/{}//oauth2/v2.0/token", app.tenant()), None)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &dmsync_server::bootstrap::DEV_CLIENT_ID.to_string()),
            ("client_secret", dmsync_server::bootstrap::DEV_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // An unknown segment is still named, not the empty one before it.
    let r = app.raw(Method::GET, "/beta//deviceManagement//gizmos", Some(&token)).send().await.unwrap();
    let body = graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert_eq!(body["error"]["message"], "Resource not found for the segment 'gizmos'.");
    app.stop().await;
}

#[tokio::test]
async fn wrong_method_malformed_json_and_oversized_bodies() {
    let app = spawn_app_with(|c| c.max_body_bytes = 64 * 1024).await;
    let token = app.user_token().await;
    let settings = "/beta/deviceManagement/windowsAutopilotSettings";

    let r = app.raw(Method::DELETE, settings, Some(&token)).send().await.unwrap();
    let body = graph_error(r, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("DELETE"));
    let r = app.raw(Method::GET, &format!("{settings}/sync"), Some(&token)).send().await.unwrap();
    graph_error(r, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed").await;

    let r = app
        .raw(Method::PATCH, settings, Some(&token))
        .header("content-type", "application/json")
        .body("{\"syncStatus\":")
        .send()
        .await
        .unwrap();
    let body = graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Unable to read JSON request payload."));

    let big = format!("{{\"id\":\"{}\"}}", "x".repeat(128 * 1024));
    let r = app
        .raw(Method::PATCH, settings, Some(&token))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    graph_error(r, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge").await;
    app.stop().await;
}

#[tokio::test]
async fn client_request_id_is_echoed_and_request_id_is_fresh() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let mine = "5566d3bb-ddd9-44bc-9a39-912a1a9c7c4d";
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token))
        .header("client-request-id", mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["client-request-id"], mine);
    assert_ne!(r.headers()["request-id"], mine);
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/nothing", None)
        .header("client-request-id", mine)
        .send()
        .await
        .unwrap();
    let body = graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert_eq!(body["error"]["innerError"]["client-request-id"], mine);
    // Without one, the client-request-id is the request-id.
    let r = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).send().await.unwrap();
    assert_eq!(r.headers()["client-request-id"], r.headers()["request-id"]);
    app.stop().await;
}

#[tokio::test]
async fn intune_errors_carry_json_in_the_message() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    // Quoted as the client sent it, not as dmsync canonicalised it.
    let path = "/V1.0/deviceManagement/WindowsAutopilotDeviceIdentities/6f1c5b1e-0000-4000-8000-000000000000?x=1";
    let r = app.raw(Method::GET, path, Some(&token)).send().await.unwrap();
    let body = graph_error(r, StatusCode::NOT_FOUND, "ResourceNotFound").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("{\r\n  \"_version\": 3,"), "{message}");
    let inner: Value = serde_json::from_str(message).unwrap();
    for key in ["_version", "Message", "CustomApiErrorPhrase", "RetryAfter", "ErrorSourceService", "HttpHeaders"] {
        assert!(inner.get(key).is_some(), "{key} in {inner}");
    }
    let text = inner["Message"].as_str().unwrap();
    assert!(text.contains(&format!("Activity ID: {}", body["error"]["innerError"]["request-id"].as_str().unwrap())));
    assert!(text.ends_with(&format!("Url: {}{path}", app.base_url)), "{text}");
    // A key that is not a GUID is simply not found.
    let r = app
        .raw(Method::GET, "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/not-a-guid", Some(&token))
        .send()
        .await
        .unwrap();
    graph_error(r, StatusCode::NOT_FOUND, "ResourceNotFound").await;
    app.stop().await;
}

#[tokio::test]
async fn unsupported_query_options_are_refused_clearly() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings?$top=five", Some(&token))
        .send()
        .await
        .unwrap();
    graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings?$orderby=id", Some(&token))
        .send()
        .await
        .unwrap();
    let body = graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("$orderby"));
    // An unknown property in $select is refused, as Graph does; `*` is everything.
    for (path, type_name) in [
        ("/beta/deviceManagement/windowsAutopilotSettings?$select=nope", "windowsAutopilotSettings"),
        (
            "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?$select=serialNumber,deviceFriendlyName",
            "windowsAutopilotDeviceIdentity",
        ),
        (
            "/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities?$select=nope",
            "importedWindowsAutopilotDeviceIdentity",
        ),
    ] {
        let r = app.raw(Method::GET, path, Some(&token)).send().await.unwrap();
        let body = graph_error(r, StatusCode::BAD_REQUEST, "BadRequest").await;
        assert!(
            body["error"]["message"].as_str().unwrap().ends_with(&format!("on type 'microsoft.graph.{type_name}'.")),
            "{body}"
        );
    }
    let all = app.get_json("/beta/deviceManagement/windowsAutopilotSettings?$select=*", Some(&token)).await;
    assert!(all.get("syncStatus").is_some());
    app.stop().await;
}

/// A NUL character (U+0000) in a body or a query is the client's: on PostgreSQL, whose `text`
/// cannot hold it, it is a Graph 400 rather than a 500, and nothing is written; on SQLite it is
/// kept as sent.
#[tokio::test]
async fn a_nul_character_is_never_a_server_error() {
    let app = synced_app(&["NUL-1"]).await;
    let token = app.user_token().await;
    let body = serde_json::json!({
        "displayName": "nul\u{0}group", "mailEnabled": false, "mailNickname": "nulgroup", "securityEnabled": true,
    });
    let created = app.raw(Method::POST, "/v1.0/groups", Some(&token)).json(&body).send().await.unwrap();
    let filter = "/v1.0/groups?$filter=displayName eq 'nul%00group'";
    let found = app.raw(Method::GET, filter, Some(&token)).send().await.unwrap();
    let identities = "/beta/deviceManagement/windowsAutopilotDeviceIdentities?$filter=groupTag eq 'a%00b'";
    let devices = app.raw(Method::GET, identities, Some(&token)).send().await.unwrap();
    if backend_is_postgres() {
        let refused = graph_error(created, StatusCode::BAD_REQUEST, "BadRequest").await;
        assert!(refused["error"]["message"].as_str().unwrap().contains("U+0000"), "{refused}");
        graph_error(found, StatusCode::BAD_REQUEST, "BadRequest").await;
        graph_error(devices, StatusCode::BAD_REQUEST, "BadRequest").await;
        let all = app.get_json("/v1.0/groups", Some(&token)).await;
        assert_eq!(all["value"], serde_json::json!([]), "nothing was written");
    } else {
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(found.status(), StatusCode::OK);
        assert_eq!(devices.status(), StatusCode::OK);
    }
    app.get_json("/v1.0/groups", Some(&token)).await;
    app.stop().await;
}
