//! The request sequences of the real Autopilot scripts (`../shared/spec/clients.md` §4),
//! replayed over raw HTTP with their quirks: string-built bodies with `@odata.type` and a
//! client-made `state`, `orderIdentifier`, a slash before the query string, unencoded quotes,
//! PascalCase actions and unquoted JSON keys.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const B: &str = "/beta/deviceManagement";

/// The body `Add-AutopilotImportedDevice` builds by string interpolation.
fn powershell_body(serial: &str, hash: &str, tag_property: &str, tag: &str, user: &str) -> String {
    format!(
        r##"{{ "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
    "{tag_property}": "{tag}",
    "serialNumber": "{serial}", "productKey": "", "hardwareIdentifier": "{hash}",
    "assignedUserPrincipalName": "{user}",
    "state": {{ "@odata.type": "microsoft.graph.importedWindowsAutopilotDeviceIdentityState",
               "deviceImportStatus": "pending", "deviceRegistrationId": "", "deviceErrorCode": 0, "deviceErrorName": "" }} }}"##
    )
}

async fn post_imported(app: &TestApp, token: &str, body: String) -> Value {
    let r = app
        .raw(Method::POST, &format!("{B}/importedWindowsAutopilotDeviceIdentities"), Some(token))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn import_app() -> TestApp {
    spawn_app_with(|c| {
        c.import_delay = time::Duration::seconds(60);
        c.sync_duration = time::Duration::ZERO;
        c.deletion_delay = time::Duration::seconds(60);
    })
    .await
}

/// Moves past the import delay and waits until the worker has processed what was due.
async fn let_imports_finish(app: &TestApp, token: &str, ids: &[String]) -> Vec<Value> {
    app.admin.advance_clock(61.0).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut states = Vec::new();
        for id in ids {
            states.push(app.get_json(&format!("{B}/importedWindowsAutopilotDeviceIdentities/{id}"), Some(token)).await);
        }
        if states.iter().all(|s| s["state"]["deviceImportStatus"] != "unknown") {
            return states;
        }
        assert!(tokio::time::Instant::now() < deadline, "imports never processed: {states:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Get-WindowsAutopilotInfo.ps1 -Online (3.10): POST each device, poll each import until it
/// leaves `unknown`, then read the device by `deviceRegistrationId`, then the -Assign check.
#[tokio::test]
async fn get_windows_autopilot_info_online_flow() {
    let app = import_app().await;
    let token = app.user_token().await;
    let mut ids = Vec::new();
    for serial in ["PF1GHXN3", "PF1GHXN4"] {
        let created =
            post_imported(&app, &token, powershell_body(serial, &hardware_hash(serial), "groupTag", "HYBRID", ""))
                .await;
        assert_eq!(created["state"]["deviceImportStatus"], "unknown", "scripts wait while unknown");
        assert_eq!(created["groupTag"], "HYBRID");
        assert_eq!(
            created["@odata.context"],
            "https://graph.microsoft.com/beta/$metadata#deviceManagement/importedWindowsAutopilotDeviceIdentities/$entity"
        );
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // While processing, the status stays unknown.
    let polled = app.get_json(&format!("{B}/importedWindowsAutopilotDeviceIdentities/{}", ids[0]), Some(&token)).await;
    assert_eq!(polled["state"]["deviceImportStatus"], "unknown");

    let states = let_imports_finish(&app, &token, &ids).await;
    for state in &states {
        assert_eq!(state["state"]["deviceImportStatus"], "complete");
        let registration = state["state"]["deviceRegistrationId"].as_str().unwrap();
        // The device is readable as soon as the import says complete: no 404.
        let device = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{registration}"), Some(&token)).await;
        assert_eq!(device["id"], registration);
        assert_eq!(device["serialNumber"], state["serialNumber"]);
        assert_eq!(device["groupTag"], "HYBRID");
        let expanded = app
            .get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{registration}?$expand=deploymentProfile,intendedDeploymentProfile"), Some(&token))
            .await;
        assert_eq!(expanded["deploymentProfileAssignmentStatus"], "notAssigned");
    }
    // As observed in real tenants, the completed import counts as a sync: a sync now is 429.
    let r = app.raw(Method::POST, &format!("{B}/windowsAutopilotSettings/sync"), Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// Import-AutopilotCSV: POST per row (older module: `orderIdentifier`), poll the list every
/// 15 s until nothing is `unknown`, print each status, then DELETE every listed identity.
#[tokio::test]
async fn import_autopilot_csv_flow() {
    let app = import_app().await;
    let token = app.user_token().await;
    app.admin.create_tenant("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "other.onmicrosoft.com").await.unwrap();
    app.admin.add_registrations("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", &[registration("ELSEWHERE")]).await.unwrap();
    let rows = [
        ("CSV-1", hardware_hash("CSV-1")),
        ("CSV-2", hardware_hash("CSV-1")),     // same hash as CSV-1: already assigned
        ("CSV-3", hardware_hash("ELSEWHERE")), // registered in another tenant
        ("CSV-4", "AAE=".to_owned()),          // two bytes: not a hardware hash
    ];
    for (serial, hash) in &rows {
        post_imported(
            &app,
            &token,
            powershell_body(serial, hash, "orderIdentifier", "Kiosk", "user@contoso.onmicrosoft.com"),
        )
        .await;
    }
    let list_path = format!("{B}/importedWindowsAutopilotDeviceIdentities");
    let list = app.get_json(&list_path, Some(&token)).await;
    let unknown =
        list["value"].as_array().unwrap().iter().filter(|d| d["state"]["deviceImportStatus"] == "unknown").count();
    assert_eq!(unknown, 4);
    let ids: Vec<String> =
        list["value"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    let_imports_finish(&app, &token, &ids).await;

    let list = app.get_json(&list_path, Some(&token)).await;
    let mut outcome: Vec<(String, String, i64, String)> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["serialNumber"].as_str().unwrap().to_owned(),
                d["state"]["deviceImportStatus"].as_str().unwrap().to_owned(),
                d["state"]["deviceErrorCode"].as_i64().unwrap(),
                d["state"]["deviceErrorName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    outcome.sort();
    let expected = [
        ("CSV-1", "complete", 0, ""),
        ("CSV-2", "error", 806, "ZtdDeviceAlreadyAssigned"),
        ("CSV-3", "error", 808, "ZtdDeviceAssignedToOtherTenant"),
        ("CSV-4", "error", 807, "ZtdDeviceBadHardwareHash"),
    ];
    let expected: Vec<(String, String, i64, String)> =
        expected.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), *c, d.to_string())).collect();
    assert_eq!(outcome, expected);
    assert!(list["value"].as_array().unwrap().iter().all(|d| d["groupTag"] == "Kiosk"), "orderIdentifier is groupTag");

    for id in &ids {
        let r = app.raw(Method::DELETE, &format!("{list_path}/{id}"), Some(&token)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert!(app.get_json(&list_path, Some(&token)).await["value"].as_array().unwrap().is_empty());
    app.stop().await;
}

/// get-windowsautopilotinfocommunity.ps1 -Online: list all devices, import the missing one,
/// poll with a filtered list (slash before `?`, quotes not encoded), then delete the imported
/// identity and sync, waiting out the 429 as the script does (here with a clock advance).
#[tokio::test]
async fn community_script_flow() {
    let app = import_app().await;
    let token = app.user_token().await;
    let all = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities"), Some(&token)).await;
    assert!(all["value"].as_array().unwrap().is_empty());
    post_imported(&app, &token, powershell_body("COMM 01", &hardware_hash("COMM 01"), "groupTag", "G", "")).await;
    post_imported(&app, &token, powershell_body("OTHER-9", &hardware_hash("OTHER-9"), "groupTag", "G", "")).await;
    app.admin.advance_clock(61.0).await.unwrap();

    // `Get-AutopilotImportedDevice -serial`: a slash before '?' and the serial not URL-encoded
    // (reqwest encodes the space, as Invoke-MgGraphRequest's Uri class does).
    let url = format!(
        "{}{B}/importedWindowsAutopilotDeviceIdentities/?$filter=contains(serialNumber,'COMM 01')",
        app.base_url
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let v: Value = app.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let items = v["value"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{v}");
        if items[0]["state"]["deviceImportStatus"] != "unknown" {
            break items[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record["state"]["deviceImportStatus"], "complete");
    let registration = record["state"]["deviceRegistrationId"].as_str().unwrap();
    app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{registration}"), Some(&token)).await;

    // -UpdateTag: delete the imported identity, then sync; 429 right after an import.
    let id = record["id"].as_str().unwrap();
    let r = app
        .raw(Method::DELETE, &format!("{B}/importedWindowsAutopilotDeviceIdentities/{id}"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let sync = format!("{B}/windowsAutopilotSettings/sync");
    assert_eq!(
        app.raw(Method::POST, &sync, Some(&token)).send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.admin.advance_clock(750.0).await.unwrap(); // the script sleeps 750 s and tries once more
    let token = app.user_token().await;
    let r = app.raw(Method::POST, &sync, Some(&token)).header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.stop().await;
}

/// Set-AutopilotDevice: `UpdateDeviceProperties` in PascalCase with unquoted keys; the new
/// group tag survives a sync.
#[tokio::test]
async fn set_autopilot_device_flow_with_lenient_json() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    app.admin.add_registrations(&app.tenant(), &[registration("SET-1")]).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let token = app.user_token().await;
    let id = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities"), Some(&token)).await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let action = format!("{B}/windowsAutopilotDeviceIdentities/{id}/UpdateDeviceProperties");
    for body in [
        r#"{ displayName: "PC-01" }"#,
        r#"{ groupTag: "Sales" }"#,
        r#"{"userPrincipalName":"kim@contoso.onmicrosoft.com","addressableUserName":"Kim"}"#,
    ] {
        let r = app
            .raw(Method::POST, &action, Some(&token))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}");
    }
    for (body, status) in
        [(r#"{ displayName: "#, StatusCode::BAD_REQUEST), (r#"{ color: "red" }"#, StatusCode::BAD_REQUEST)]
    {
        let r = app
            .raw(Method::POST, &action, Some(&token))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    app.admin.advance_clock(601.0).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let token = app.user_token().await;
    let device = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{id}"), Some(&token)).await;
    assert_eq!(device["displayName"], "PC-01");
    assert_eq!(device["groupTag"], "Sales", "the tag was written to the registration too");
    assert_eq!(device["userPrincipalName"], "kim@contoso.onmicrosoft.com");
    assert_eq!(device["addressableUserName"], "Kim");

    // assign / unassign.
    let assign = format!("{B}/windowsAutopilotDeviceIdentities/{id}/assignUserToDevice");
    let r = app
        .raw(Method::POST, &assign, Some(&token))
        .json(&json!({"userPrincipalName": "lee@contoso.onmicrosoft.com", "addressableUserName": "Lee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{id}"), Some(&token)).await["userPrincipalName"],
        "lee@contoso.onmicrosoft.com"
    );
    let r = app
        .raw(Method::POST, &format!("{B}/windowsAutopilotDeviceIdentities/{id}/unassignUserFromDevice"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let device = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{id}"), Some(&token)).await;
    assert_eq!((device["userPrincipalName"].as_str(), device["addressableUserName"].as_str()), (Some(""), Some("")));
    app.stop().await;
}

/// Deleting a device: 204, a second delete is Intune's ZtdDeviceDeletionInProgess, and the
/// device goes after the deletion delay. deleteDevices (beta) reports per serial.
#[tokio::test]
async fn device_deletion_is_asynchronous_and_refuses_a_second_request() {
    let app = import_app().await;
    app.admin
        .add_registrations(&app.tenant(), &[registration("DEL-1"), registration("DEL-2"), registration("DEL-3")])
        .await
        .unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let token = app.user_token().await;
    let list = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities?$orderby=serialNumber"), Some(&token)).await;
    let id = list["value"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("{B}/windowsAutopilotDeviceIdentities/{id}");

    assert_eq!(app.raw(Method::DELETE, &path, Some(&token)).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let r = app.raw(Method::DELETE, &path, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["CustomApiErrorPhrase"], "ZtdDeviceDeletionInProgess");
    app.get_json(&path, Some(&token)).await; // still there until the deregistration runs

    let r = app
        .raw(Method::POST, &format!("{B}/windowsAutopilotDeviceIdentities/deleteDevices"), Some(&token))
        .json(&json!({"serialNumbers": ["DEL-1", "DEL-2", "NOT-THERE"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let states: Value = r.json().await.unwrap();
    let states: Vec<(&str, &str)> = states["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["serialNumber"].as_str().unwrap(), s["deletionState"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("DEL-1", "error"), ("DEL-2", "accepted"), ("NOT-THERE", "failed")]);

    app.admin.advance_clock(61.0).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.raw(Method::GET, &path, Some(&token)).send().await.unwrap().status() != StatusCode::NOT_FOUND {
        assert!(tokio::time::Instant::now() < deadline, "device never deregistered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each deletion is its own job, so DEL-2 may still be deregistering when DEL-1 is gone.
    let count = format!("{B}/windowsAutopilotDeviceIdentities/$count");
    while app.get_json(&count, Some(&token)).await != json!(1) {
        assert!(tokio::time::Instant::now() < deadline, "DEL-2 never deregistered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No deleteDevices in v1.0.
    let r = app
        .raw(Method::POST, "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/deleteDevices", Some(&token))
        .json(&json!({"serialNumbers": ["DEL-3"]}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn import_validation_errors_are_intune_shaped() {
    let app = import_app().await;
    let token = app.user_token().await;
    let path = format!("{B}/importedWindowsAutopilotDeviceIdentities");
    for (body, needle) in [
        (json!({"hardwareIdentifier": hardware_hash("x")}), "serialNumber is required"),
        (json!({"serialNumber": "S"}), "hardwareIdentifier is required"),
        (json!({"serialNumber": "S", "hardwareIdentifier": "***"}), "hardwareIdentifier is not valid base64"),
        (
            json!({"serialNumber": "S", "hardwareIdentifier": "A".repeat(64 * 1024 + 4)}),
            "hardwareIdentifier is longer than 65536",
        ),
    ] {
        let r = app.raw(Method::POST, &path, Some(&token)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.unwrap();
        let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
        assert!(inner["Message"].as_str().unwrap().starts_with(needle), "{inner}");
    }
    let r = app
        .raw(Method::POST, &format!("{path}/import"), Some(&token))
        .json(&json!({"importedWindowsAutopilotDeviceIdentities": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The import action bounds each item's hash too, and names the item.
    let items = json!({"importedWindowsAutopilotDeviceIdentities": [
        {"serialNumber": "L-1", "hardwareIdentifier": hardware_hash("l-1")},
        {"serialNumber": "L-2", "hardwareIdentifier": "A".repeat(64 * 1024 + 4)},
    ]});
    let r = app.raw(Method::POST, &format!("{path}/import"), Some(&token)).json(&items).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    assert!(
        inner["Message"]
            .as_str()
            .unwrap()
            .starts_with("hardwareIdentifier is longer than 65536 characters of base64 (item 2)"),
        "{inner}"
    );
    // base64url is accepted as well as base64, and the response gives standard base64 back.
    let url_safe = "-_-_";
    let r = app
        .raw(Method::POST, &format!("{path}/import"), Some(&token))
        .json(&json!({"importedWindowsAutopilotDeviceIdentities": [{"serialNumber": "U-1", "hardwareIdentifier": url_safe}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"][0]["hardwareIdentifier"], "+/+/");
    assert_eq!(body["value"][0]["state"]["deviceImportStatus"], "unknown");
    assert!(body["value"][0]["importId"].as_str().unwrap().len() == 36);
    app.stop().await;
}

/// Get-WindowsAutopilotInfo.ps1 -Online -GroupTag Sales -AddToGroup "Autopilot Devices"
/// -AssignedComputerName PC-SALES-01 -Assign (clients.md §4.3–4.4), request by request as the
/// script sends them, against a tenant whose admin has assigned a profile to that group. Each
/// of the script's 30-second sleeps is a clock advance; it ends with the device assigned.
#[tokio::test]
async fn get_windows_autopilot_info_add_to_group_and_assign_flow() {
    let app = spawn_app_with(|c| {
        c.import_delay = time::Duration::seconds(60);
        c.sync_duration = time::Duration::ZERO;
        c.group_processing_delay = time::Duration::minutes(5);
        c.profile_assignment_delay = time::Duration::minutes(15);
    })
    .await;
    let token = app.user_token().await;
    // The admin's side: the group the script adds devices to, and a profile assigned to it.
    let (status, group) = send(
        &app,
        Method::POST,
        "/beta/groups",
        &token,
        Some(json!({"displayName": "Autopilot Devices", "mailEnabled": false, "mailNickname": "AutopilotDevices", "securityEnabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (status, profile) = send(
        &app,
        Method::POST,
        &format!("{B}/windowsAutopilotDeploymentProfiles"),
        &token,
        Some(json!({
            "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
            "displayName": "Sales", "description": "", "language": "os-default", "extractHardwareHash": false,
            "deviceNameTemplate": "", "deviceType": "windowsPc", "enableWhiteGlove": false,
            "outOfBoxExperienceSettings": {"hidePrivacySettings": true, "hideEULA": true, "userType": "standard",
                "deviceUsageType": "singleUser", "skipKeyboardSelectionPage": true, "hideEscapeLink": true}
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let profile_id = profile["id"].as_str().unwrap().to_owned();
    // Set-AutopilotProfileAssignedGroup: the client makes the assignment's id.
    let (status, assignment) = send(
        &app,
        Method::POST,
        &format!("{B}/windowsAutopilotDeploymentProfiles/{profile_id}/assignments"),
        &token,
        Some(json!({"id": format!("{profile_id}_{group_id}_0"),
            "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");

    // Add-AutopilotImportedDevice with the group tag, then the 30-second polls until complete.
    let serial = "GWAI-ASSIGN-1";
    let created =
        post_imported(&app, &token, powershell_body(serial, &hardware_hash(serial), "groupTag", "Sales", "")).await;
    let import_id = created["id"].as_str().unwrap().to_owned();
    let states = let_imports_finish(&app, &token, std::slice::from_ref(&import_id)).await;
    assert_eq!(states[0]["state"]["deviceImportStatus"], "complete");
    let device_id = states[0]["state"]["deviceRegistrationId"].as_str().unwrap().to_owned();
    let device = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities/{device_id}"), Some(&token)).await;
    assert_eq!(device["groupTag"], "Sales");
    let aad_device_id = device["azureActiveDirectoryDeviceId"].as_str().unwrap().to_owned();

    // -AddToGroup: the group by name, the Entra object by deviceId, then members/$ref.
    let groups = app.get_json("/beta/groups?$filter=displayName%20eq%20'Autopilot%20Devices'", Some(&token)).await;
    assert_eq!(groups["value"].as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(groups["value"][0]["id"], group_id.as_str());
    let objects = app.get_json(&format!("/beta/devices?$filter=deviceId%20eq%20'{aad_device_id}'"), Some(&token)).await;
    let object_id = objects["value"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/beta/groups/{group_id}/members/$ref"),
        &token,
        Some(json!({"@odata.id": format!("https://graph.microsoft.com/beta/directoryObjects/{object_id}")})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // -AssignedComputerName: UpdateDeviceProperties with the module's unquoted key.
    let r = app
        .raw(
            Method::POST,
            &format!("{B}/windowsAutopilotDeviceIdentities/{device_id}/UpdateDeviceProperties"),
            Some(&token),
        )
        .header("content-type", "application/json")
        .body(r#"{ displayName: "PC-SALES-01" }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // -Assign: poll with $expand every 30 s until the status starts with "assigned".
    let expand =
        format!("{B}/windowsAutopilotDeviceIdentities/{device_id}?$expand=deploymentProfile,intendedDeploymentProfile");
    let mut seen = Vec::new();
    let mut polls = 0;
    let last = loop {
        let polled = app.get_json(&expand, Some(&token)).await;
        let status = polled["deploymentProfileAssignmentStatus"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status.starts_with("assigned") {
            break polled;
        }
        polls += 1;
        // The group's processing and the profile's assignment delays are 20 minutes together.
        assert!(polls < 60, "never assigned: {seen:?} {polled}");
        app.admin.advance_clock(30.0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The engine may not have taken the new member yet at the first poll.
    assert!(seen.ends_with(&["pending".to_owned(), "assignedUnkownSyncState".to_owned()]), "{seen:?}");
    assert_eq!(last["deploymentProfile"]["id"], profile_id.as_str());
    assert_eq!(last["intendedDeploymentProfile"]["id"], profile_id.as_str());
    assert_eq!(last["displayName"], "PC-SALES-01");
    assert!(last["deploymentProfileAssignedDateTime"].as_str().unwrap() > "2000");
    app.stop().await;
}

/// The WindowsAutopilotIntune module's profile cmdlets (clients.md §4.2, world.md §2.1), as the
/// module sends them: New-AutopilotProfile, Get-AutopilotProfile (list with nextLink, and by id),
/// Set-AutopilotProfileAssignedGroup (the client makes the assignment id),
/// Get-AutopilotProfileAssignments (then each group by `$filter=id eq`), Get-AutopilotDevice
/// -expand (the list, then every device again with `$expand`), Get-AutopilotProfileAssignedDevice,
/// Set-AutopilotProfile (GET, then PATCH of the whole object less five properties),
/// Remove-AutopilotProfileAssignments and Remove-AutopilotProfile.
#[tokio::test]
async fn windows_autopilot_intune_profile_cmdlets() {
    let app = synced_app_with(&["MOD-1", "MOD-2"], |c| {
        c.group_processing_delay = time::Duration::ZERO;
        c.profile_assignment_delay = time::Duration::minutes(15);
    })
    .await;
    let token = app.user_token().await;
    let profiles = format!("{B}/windowsAutopilotDeploymentProfiles");

    // New-AutopilotProfile: the deprecated property names.
    let (status, profile) = send(
        &app,
        Method::POST,
        &profiles,
        &token,
        Some(json!({
            "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
            "displayName": "Module profile", "description": "", "language": "en-US",
            "extractHardwareHash": false, "deviceNameTemplate": "MOD-%SERIAL%", "deviceType": "windowsPc",
            "enableWhiteGlove": true,
            "outOfBoxExperienceSettings": {"hidePrivacySettings": true, "hideEULA": true, "userType": "standard",
                "deviceUsageType": "shared", "skipKeyboardSelectionPage": false, "hideEscapeLink": true}
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let profile_id = profile["id"].as_str().unwrap().to_owned();

    // Get-AutopilotProfile: the list, following nextLink to the end, then one by id.
    let mut path = profiles.clone();
    let mut listed = Vec::new();
    loop {
        let page = app.get_json(&path, Some(&token)).await;
        listed.extend(page["value"].as_array().unwrap().iter().map(|p| p["id"].clone()));
        match page["@odata.nextLink"].as_str() {
            // The link is absolute; the module GETs it as it is, here on the test server's host.
            Some(next) => path = next[next.find("/beta/").unwrap()..].to_owned(),
            None => break,
        }
    }
    assert_eq!(listed, [json!(profile_id)]);
    let one = app.get_json(&format!("{profiles}/{profile_id}"), Some(&token)).await;
    assert_eq!(one["outOfBoxExperienceSettings"]["deviceUsageType"], "shared");

    // Set-AutopilotProfileAssignedGroup to a group holding both devices' Entra objects.
    let group_id = group_with_every_device(&app, &token).await;
    let assignment_id = format!("{profile_id}_{group_id}_0");
    let (status, assignment) = send(
        &app,
        Method::POST,
        &format!("{profiles}/{profile_id}/assignments"),
        &token,
        Some(json!({"id": assignment_id,
            "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
    assert_eq!(assignment["id"], assignment_id.as_str());

    // Get-AutopilotProfileAssignments: the assignments, then each target group by id.
    let assignments = app.get_json(&format!("{profiles}/{profile_id}/assignments"), Some(&token)).await;
    let target = assignments["value"][0]["target"]["groupId"].as_str().unwrap().to_owned();
    let groups = app.get_json(&format!("/beta/groups?$filter=id%20eq%20'{target}'"), Some(&token)).await;
    assert_eq!(groups["value"][0]["displayName"], "Module devices");

    // Past the assignment delay, Get-AutopilotDevice -expand sees both devices assigned.
    let devices = wait_for_assignment(&app, &token, 2).await;
    for id in &devices {
        let device = app
            .get_json(
                &format!(
                    "{B}/windowsAutopilotDeviceIdentities/{id}?$expand=deploymentProfile,intendedDeploymentProfile"
                ),
                Some(&token),
            )
            .await;
        assert_eq!(device["deploymentProfileAssignmentStatus"], "assignedUnkownSyncState", "{device}");
        assert_eq!(device["deploymentProfile"]["id"], profile_id.as_str());
        assert_eq!(device["intendedDeploymentProfile"]["displayName"], "Module profile");
    }
    // Get-AutopilotProfileAssignedDevice reads .value only.
    let assigned = app.get_json(&format!("{profiles}/{profile_id}/assignedDevices"), Some(&token)).await;
    assert_eq!(assigned["value"].as_array().unwrap().len(), 2, "{assigned}");

    // Set-AutopilotProfile: the whole object back, less what the module removes.
    let mut body = app.get_json(&format!("{profiles}/{profile_id}"), Some(&token)).await;
    for key in ["lastModifiedDateTime", "createdDateTime", "@odata.context", "id", "roleScopeTagIds"] {
        body.as_object_mut().unwrap().remove(key);
    }
    body["description"] = json!("Changed by Set-AutopilotProfile");
    body["hybridAzureADJoinSkipConnectivityCheck"] = json!(false);
    let (status, patched) = send(&app, Method::PATCH, &format!("{profiles}/{profile_id}"), &token, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "Changed by Set-AutopilotProfile");

    // Remove-AutopilotProfileAssignments, then Remove-AutopilotProfile.
    let (status, body) =
        send(&app, Method::DELETE, &format!("{profiles}/{profile_id}/assignments/{assignment_id}"), &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = send(&app, Method::DELETE, &format!("{profiles}/{profile_id}"), &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    app.stop().await;
}

/// An assigned group holding every device's Entra object, added by members/$ref.
async fn group_with_every_device(app: &TestApp, token: &str) -> String {
    let (status, group) = send(
        app,
        Method::POST,
        "/beta/groups",
        token,
        Some(json!({"displayName": "Module devices", "mailEnabled": false, "mailNickname": "ModuleDevices", "securityEnabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let objects = app.get_json("/beta/devices", Some(token)).await;
    for object in objects["value"].as_array().unwrap() {
        let reference = format!("https://graph.microsoft.com/beta/directoryObjects/{}", object["id"].as_str().unwrap());
        let (status, body) = send(
            app,
            Method::POST,
            &format!("/beta/groups/{group_id}/members/$ref"),
            token,
            Some(json!({ "@odata.id": reference })),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    group_id
}

/// Moves the clock in the script's 30-second steps until `count` devices are assigned; their ids.
async fn wait_for_assignment(app: &TestApp, token: &str, count: usize) -> Vec<String> {
    for _ in 0..120 {
        let list = app.get_json(&format!("{B}/windowsAutopilotDeviceIdentities"), Some(token)).await;
        let assigned: Vec<String> = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["deploymentProfileAssignmentStatus"].as_str().unwrap().starts_with("assigned"))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        if assigned.len() == count {
            return assigned;
        }
        app.admin.advance_clock(30.0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the devices were never assigned");
}
