//! The deployment profile assignment engine seen through Graph: a device in a group that a
//! profile is assigned to reads `pending` with the profile intended, then, once the delay has
//! passed on the Clock, `assignedUnkownSyncState` with its assigned date; a membership change
//! whose request for a pass was lost to a crash is made good when the server starts; and the
//! `profileAssignmentFailed` fault makes an assignment end `failed`.

use std::time::Duration;

use dmsync_server::bootstrap::DEV_TENANT_ID;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::faults::{add_rule, wait_for_fired};
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

/// A new Entra join profile assigned to the group through Graph; its id.
async fn assign_new_profile(app: &TestApp, token: &str, group: &str) -> String {
    assign_new_profile_to(
        app,
        token,
        json!({"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}),
    )
    .await
}

/// A new Entra join profile assigned to `target` through Graph; its id.
async fn assign_new_profile_to(app: &TestApp, token: &str, target: Value) -> String {
    let profiles = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";
    let body =
        json!({"@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile", "displayName": "Sales"});
    let (status, profile) = send(app, Method::POST, profiles, token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let id = profile["id"].as_str().unwrap().to_owned();
    let assignments = format!("{profiles}/{id}/assignments");
    let (status, assignment) = send(app, Method::POST, &assignments, token, Some(json!({ "target": target }))).await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
    id
}

/// Adds the Entra object of the Autopilot device `device` (its JSON) to the group.
async fn add_member(app: &TestApp, token: &str, group: &str, device: &Value) {
    let device_id = device["azureAdDeviceId"].as_str().unwrap();
    let objects = app.get_json(&format!("/v1.0/devices?$filter=deviceId eq '{device_id}'"), Some(token)).await;
    let object = objects["value"][0]["id"].as_str().unwrap();
    let (status, _) = send(
        app,
        Method::POST,
        &format!("/v1.0/groups/{group}/members/$ref"),
        token,
        Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{object}")})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

const FAULTS: &str = "/_dmsync/faults";

/// Adds a fault rule; its id.
/// A `profileAssignmentFailed` fault naming a serial: that device ends `failed` when its
/// profile comes due, the profile still intended and nothing assigned, while the other device
/// of the group is assigned; the passes that only made the devices pending left the rule waiting.
#[tokio::test]
async fn a_faulted_serial_ends_failed_when_its_profile_comes_due() {
    let app = synced_app_with(&["PF-1", "PF-2"], |c| c.profile_assignment_delay = time::Duration::minutes(10)).await;
    let token = app.user_token().await;
    let rule = add_rule(
        &app,
        json!({"match":{"tenantId":app.tenant()},
               "effect":{"domain":"profileAssignmentFailed","serialNumber":"PF-1"},"times":1}),
    )
    .await;
    let devices = app.get_json(&format!("/beta/{SET}?$orderby=serialNumber"), Some(&token)).await;
    let id = |i: usize| devices["value"][i]["id"].as_str().unwrap().to_owned();
    let group = create_group(&app, &token).await;
    add_member(&app, &token, &group, &devices["value"][0]).await;
    add_member(&app, &token, &group, &devices["value"][1]).await;
    let profile = assign_new_profile(&app, &token, &group).await;
    wait_for_status(&app, &token, &id(0), "pending").await;
    wait_for_status(&app, &token, &id(1), "pending").await;
    let (_, listed) = admin(&app, Method::GET, FAULTS, Value::Null).await;
    assert_eq!((&listed["value"][0]["fired"], &listed["value"][0]["times"]), (&json!(0), &json!(1)), "{listed}");

    app.admin.advance_clock(601.0).await.unwrap();
    let failed = wait_for_status(&app, &token, &id(0), "failed").await;
    assert_eq!(failed["deploymentProfileAssignedDateTime"], "0001-01-01T00:00:00Z", "nothing was assigned");
    wait_for_status(&app, &token, &id(1), "assignedUnkownSyncState").await;
    let rule = wait_for_fired(&app, &rule, 1).await;
    assert_eq!(rule["times"], 0);

    let assigned = app.raw(Method::GET, &format!("/beta/{SET}/{}/deploymentProfile", id(0)), Some(&token));
    assert_eq!(assigned.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let intended = app.get_json(&format!("/beta/{SET}/{}/intendedDeploymentProfile", id(0)), Some(&token)).await;
    assert_eq!(intended["id"], profile.as_str());
    let filtered =
        app.get_json(&format!("/beta/{SET}?$filter=deploymentProfileAssignmentStatus eq 'failed'"), Some(&token)).await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["value"][0]["id"], id(0).as_str());
    app.stop().await;
}

/// A `profileAssignmentFailed` fault without a serial fails every device that the next pass
/// would assign through All Devices, counting once; a device synced afterwards is assigned, and
/// the failed ones stay failed.
#[tokio::test]
async fn a_fault_without_a_serial_fails_every_device_the_pass_would_assign() {
    let app = synced_app_with(&["PX-1", "PX-2"], |c| c.sync_cooldown = time::Duration::ZERO).await;
    let token = app.user_token().await;
    let rule = add_rule(&app, json!({"effect":{"domain":"profileAssignmentFailed"},"times":1})).await;
    let profile =
        assign_new_profile_to(&app, &token, json!({"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}))
            .await;
    let devices = app.get_json(&format!("/beta/{SET}?$orderby=serialNumber"), Some(&token)).await;
    let ids: Vec<String> =
        devices["value"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    for id in &ids {
        wait_for_status(&app, &token, id, "failed").await;
    }
    let listed = wait_for_fired(&app, &rule, 1).await;
    assert_eq!(listed["times"], 0, "one pass, one of its times");

    app.admin.add_registrations(&app.tenant(), &[registration("PX-3")]).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let third = app.get_json(&format!("/beta/{SET}?$filter=serialNumber eq 'PX-3'"), Some(&token)).await;
    let third = third["value"][0]["id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &token, &third, "assignedUnkownSyncState").await;
    let deployed = app.get_json(&format!("/beta/{SET}/{third}/deploymentProfile"), Some(&token)).await;
    assert_eq!(deployed["id"], profile.as_str());
    for id in &ids {
        let device = app.get_json(&format!("/beta/{SET}/{id}"), Some(&token)).await;
        assert_eq!(device["deploymentProfileAssignmentStatus"], "failed", "{device}");
    }
    app.stop().await;
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
