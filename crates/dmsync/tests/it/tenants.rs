//! Tenant isolation: another tenant's ids are 404, never a leak.

use std::time::Duration;

use dmsync_graph::ApiVersion;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

const FABRIKAM: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

#[tokio::test]
async fn tenants_see_only_their_own_devices_and_settings() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    app.admin.create_tenant(FABRIKAM, "fabrikam.onmicrosoft.com").await.unwrap();
    app.admin.add_registrations(&app.tenant(), &[registration("CONTOSO-1")]).await.unwrap();
    let contoso = app.user_client().await;
    contoso.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&contoso, "completed", Duration::from_secs(10)).await;
    let devices = contoso.all_windows_autopilot_device_identities(ApiVersion::Beta, "").await.unwrap();
    assert_eq!(devices.len(), 1);
    let id = devices[0].id.clone();

    let fabrikam_token = app.admin.mint_token(FABRIKAM, "delegated", &[RW], "work", None).await.unwrap();
    let fabrikam = app.graph.with_token(fabrikam_token.clone());
    // The other tenant's device is a plain 404 with Intune's body.
    let err = fabrikam.get_windows_autopilot_device_identity(ApiVersion::V1, &id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.graph_code(), Some("ResourceNotFound"));
    assert!(fabrikam.all_windows_autopilot_device_identities(ApiVersion::V1, "").await.unwrap().is_empty());
    // Its settings are its own: never synced, and its cooldown is not contoso's.
    let settings = serde_json::to_value(fabrikam.get_windows_autopilot_settings().await.unwrap()).unwrap();
    assert_eq!(settings["syncStatus"], "unknown");
    fabrikam.sync_windows_autopilot_settings().await.expect("fabrikam's first sync");
    // A hardware hash belongs to one tenant only.
    let err = app.admin.add_registrations(FABRIKAM, &[registration("CONTOSO-1")]).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    let r = app
        .raw(
            Method::GET,
            &format!("/beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}"),
            Some(&fabrikam_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(!body.to_string().contains("CONTOSO-1"), "nothing of the other tenant leaks");
    app.stop().await;
}
