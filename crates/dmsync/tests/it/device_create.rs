//! `POST windowsAutopilotDeviceIdentities` (v1.0 and beta): a device created directly, as the
//! Terraform provider creates one, is registered at once with its Entra object, is kept by the
//! next sync, and holds its serial number; the body's refusals and the permission.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const BETA: &str = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
const V1: &str = "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities";

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let r = app.raw(Method::POST, path, Some(token)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Intune's message document inside a 400's `error.message`.
fn intune_message(body: &Value) -> Value {
    serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap()
}

/// The body the Terraform provider's msgraph-beta-sdk-go model writes: `@odata.type` and the
/// string properties it sets.
fn terraform_body(serial: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.windowsAutopilotDeviceIdentity",
        "serialNumber": serial,
        "groupTag": "Sales",
        "purchaseOrderIdentifier": "PO-7",
        "productKey": "",
        "manufacturer": "Contoso",
        "model": "Laptop 7",
        "displayName": "SALES-01",
        "userPrincipalName": "kim@contoso.com",
    })
}

#[tokio::test]
async fn a_device_created_as_terraform_creates_it_is_registered_with_its_entra_object() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let token = app.user_token().await;

    let (status, created) = post(&app, BETA, &token, terraform_body("TF-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotDeviceIdentities/$entity"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&created["serialNumber"], &created["groupTag"], &created["purchaseOrderIdentifier"], &created["model"]),
        (&json!("TF-1"), &json!("Sales"), &json!("PO-7"), &json!("Laptop 7"))
    );
    assert_eq!(
        (&created["displayName"], &created["userPrincipalName"]),
        (&json!("SALES-01"), &json!("kim@contoso.com"))
    );
    assert_eq!(created["enrollmentState"], "notContacted");
    assert_eq!(created["deploymentProfileAssignmentStatus"], "notAssigned");
    let aad = created["azureActiveDirectoryDeviceId"].as_str().unwrap().to_owned();
    assert!(aad.parse::<uuid::Uuid>().is_ok(), "{created}");

    // Terraform reads it back at once; the read equals the create's answer.
    let mut read = app.get_json(&format!("{BETA}/{id}"), Some(&token)).await;
    let mut answered = created.clone();
    for body in [&mut read, &mut answered] {
        body.as_object_mut().unwrap().remove("@odata.context");
    }
    assert_eq!(read, answered);

    // Its Entra object, found as Get-WindowsAutopilotInfo finds one; no hash came, so no [HWID].
    let found = app.get_json(&format!("/v1.0/devices?$filter=deviceId eq '{aad}'"), Some(&token)).await;
    let object = &found["value"][0];
    assert_eq!(object["displayName"], "TF-1");
    assert_eq!(object["physicalIds"], json!([format!("[ZTDID]:{id}"), "[OrderId]:Sales", "[PurchaseOrderId]:PO-7"]));

    // A sync keeps it as it was.
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let list = app.get_json(BETA, Some(&token)).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!((&list["value"][0]["id"], &list["value"][0]["displayName"]), (&json!(id), &json!("SALES-01")));

    // v1.0 creates too, and shows v1.0's properties.
    let (status, v1) = post(&app, V1, &token, json!({ "serialNumber": "TF-2" })).await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert!(v1.get("azureAdDeviceId").is_none(), "{v1}");
    assert_eq!(v1["groupTag"], "");
}

#[tokio::test]
async fn a_create_is_refused_for_a_registered_serial_a_bad_body_and_a_reader() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let (status, _) = post(&app, BETA, &token, terraform_body("DUP-1")).await;
    assert_eq!(status, StatusCode::CREATED);

    // Intune's 806, in its JSON-in-message envelope.
    let (status, body) = post(&app, BETA, &token, terraform_body("DUP-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "BadRequest");
    let message = intune_message(&body);
    assert_eq!(message["CustomApiErrorPhrase"], "ZtdDeviceAlreadyAssigned");
    assert!(message["Message"].as_str().unwrap().starts_with("ZtdDeviceAlreadyAssigned"), "{message}");
    let list = app.get_json(BETA, Some(&token)).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);

    for (path, body, why) in [
        (BETA, json!({ "groupTag": "Sales" }), "no serial number"),
        (BETA, json!({ "serialNumber": "  " }), "a blank serial number"),
        (BETA, json!({ "serialNumber": "X-1", "hardwareIdentifier": "AAAA" }), "an unknown property"),
        (BETA, json!({ "serialNumber": "X-1", "groupTag": 7 }), "a number for a string"),
        (V1, json!({ "serialNumber": "X-1", "deviceAccountUpn": "room@contoso.com" }), "a beta-only property"),
    ] {
        let (status, answer) = post(&app, path, &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }

    // Read-only properties are accepted and ignored.
    let (status, created) = post(
        &app,
        BETA,
        &token,
        json!({
            "serialNumber": "RO-1", "id": "fac6f0b1-f0b1-fac6-b1f0-c6fab1f0c6fa", "enrollmentState": "enrolled",
            "deploymentProfileAssignmentStatus": "assignedInSync", "managedDeviceId": "x",
            "lastContactedDateTime": "2016-12-31T23:58:44.2908994-08:00", "orderIdentifier": "Old",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_ne!(created["id"], "fac6f0b1-f0b1-fac6-b1f0-c6fab1f0c6fa");
    assert_eq!(
        (&created["enrollmentState"], &created["deploymentProfileAssignmentStatus"], &created["managedDeviceId"]),
        (&json!("notContacted"), &json!("notAssigned"), &json!("00000000-0000-0000-0000-000000000000"))
    );
    assert_eq!(created["groupTag"], "Old", "orderIdentifier is the older name of groupTag");

    // The create page asks for DeviceManagementServiceConfig.ReadWrite.All.
    let reader = app.admin.mint_token(&app.tenant(), "delegated", &[READ], "work", None).await.unwrap();
    let (status, _) = post(&app, BETA, &reader, terraform_body("R-1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let writer = app.admin.mint_token(&app.tenant(), "application", &[RW], "work", None).await.unwrap();
    let (status, _) = post(&app, V1, &writer, terraform_body("A-1")).await;
    assert_eq!(status, StatusCode::CREATED, "application tokens too");
}
