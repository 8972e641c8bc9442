//! The deployment profile assignment engine seen through Graph: a device in a group that a
//! profile is assigned to reads `pending` with the profile intended, then, once the delay has
//! passed on the Clock, `assignedUnkownSyncState` with its assigned date. Groups, members,
//! profiles and assignments are written with the test-only `dmsync_store::fixtures` until their
//! own routes exist; the engine is asked for a pass through the hook those routes will call.

use std::time::Duration;

use dmsync_server::bootstrap::DEV_TENANT_ID;
use dmsync_server::jobs::assign_deployment_profiles::schedule_profile_assignment;
use dmsync_store::SqlStore;
use dmsync_store::fixtures::{self, Target};
use reqwest::{Method, StatusCode};
use serde_json::Value;

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
    let object: dmsync_core::EntraDeviceId = objects["value"][0]["id"].as_str().unwrap().parse().unwrap();

    let fixture_store = SqlStore::open(&app.state.config().db).await.unwrap();
    let (profile, group) = (dmsync_core::DeploymentProfileId::new(), dmsync_core::GroupId::new());
    let now = app.state.now();
    fixtures::insert_profile(&fixture_store, DEV_TENANT_ID, profile, "Sales", now).await.unwrap();
    fixtures::insert_group(&fixture_store, DEV_TENANT_ID, group, "Autopilot Devices", now).await.unwrap();
    fixtures::add_group_members(&fixture_store, DEV_TENANT_ID, group, &[object], now).await.unwrap();
    fixtures::insert_assignment(&fixture_store, DEV_TENANT_ID, profile, Target::Group(group), now).await.unwrap();
    dmsync_core::store::SystemStore::close(&fixture_store).await;
    schedule_profile_assignment(&app.state, DEV_TENANT_ID).await.unwrap();

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
