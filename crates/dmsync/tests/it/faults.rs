//! Faults on demand (`/_dmsync/faults`): injected statuses in Graph's and Intune's shapes,
//! delays, dropped connections, seeded probabilities, validation, and the domain faults the
//! state machines consume.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";
const FAULTS: &str = "/_dmsync/faults";

pub(crate) async fn add_rule(app: &TestApp, rule: Value) -> String {
    let (status, body) = admin(app, Method::POST, FAULTS, rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("an id").to_owned()
}

async fn rules(app: &TestApp) -> Vec<Value> {
    let (status, body) = admin(app, Method::GET, FAULTS, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    body["value"].as_array().unwrap().clone()
}

/// The rule as listed, once its `fired` is `fired`: a job counts a domain fault just after its
/// transaction commits, so a client can see the job's result a moment before.
pub(crate) async fn wait_for_fired(app: &TestApp, id: &str, fired: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rule = rules(app).await.into_iter().find(|r| r["id"] == id).expect("the rule is listed");
        if rule["fired"] == fired {
            return rule;
        }
        assert!(tokio::time::Instant::now() < deadline, "never fired {fired} times: {rule}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_issue_example_answers_503_twice_then_200_naming_the_rule() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let id = add_rule(
        &app,
        json!({"match":{"method":"GET","path":"/beta/deviceManagement/windowsAutopilotSettings"},
               "effect":{"status":503},"times":2}),
    )
    .await;
    for _ in 0..2 {
        // Graph compares paths ignoring case, and so does the rule.
        let r =
            app.raw(Method::GET, "/BETA/devicemanagement/windowsautopilotsettings", Some(&token)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["x-dmsync-fault"], id.as_str());
        assert!(r.headers().contains_key("request-id"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "ServiceUnavailable");
        assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
    }
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!r.headers().contains_key("x-dmsync-fault"));
    let listed = rules(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["id"].as_str(), &listed[0]["times"], &listed[0]["fired"]),
        (Some(id.as_str()), &json!(0), &json!(2))
    );
    assert_eq!(listed[0]["match"]["method"], "GET");
    app.stop().await;
}

#[tokio::test]
async fn a_seeded_probability_reproduces_its_run() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let rule = json!({"match":{"pathPattern":"/beta/deviceManagement/*"},"effect":{"status":500},
                      "probability":0.5,"seed":1234});
    let mut runs = Vec::new();
    for _ in 0..2 {
        let id = add_rule(&app, rule.clone()).await;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap().status().as_u16());
        }
        let (status, _) = admin(&app, Method::DELETE, &format!("{FAULTS}/{id}"), Value::Null).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "the same seed draws the same faults");
    assert!(runs[0].contains(&500) && runs[0].contains(&200), "{:?}", runs[0]);
    app.stop().await;
}

#[tokio::test]
async fn a_delay_alone_lets_the_request_through_late() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let id =
        add_rule(&app, json!({"match":{"operation":"getWindowsAutopilotSettings"},"effect":{"delayMs":400}})).await;
    let started = Instant::now();
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-dmsync-fault"], id.as_str());
    // The operation is the route's: the sync is another one.
    let started = Instant::now();
    let (status, _) = admin(&app, Method::GET, FAULTS, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(400), "the admin API is never faulted");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let id = add_rule(&app, json!({"match":{"method":"GET","path":SETTINGS},"effect":{"drop":true},"times":1})).await;
    let error = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.expect_err("no answer");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    // Only the next one: the connection the client opens next is answered.
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rules(&app).await[0]["fired"], 1, "{id}");
    app.stop().await;
}

