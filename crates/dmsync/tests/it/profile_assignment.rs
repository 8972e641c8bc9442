//! The deployment profile assignment engine seen through Graph: a device in a group that a
//! profile is assigned to reads `pending` with the profile intended, then, once the delay has
//! passed on the Clock, `assignedUnkownSyncState` with its assigned date; and a membership
//! change whose request for a pass was lost to a crash is made good when the server starts.

use std::time::Duration;

use dmsync_server::bootstrap::DEV_TENANT_ID;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SET: &str = "deviceManagement/windowsAutopilotDeviceIdentities";

/// Polls the beta device until its status is `want`.
async fn wait_for_status(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let device = app.get_json(&format!("/beta/{SET}/{id}"), Some(token)).await;
        if device["deploymentProfileAssignmentStatus"] == want {
            return device;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {want}: {device}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_group_member_is_pending_at_once_then_assigned_after_the_delay() {
    let app = spawn_app_with(|c| {
        c.sync_duration = time::Duration::ZERO;
        c.profile_assignment_delay = time::Duration::minutes(10);
    })
    .await;
    let rows = [registration("PA-1"), registration("PA-2")];
    app.admin.add_registrations(&app.tenant(), &rows).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let token = app.user_token().await;
    let devices = app.get_json(&format!("/beta/{SET}?$orderby=serialNumber"), Some(&token)).await;
    let id = |i: usize| devices["value"][i]["id"].as_str().unwrap().to_owned();
    let device_id = devices["value"][0]["azureAdDeviceId"].as_str().unwrap().to_owned();
    let objects = app.get_json(&format!("/beta/devices?$filter=deviceId eq '{device_id}'"), Some(&token)).await;
    let object = objects["value"][0]["id"].as_str().unwrap().to_owned();

    let group = create_group(&app, &token).await;
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/v1.0/groups/{group}/members/$ref"),
        &token,
        Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{object}")})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assign_new_profile(&app, &token, &group).await;

    let pending = wait_for_status(&app, &token, &id(0), "pending").await;
    assert_eq!(pending["deploymentProfileAssignedDateTime"], "0001-01-01T00:00:00Z");
    let other = app.get_json(&format!("/beta/{SET}/{}", id(1)), Some(&token)).await;
    assert_eq!(other["deploymentProfileAssignmentStatus"], "notAssigned");
    let filtered = app
        .get_json(&format!("/beta/{SET}?$filter=deploymentProfileAssignmentStatus eq 'pending'"), Some(&token))
        .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["value"][0]["id"], id(0).as_str());
    let v1 = app
        .raw(Method::GET, &format!("/v1.0/{SET}?$filter=deploymentProfileAssignmentStatus eq 'pending'"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), StatusCode::BAD_REQUEST, "v1.0's type has no such property");

    // Still pending just before the delay; assigned by the pass it scheduled once it has passed.
    app.admin.advance_clock(540.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = app.get_json(&format!("/beta/{SET}/{}", id(0)), Some(&token)).await;
    assert_eq!(still["deploymentProfileAssignmentStatus"], "pending");
    app.admin.advance_clock(61.0).await.unwrap();
    let assigned = wait_for_status(&app, &token, &id(0), "assignedUnkownSyncState").await;
    let assigned_at = assigned["deploymentProfileAssignedDateTime"].as_str().unwrap();
    assert_ne!(assigned_at, "0001-01-01T00:00:00Z");
    let v1 = app.get_json(&format!("/v1.0/{SET}/{}", id(0)), Some(&token)).await;
    assert!(v1.get("deploymentProfileAssignmentStatus").is_none(), "beta-only");
    app.stop().await;
}

/// A security group created through Graph; its id.
async fn create_group(app: &TestApp, token: &str) -> String {
    let body = json!({
        "displayName": "Autopilot Devices", "mailEnabled": false, "mailNickname": "autopilot-devices",
        "securityEnabled": true,
    });
    let (status, group) = send(app, Method::POST, "/v1.0/groups", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    group["id"].as_str().unwrap().to_owned()
}

/// A new Entra join profile assigned to the group through Graph.
async fn assign_new_profile(app: &TestApp, token: &str, group: &str) {
    let profiles = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";
    let body =
        json!({"@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile", "displayName": "Sales"});
    let (status, profile) = send(app, Method::POST, profiles, token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let target = json!({"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}});
    let assignments = format!("{profiles}/{}/assignments", profile["id"].as_str().unwrap());
    let (status, assignment) = send(app, Method::POST, &assignments, token, Some(target)).await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
}

/// A member added whose request for a pass never came (the state a crash between the member's
/// commit and the request leaves) is assigned once the server starts again, with no other write.
#[tokio::test]
async fn a_pass_lost_to_a_crash_is_asked_for_again_at_start() {
    let app = synced_app_with(&["PR-1"], |c| c.profile_assignment_delay = time::Duration::minutes(10)).await;
    let token = app.user_token().await;
    let devices = app.get_json(&format!("/beta/{SET}"), Some(&token)).await;
    let id = devices["value"][0]["id"].as_str().unwrap().to_owned();
    let device_id = devices["value"][0]["azureAdDeviceId"].as_str().unwrap().to_owned();
    let objects = app.get_json(&format!("/v1.0/devices?$filter=deviceId eq '{device_id}'"), Some(&token)).await;
    let object: dmsync_core::EntraDeviceId = objects["value"][0]["id"].as_str().unwrap().parse().unwrap();
    let group = create_group(&app, &token).await;
    assign_new_profile(&app, &token, &group).await;
    // The assignment's pass found an empty group.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let device = app.get_json(&format!("/beta/{SET}/{id}"), Some(&token)).await;
    assert_eq!(device["deploymentProfileAssignmentStatus"], "notAssigned");

    // The member is committed through the store, and the process "dies" before it asks.
    let now = app.state.now();
    let change = app.state.store().add_group_members(DEV_TENANT_ID, group.parse().unwrap(), &[object], now).await;
    assert_eq!(change.unwrap(), dmsync_core::groups::MemberChange::Done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let device = app.get_json(&format!("/beta/{SET}/{id}"), Some(&token)).await;
    assert_eq!(device["deploymentProfileAssignmentStatus"], "notAssigned", "nobody asked for a pass");

    let app = app.restart().await;
    let token = app.user_token().await;
    wait_for_status(&app, &token, &id, "pending").await;
    app.stop().await;
}
