//! Entra device objects over HTTP (v1.0 and beta): a synced Autopilot device has one, found by
//! its `deviceId` as Get-WindowsAutopilotInfo looks it up; `[OrderId]` follows the group tag;
//! delete leaves the Autopilot identity; `$count` and `$search` need `ConsistencyLevel:
//! eventual` with Entra's own 400s otherwise, and the page cache never serves one for the
//! other; the permissions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const IDENTITIES: &str = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";

#[tokio::test]
async fn a_synced_device_has_its_entra_object() {
    let app = synced_app(&["SN-1"]).await;
    let token = app.user_token().await;
    let identities = app.get_json(IDENTITIES, Some(&token)).await;
    let identity = &identities["value"][0];
    let ztdid = identity["id"].as_str().unwrap().to_owned();
    let aad = identity["azureActiveDirectoryDeviceId"].as_str().unwrap().to_owned();
    assert!(aad.parse::<uuid::Uuid>().is_ok(), "{identity}");
    assert_eq!(identity["azureAdDeviceId"], aad, "beta shows it under both names");

    // Get-WindowsAutopilotInfo's lookup, with its spelling of the property.
    let found = app.get_json(&format!("/beta/devices?$filter=deviceID eq '{aad}'"), Some(&token)).await;
    assert_eq!(found["@odata.context"], "https://graph.microsoft.com/beta/$metadata#devices");
    assert_eq!(found["value"].as_array().unwrap().len(), 1, "{found}");
    let device = &found["value"][0];
    let object = device["id"].as_str().unwrap().to_owned();
    assert_ne!(object, aad);
    assert_eq!(
        (&device["deviceId"], &device["displayName"], &device["operatingSystem"], &device["trustType"]),
        (&json!(aad), &json!("SN-1"), &json!("Windows"), &json!("AzureAd"))
    );
    assert_eq!(device["accountEnabled"], true);
    assert_eq!(device["approximateLastSignInDateTime"], Value::Null, "never signed in");
    assert_eq!(device["systemLabels"], json!([]));
    let physical = device["physicalIds"].as_array().unwrap();
    assert_eq!(physical[0], format!("[ZTDID]:{ztdid}"));
    assert!(physical[1].as_str().unwrap().starts_with("[HWID]:h:"), "{device}");
    assert_eq!(physical.len(), 2, "no group tag or purchase order: {device}");

    // A group tag set through Intune is the object's [OrderId] at once.
    let (status, _) = send_with(
        &app,
        Method::POST,
        &format!("{IDENTITIES}/{ztdid}/UpdateDeviceProperties"),
        &token,
        false,
        Some(json!({ "groupTag": "Sales" })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let v1 = app.get_json(&format!("/v1.0/devices/{object}"), Some(&token)).await;
    assert_eq!(v1["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#devices/$entity");
    assert!(v1["physicalIds"].as_array().unwrap().contains(&json!("[OrderId]:Sales")), "{v1}");
    let selected = app.get_json(&format!("/v1.0/devices/{object}?$select=deviceId,physicalIds"), Some(&token)).await;
    assert_eq!(selected.as_object().unwrap().len(), 4, "the context, the id and the two: {selected}");

    // Deleting the object leaves the Autopilot identity.
    let path = format!("/beta/devices/{object}");
    assert_eq!(send_with(&app, Method::DELETE, &path, &token, false, None).await.0, StatusCode::NO_CONTENT);
    let (status, body) = send_with(&app, Method::DELETE, &path, &token, false, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        format!("Resource '{object}' does not exist or one of its queried reference-property objects are not present.")
    );
    let (status, _) = send_with(&app, Method::GET, "/beta/devices/not-a-guid", &token, false, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let identity = app.get_json(&format!("{IDENTITIES}/{ztdid}"), Some(&token)).await;
    assert_eq!(identity["azureActiveDirectoryDeviceId"], aad, "the identity stays as it was");
    app.stop().await;
}

#[tokio::test]
async fn count_and_search_need_consistency_level_eventual() {
    let app = synced_app(&["PC-1", "PC-2", "LAB-1"]).await;
    let token = app.user_token().await;

    let count = "/v1.0/devices?$count=true&$top=2";
    for _ in 0..2 {
        let (status, body) = send_with(&app, Method::GET, count, &token, false, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "Request_BadRequest");
        assert_eq!(body["error"]["message"], "$count is not currently supported.");
        // The page the header allows is kept, and never served to a request without it.
        let (status, body) = send_with(&app, Method::GET, count, &token, true, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["@odata.count"], 3);
        assert_eq!(body["value"].as_array().unwrap().len(), 2);
        let next = body["@odata.nextLink"].as_str().unwrap();
        assert!(next.contains("%24count=true") || next.contains("$count=true"), "{next}");
    }

    let search = "/beta/devices?$search=\"displayName:PC\"&$select=displayName";
    let (status, body) = send_with(&app, Method::GET, search, &token, false, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");
    assert_eq!(
        body["error"]["message"],
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"
    );
    let (status, body) = send_with(&app, Method::GET, search, &token, true, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> =
        body["value"].as_array().unwrap().iter().map(|d| d["displayName"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{body}");
    assert!(names.iter().all(|n| n.starts_with("PC-")));

    let lab = app.get_json("/beta/devices?$filter=displayName eq 'LAB-1'", Some(&token)).await;
    let device_id = lab["value"][0]["deviceId"].as_str().unwrap();
    let (status, body) = send_with(
        &app,
        Method::GET,
        &format!("/beta/devices?$search=\"deviceId:{device_id}\"&$count=true&$filter=operatingSystem eq 'Windows'"),
        &token,
        true,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["@odata.count"], 1);
    assert_eq!(body["value"][0]["displayName"], "LAB-1");
    let (status, _) = send_with(&app, Method::GET, "/beta/devices?$search=\"model:x\"", &token, true, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn devices_take_the_device_and_directory_permissions() {
    let app = synced_app(&["P-1", "P-2"]).await;
    let tenant = app.tenant();
    let mint = |kind: &'static str, permission: &'static str| {
        let admin = app.admin.clone();
        let tenant = tenant.clone();
        async move { admin.mint_token(&tenant, kind, &[permission], "work", None).await.unwrap() }
    };
    let reader = mint("application", "Device.Read.All").await;
    let (status, list) = send_with(&app, Method::GET, "/v1.0/devices", &reader, false, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = list["value"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().into()).collect();
    assert_eq!(
        send_with(&app, Method::GET, "/v1.0/devices", &mint("delegated", "Directory.Read.All").await, false, None)
            .await
            .0,
        StatusCode::OK
    );
    let autopilot = mint("application", "DeviceManagementServiceConfig.ReadWrite.All").await;
    assert_eq!(send_with(&app, Method::GET, "/v1.0/devices", &autopilot, false, None).await.0, StatusCode::FORBIDDEN);
    let path = |id: &str| format!("/v1.0/devices/{id}");
    assert_eq!(send_with(&app, Method::DELETE, &path(&ids[0]), &reader, false, None).await.0, StatusCode::FORBIDDEN);
    // A user deletes with Directory.AccessAsUser.All alone; Device.ReadWrite.All is the app's.
    let user_rw = mint("delegated", "Device.ReadWrite.All").await;
    assert_eq!(send_with(&app, Method::DELETE, &path(&ids[0]), &user_rw, false, None).await.0, StatusCode::FORBIDDEN);
    let user = mint("delegated", "Directory.AccessAsUser.All").await;
    assert_eq!(send_with(&app, Method::DELETE, &path(&ids[0]), &user, false, None).await.0, StatusCode::NO_CONTENT);
    // The development app and user read and delete, as Get-WindowsAutopilotInfo -Delete does.
    let app_token = app.app_token().await;
    assert_eq!(
        send_with(&app, Method::DELETE, &path(&ids[1]), &app_token, false, None).await.0,
        StatusCode::NO_CONTENT
    );
    let user_token = app.user_token().await;
    let (status, list) = send_with(&app, Method::GET, "/beta/devices", &user_token, false, None).await;
    assert_eq!((status, list["value"].as_array().unwrap().len()), (StatusCode::OK, 0));
    app.stop().await;
}

/// Malformed and oversized `$search` and `$filter` values are Graph's 400s, never a 5xx, and the
/// list still answers afterwards.
#[tokio::test]
async fn malformed_search_and_filter_values_are_400() {
    let app = synced_app(&["BAD-1"]).await;
    let token = app.user_token().await;
    let long = "x".repeat(20 * 1024);
    for query in [
        "$search=\"deviceId:".to_owned(),
        "$search=\"\"".to_owned(),
        "$search=\"displayName\"".to_owned(),
        format!("$search=\"displayName:{long}"),
        "$filter=deviceId eq".to_owned(),
        format!("$filter={}deviceId eq 'x'{}", "(".repeat(500), ")".repeat(500)),
    ] {
        let (status, body) = send_with(&app, Method::GET, &format!("/beta/devices?{query}"), &token, true, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", &query[..query.len().min(60)]);
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, list) = send_with(&app, Method::GET, "/beta/devices", &token, false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    app.stop().await;
}