#[tokio::test]
async fn an_intune_body_carries_the_code_message_and_retry_after() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let tenant = app.tenant();
    add_rule(
        &app,
        json!({"match":{"tenantId":tenant,"operation":"syncWindowsAutopilotSettings"},
               "effect":{"status":429,"body":"intune","code":"TooManyRequests","message":"Slow down","retryAfter":7}}),
    )
    .await;
    let r = app
        .raw(Method::POST, "/beta/deviceManagement/windowsAutopilotSettings/microsoft.graph.sync", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert!(intune_message(&body).starts_with("Slow down - Operation ID"), "{body}");
    // Another tenant's requests do not match.
    let (status, _) = admin(&app, Method::DELETE, FAULTS, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let other = uuid::Uuid::new_v4();
    add_rule(&app, json!({"match":{"tenantId":other},"effect":{"status":500}})).await;
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn malformed_rules_are_400s_that_add_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({"effect":{"status":200}}), "not a 4xx or 5xx"),
        (json!({"match":{"pathPattern":"/beta/device*"},"effect":{"status":503}}), "whole segment"),
        (json!({"match":{"pathPattern":"/beta/(a+)+$"},"effect":{"status":503}}), "regular expression"),
        (json!({"effect":{"explode":true}}), "unknown field"),
        (json!({"effect":{"domain":"meteorStrike"}}), "unknown variant"),
        (json!({"effect":{"status":503},"probability":1.5}), "between 0 and 1"),
        (json!({"effect":{"status":503},"times":0}), "times"),
        (json!({"effect":{"delayMs":600000}}), "delayMs"),
        (json!({"effect":{"status":503,"drop":true}}), "not both"),
        (json!({"effect":{}}), "does nothing"),
        (json!({"match":{"operation":"noSuchOperation"},"effect":{"status":503}}), "not one dmsync serves"),
        (json!({"match":{"path":"/beta/x"},"effect":{"domain":"autopilotSyncFailed"}}), "only tenantId"),
        (json!({"effect":{"domain":"importFailed","serialNumber":"S1"}}), "deviceErrorCode"),
        (json!({"effect":{"domain":"profileAssignmentFailed","deviceErrorCode":808}}), "takes no deviceErrorCode"),
        (
            json!({"effect":{"domain":"profileAssignmentFailed","connectorId":"6e0c8c55-4a5e-4cd4-9ddb-6c1d1d0c5a0e"}}),
            "connectorId belongs to the connectorDisconnected",
        ),
        (json!({"effect":{"domain":"profileAssignmentFailed","serialNumber":"  "}}), "serialNumber must be"),
        (json!({"effect":{"domain":"profileAssignmentFailed","serialNumber":"S".repeat(129)}}), "serialNumber must be"),
        (json!({"effect":{"domain":"profileAssignmentFailed","delayMs":5}}), "takes no status"),
        (json!({"effect":{"domain":"profileAssignmentFailed","reason":"x"}}), "unknown field"),
        (json!({"match":{"method":"GET"},"effect":{"domain":"profileAssignmentFailed"}}), "only tenantId"),
    ];
    for (rule, says) in cases {
        let (status, body) = admin(&app, Method::POST, FAULTS, rule.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rule}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{rule}: {message}");
    }
    assert!(rules(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn rules_are_deleted_one_by_one_or_all_at_once() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let first = add_rule(&app, json!({"match":{"pathPattern":"/beta/**"},"effect":{"status":502}})).await;
    add_rule(&app, json!({"effect":{"status":504}})).await;
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "the first rule added wins");
    let (status, _) = admin(&app, Method::DELETE, &format!("{FAULTS}/{first}"), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin(&app, Method::DELETE, &format!("{FAULTS}/{first}"), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&app, Method::DELETE, &format!("{FAULTS}/not-an-id"), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = admin(&app, Method::DELETE, FAULTS, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rules(&app).await.is_empty());
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn the_next_autopilot_sync_fails_once() {
    let app = spawn_app_with(|c| {
        c.sync_duration = time::Duration::ZERO;
        c.sync_cooldown = time::Duration::ZERO;
    })
    .await;
    app.admin.add_registrations(&app.tenant(), &[registration("FAULT-1")]).await.unwrap();
    let client = app.user_client().await;
    add_rule(&app, json!({"match":{"tenantId":app.tenant()},"effect":{"domain":"autopilotSyncFailed"},"times":1}))
        .await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "failed", Duration::from_secs(10)).await;
    assert_eq!(rules(&app).await[0]["fired"], 1);
    // The failed sync brought no device; the next one runs as usual.
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let devices =
        app.get_json("/beta/deviceManagement/windowsAutopilotDeviceIdentities", Some(&app.user_token().await)).await;
    assert_eq!(devices["value"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_next_import_of_a_serial_ends_in_the_asked_error() {
    let app = spawn_app_with(|c| c.import_delay = time::Duration::ZERO).await;
    let client = app.user_client().await;
    let token = app.user_token().await;
    let rule = json!({"match":{"tenantId":app.tenant()},
                      "effect":{"domain":"importFailed","serialNumber":"BROKEN-1","deviceErrorCode":808},"times":1});
    let id = add_rule(&app, rule).await;
    let import = |serial: &str| dmsync_client::NewImportedDevice {
        serial_number: serial.into(),
        hardware_identifier: hardware_hash(serial),
        ..Default::default()
    };
    let state_of = async |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = app
                .get_json(
                    &format!("/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities/{id}"),
                    Some(&token),
                )
                .await;
            if body["state"]["deviceImportStatus"] != "unknown" {
                return body["state"].clone();
            }
            assert!(Instant::now() < deadline, "the import was never processed: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // An import of another serial leaves the rule waiting.
    let other = client
        .import_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, &[import("FINE-1")])
        .await
        .unwrap();
    assert_eq!(state_of(&other[0].id).await["deviceImportStatus"], "complete");
    assert_eq!(rules(&app).await[0]["fired"], 0);
    let broken = client
        .import_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, &[import("BROKEN-1")])
        .await
        .unwrap();
    let state = state_of(&broken[0].id).await;
    assert_eq!((&state["deviceImportStatus"], &state["deviceErrorCode"]), (&json!("error"), &json!(808)), "{state}");
    assert_eq!(state["deviceErrorName"], "ZtdDeviceAssignedToOtherTenant");
    assert_eq!(wait_for_fired(&app, &id, 1).await["times"], 0);
    // Consumed: the next import of the serial goes through.
    let again = client
        .import_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, &[import("BROKEN-1")])
        .await
        .unwrap();
    assert_eq!(state_of(&again[0].id).await["deviceImportStatus"], "complete");
    app.stop().await;
}

#[tokio::test]
async fn the_next_connector_sync_ends_disconnected() {
    let app = spawn_app().await;
    let token = app.admin.mint_token(&app.tenant(), "delegated", &[RW], "work", None).await.unwrap();
    let r = app
        .raw(Method::POST, "/v1.0/deviceManagement/exchangeConnectors", Some(&token))
        .json(&json!({"primarySmtpAddress": "svc@contoso.com", "serverName": "ex01.contoso.com",
                      "exchangeConnectorType": "onPremises"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.csv");
    std::fs::write(
        &path,
        "\"DeviceId\",\"DeviceAccessState\",\"WhenChanged\"\n\"A\",\"Allowed\",\"11/21/2026 8:00:00 AM\"\n",
    )
    .unwrap();
    let (status, _) = admin(
        &app,
        Method::PUT,
        &format!("/_dmsync/tenants/{}/exchangeConnectors/{id}/source", app.tenant()),
        json!({"kind": "file", "path": path.display().to_string()}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    add_rule(&app, json!({"effect":{"domain":"connectorDisconnected","connectorId":id},"times":1})).await;
    let wait_for = async |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = app.get_json(&format!("/v1.0/deviceManagement/exchangeConnectors/{id}"), Some(&token)).await;
            if c["status"] == want {
                return c;
            }
            assert!(Instant::now() < deadline, "the connector never became {want}: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let sync = async || {
        let r = app
            .raw(Method::POST, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}/sync"), Some(&token))
            .json(&json!({"syncType": "fullSync"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    };
    sync().await;
    wait_for("disconnected").await;
    assert_eq!(rules(&app).await[0]["fired"], 1);
    // The valid source syncs again once the rule is spent.
    sync().await;
    wait_for("connected").await;
    app.stop().await;
}
