//! Windows Autopilot deployment profiles over HTTP (beta only): both types created with the
//! bodies the real clients send (deprecated and current names), read back with both names,
//! listed with `$expand=assignments`, sent back whole in a PATCH, deleted; their assignments
//! with the ids clients parse; the rules in Intune's error shape; and the read side of the
//! assignment engine (`$expand` on devices, `assignedDevices`, the navigation GETs).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const PROFILES: &str = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";
const CONTEXT: &str = "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotDeploymentProfiles";
const AZURE_AD: &str = "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile";
const ACTIVE_DIRECTORY: &str = "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile";

/// What New-AutopilotProfile (WindowsAutopilotIntune) posts: the deprecated names.
fn module_profile(name: &str) -> Value {
    json!({
        "@odata.type": AZURE_AD,
        "displayName": name,
        "description": "Made by the module",
        "language": "en-US",
        "extractHardwareHash": true,
        "deviceNameTemplate": "SALES-%SERIAL%",
        "deviceType": "windowsPc",
        "enableWhiteGlove": true,
        "outOfBoxExperienceSettings": {
            "hidePrivacySettings": true,
            "hideEULA": true,
            "userType": "standard",
            "deviceUsageType": "singleUser",
            "skipKeyboardSelectionPage": false,
            "hideEscapeLink": true
        }
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = send(app, Method::POST, PROFILES, token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn profiles_are_created_read_patched_and_deleted_with_both_property_names() {
    let app = spawn_app().await;
    let token = app.user_token().await;

    let created = create(&app, &token, module_profile("Sales")).await;
    assert_eq!(created["@odata.context"], format!("{CONTEXT}/$entity"));
    assert_eq!(created["@odata.type"], AZURE_AD);
    let id = created["id"].as_str().unwrap().to_owned();
    // Every renamed property under both names, with one value.
    assert_eq!((created["language"].as_str(), created["locale"].as_str()), (Some("en-US"), Some("en-US")));
    assert_eq!(
        (created["extractHardwareHash"].as_bool(), created["hardwareHashExtractionEnabled"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (created["enableWhiteGlove"].as_bool(), created["preprovisioningAllowed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        created["outOfBoxExperienceSetting"],
        json!({
            "privacySettingsHidden": true, "eulaHidden": true, "userType": "standard",
            "deviceUsageType": "singleUser", "keyboardSelectionPageSkipped": false, "escapeLinkHidden": true
        })
    );
    assert_eq!(created["outOfBoxExperienceSettings"]["hideEULA"], true);
    assert_eq!(created["roleScopeTagIds"], json!(["0"]));
    assert_eq!(created["managementServiceAppId"], "");
    assert_eq!(created["enrollmentStatusScreenSettings"], Value::Null);
    assert!(created.get("hybridAzureADJoinSkipConnectivityCheck").is_none(), "an Active Directory property");
    assert_eq!(created["createdDateTime"], created["lastModifiedDateTime"]);

    // The Microsoft.Graph SDK's body: current names, the type without its '#'.
    let hybrid = create(
        &app,
        &token,
        json!({
            "@odata.type": "microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile",
            "displayName": "Hybrid",
            "locale": "fr-FR",
            "hardwareHashExtractionEnabled": false,
            "preprovisioningAllowed": false,
            "roleScopeTagIds": [],
            "hybridAzureADJoinSkipConnectivityCheck": true,
            "outOfBoxExperienceSetting": { "deviceUsageType": "shared", "userType": "administrator", "eulaHidden": false }
        }),
    )
    .await;
    assert_eq!(hybrid["@odata.type"], ACTIVE_DIRECTORY);
    assert_eq!(hybrid["hybridAzureADJoinSkipConnectivityCheck"], true);
    assert_eq!(hybrid["language"], "fr-FR");
    assert_eq!(hybrid["outOfBoxExperienceSettings"]["deviceUsageType"], "shared");
    assert_eq!(hybrid["roleScopeTagIds"], json!(["0"]), "an empty list is the Default tag");

    let got = app.get_json(&format!("{PROFILES}/{id}"), Some(&token)).await;
    assert_eq!(got, created);
    let selected = app.get_json(&format!("{PROFILES}/{id}?$select=displayName"), Some(&token)).await;
    assert_eq!(
        selected,
        json!({
            "@odata.context": format!("{CONTEXT}(displayName)/$entity"),
            "@odata.type": AZURE_AD, "id": id, "displayName": "Sales"
        })
    );

    // CIPP's list; then paging with an absolute nextLink.
    let list = app.get_json(&format!("{PROFILES}?$top=999&$expand=assignments"), Some(&token)).await;
    assert_eq!(list["@odata.context"], CONTEXT);
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    assert!(list["value"].as_array().unwrap().iter().all(|p| p["assignments"] == json!([])), "{list}");
    let first = app.get_json(&format!("{PROFILES}?$top=1"), Some(&token)).await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}{PROFILES}?", app.base_url)), "{next}");
    let second = app.get_json(&next[app.base_url.len()..], Some(&token)).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert_ne!(second["value"][0]["id"], first["value"][0]["id"]);
    let by_name = app.get_json(&format!("{PROFILES}?$filter=displayName eq 'hybrid'"), Some(&token)).await;
    assert_eq!(by_name["value"][0]["id"], hybrid["id"], "Microsoft365DSC's lookup by name");

    // Set-AutopilotProfile: the GET body, changed under the deprecated names, sent back whole
    // with its read-only properties.
    let mut body = got.clone();
    body["displayName"] = json!("Sales EMEA");
    body["outOfBoxExperienceSettings"]["hideEULA"] = json!(false);
    body["enableWhiteGlove"] = json!(false);
    body["hybridAzureADJoinSkipConnectivityCheck"] = json!(false);
    let (status, patched) = send(&app, Method::PATCH, &format!("{PROFILES}/{id}"), &token, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "IntuneCD expects 200: {patched}");
    assert_eq!(patched["displayName"], "Sales EMEA");
    assert_eq!(
        (
            patched["outOfBoxExperienceSetting"]["eulaHidden"].as_bool(),
            patched["outOfBoxExperienceSettings"]["hideEULA"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(
        (patched["preprovisioningAllowed"].as_bool(), patched["enableWhiteGlove"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(patched["createdDateTime"], created["createdDateTime"]);
    assert_eq!(patched["deviceNameTemplate"], "SALES-%SERIAL%", "untouched");
    let (status, _) =
        send(&app, Method::PATCH, &format!("{PROFILES}/{id}"), &token, Some(json!({ "description": "only this" })))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get_json(&format!("{PROFILES}/{id}"), Some(&token)).await["displayName"], "Sales EMEA");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("{PROFILES}/{id}"),
        &token,
        Some(json!({ "@odata.type": ACTIVE_DIRECTORY })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a profile keeps its type: {body}");

    assert_eq!(send(&app, Method::DELETE, &format!("{PROFILES}/{id}"), &token, None).await.0, StatusCode::NO_CONTENT);
    let (status, body) = send(&app, Method::GET, &format!("{PROFILES}/{id}"), &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    assert_eq!(send(&app, Method::DELETE, &format!("{PROFILES}/{id}"), &token, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, Method::GET, &format!("{PROFILES}/not-a-guid"), &token, None).await.0, StatusCode::NOT_FOUND);

    // Graph documents the profiles in beta only.
    let (status, body) =
        send(&app, Method::GET, "/v1.0/deviceManagement/windowsAutopilotDeploymentProfiles", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Resource not found for the segment 'windowsAutopilotDeploymentProfiles'.");
    app.stop().await;
}

#[tokio::test]
async fn invalid_profiles_are_refused_in_intunes_shape() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let with = |change: Value| {
        let mut body = module_profile("Valid");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let cases = [
        (with(json!({ "displayName": "  " })), "displayName is required"),
        (with(json!({ "displayName": "x".repeat(201) })), "at most 200 characters"),
        (with(json!({ "deviceNameTemplate": "CONTOSO-LAPTOP-%SERIAL%" })), "15 characters or less"),
        (with(json!({ "deviceNameTemplate": "PC %SERIAL%" })), "letters, numbers and hyphens"),
        (with(json!({ "deviceNameTemplate": "%RAND:5%" })), "must not contain only numbers"),
        (with(json!({ "deviceNameTemplate": "PC-%NAME%" })), "is not a macro"),
        (with(json!({ "roleScopeTagIds": ["0", "7"] })), "The role scope tag '7' does not exist"),
        (
            with(json!({ "@odata.type": "#microsoft.graph.windowsAutopilotDeploymentProfile" })),
            "is not a type of Windows Autopilot deployment profile",
        ),
    ];
    for (body, wanted) in cases {
        let (status, answer) = send(&app, Method::POST, PROFILES, &token, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "BadRequest");
        let message = intune_message(&answer);
        assert!(message.contains(wanted), "{message} should say {wanted}");
        assert!(message.contains("Operation ID (for customer support)"), "{message}");
    }
    for body in [
        with(json!({ "deviceType": "toaster" })),
        with(json!({ "colour": "red" })),
        json!({ "displayName": "no type" }),
    ] {
        let (status, answer) = send(&app, Method::POST, PROFILES, &token, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    // A custom scope tag is accepted once it exists.
    let (status, tag) = send(
        &app,
        Method::POST,
        "/beta/deviceManagement/roleScopeTags",
        &token,
        Some(json!({ "displayName": "EMEA" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let created = create(&app, &token, with(json!({ "roleScopeTagIds": [tag["id"]] }))).await;
    assert_eq!(created["roleScopeTagIds"], json!([tag["id"]]));

    // A reader may read but not write.
    let reader = app.admin.mint_token(&app.tenant(), "application", &[READ], "work", None).await.unwrap();
    assert_eq!(send(&app, Method::GET, PROFILES, &reader, None).await.0, StatusCode::OK);
    assert_eq!(send(&app, Method::POST, PROFILES, &reader, Some(module_profile("R"))).await.0, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_has_at_most_350_profiles() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    for n in 0..350 {
        let (status, body) = send(&app, Method::POST, PROFILES, &token, Some(module_profile(&format!("P{n}")))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = send(&app, Method::POST, PROFILES, &token, Some(module_profile("One too many"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(intune_message(&body).starts_with("The maximum number of Windows Autopilot deployment profiles (350)"));
    let list = app.get_json(&format!("{PROFILES}?$top=999&$count=true"), Some(&token)).await;
    assert_eq!(list["@odata.count"], 350);
    assert_eq!(list["value"].as_array().unwrap().len(), 350);
    app.stop().await;
}

#[tokio::test]
async fn assignments_keep_the_ids_clients_parse_and_the_tenant_rules() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let first = create(&app, &token, module_profile("First")).await;
    let second = create(&app, &token, module_profile("Second")).await;
    let (first_id, second_id) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let group = uuid::Uuid::new_v4().to_string();
    let assignments = |profile: &str| format!("{PROFILES}/{profile}/assignments");

    // Set-AutopilotProfileAssignedGroup sends the id it built.
    let (status, assigned) = send(
        &app,
        Method::POST,
        &assignments(first_id),
        &token,
        Some(json!({
            "id": format!("{first_id}_{group}_0"),
            "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group }
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{assigned}");
    let assignment_id = format!("{first_id}_{group}_0");
    assert_eq!(
        assigned,
        json!({
            "@odata.context": format!("{CONTEXT}('{first_id}')/assignments/$entity"),
            "id": assignment_id,
            "source": "direct",
            "sourceId": null,
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "deviceAndAppManagementAssignmentFilterId": null,
                "deviceAndAppManagementAssignmentFilterType": "none",
                "groupId": group
            }
        })
    );
    // IntuneCD and Terraform send no id; it is made the same way.
    let other = uuid::Uuid::new_v4().to_string();
    let (status, excluded) = send(
        &app,
        Method::POST,
        &assignments(first_id),
        &token,
        Some(
            json!({ "target": { "@odata.type": "microsoft.graph.exclusionGroupAssignmentTarget", "groupId": other } }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(excluded["id"], format!("{first_id}_{other}_0"));
    let (status, body) = send(
        &app,
        Method::POST,
        &assignments(first_id),
        &token,
        Some(json!({ "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group } })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a second identical assignment: {body}");

    let all_devices = json!({ "target": { "@odata.type": "#microsoft.graph.allDevicesAssignmentTarget" } });
    let (status, all) = send(&app, Method::POST, &assignments(first_id), &token, Some(all_devices.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(all["target"].get("groupId").is_none(), "{all}");
    let (status, body) = send(&app, Method::POST, &assignments(second_id), &token, Some(all_devices)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(intune_message(&body).starts_with("Another Profile 'First' is already assigned to All Devices"), "{body}");

    for bad in [
        json!({}),
        json!({ "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget" } }),
        json!({ "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "not-a-guid" } }),
        json!({ "target": { "@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget" } }),
    ] {
        let (status, body) = send(&app, Method::POST, &assignments(first_id), &token, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let unknown_profile = uuid::Uuid::new_v4();
    let (status, _) = send(
        &app,
        Method::POST,
        &assignments(&unknown_profile.to_string()),
        &token,
        Some(json!({
            "target": { "@odata.type": "#microsoft.graph.allDevicesAssignmentTarget" }
        })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let list = app.get_json(&assignments(first_id), Some(&token)).await;
    assert_eq!(list["@odata.context"], format!("{CONTEXT}('{first_id}')/assignments"));
    assert_eq!(list["value"].as_array().unwrap().len(), 3);
    let one = app.get_json(&format!("{}/{assignment_id}", assignments(first_id)), Some(&token)).await;
    assert_eq!(one["target"]["groupId"], group);
    let expanded = app.get_json(&format!("{PROFILES}/{first_id}?$expand=assignments"), Some(&token)).await;
    assert_eq!(expanded["assignments"].as_array().unwrap().len(), 3);
    assert_eq!(
        send(&app, Method::GET, &format!("{}/{assignment_id}", assignments(second_id)), &token, None).await.0,
        StatusCode::NOT_FOUND
    );

    // IntuneCD reads assignments through $batch and takes the profile's id from the context.
    let r = app
        .raw(Method::POST, "/beta/$batch", Some(&token))
        .json(&json!({ "requests": [{ "id": "1", "method": "GET", "url": format!("deviceManagement/windowsAutopilotDeploymentProfiles/{first_id}/assignments") }] }))
        .send()
        .await
        .unwrap();
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["responses"][0]["body"]["@odata.context"], format!("{CONTEXT}('{first_id}')/assignments"));

    // A profile with assignments stays until they are gone.
    let (status, body) = send(&app, Method::DELETE, &format!("{PROFILES}/{first_id}"), &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(intune_message(&body).contains("Remove its assignments before deleting it"), "{body}");
    for value in list["value"].as_array().unwrap() {
        let path = format!("{}/{}", assignments(first_id), value["id"].as_str().unwrap());
        assert_eq!(send(&app, Method::DELETE, &path, &token, None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(send(&app, Method::DELETE, &path, &token, None).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        send(&app, Method::DELETE, &format!("{PROFILES}/{first_id}"), &token, None).await.0,
        StatusCode::NO_CONTENT
    );
    app.stop().await;
}

/// Writes a device's assignment state directly, as the assignment engine would, so that the
/// device can name an intended profile other than its assigned one.
async fn set_device_profiles(app: &TestApp, device: &str, intended: &str, assigned: &str) {
    sqlx::any::install_default_drivers();
    let pool: sqlx::AnyPool =
        sqlx::pool::PoolOptions::new().max_connections(1).connect(&app.state.config().db).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(
        "INSERT INTO device_profile_states (tenant_id, device_id, intended_profile_id, intended_at,
             assigned_profile_id, profile_assigned_at, status)
         SELECT tenant_id, id, $1, 0, $2, 0, 'assignedUnkownSyncState' FROM autopilot_devices WHERE id = $3"
            .to_owned(),
    ))
    .bind(intended.to_owned())
    .bind(assigned.to_owned())
    .bind(device.to_owned())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn devices_show_their_profiles_inline_and_profiles_their_devices() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    app.admin.add_registrations(&app.tenant(), &[registration("PR-1"), registration("PR-2")]).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let token = app.user_token().await;
    let devices_path = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
    let list = app.get_json(&format!("{devices_path}?$orderby=serialNumber"), Some(&token)).await;
    let (assigned, bare) = (list["value"][0]["id"].as_str().unwrap(), list["value"][1]["id"].as_str().unwrap());
    let profile = create(&app, &token, module_profile("Sales")).await;
    let intended = create(&app, &token, module_profile("Next")).await;
    let (profile_id, intended_id) = (profile["id"].as_str().unwrap(), intended["id"].as_str().unwrap());
    set_device_profiles(&app, assigned, intended_id, profile_id).await;

    // Get-AutopilotDevice -Expand and Get-WindowsAutopilotInfo -Assign.
    let device = app
        .get_json(
            &format!("{devices_path}/{assigned}?$expand=deploymentProfile,intendedDeploymentProfile"),
            Some(&token),
        )
        .await;
    let mut inline = profile.clone();
    inline.as_object_mut().unwrap().remove("@odata.context");
    assert_eq!(device["deploymentProfile"], inline);
    assert_eq!(device["intendedDeploymentProfile"]["id"], intended_id);
    let device = app.get_json(&format!("{devices_path}/{bare}?$expand=deploymentProfile"), Some(&token)).await;
    assert_eq!(device["deploymentProfile"], Value::Null);
    assert!(device.get("intendedDeploymentProfile").is_none(), "only what was asked for");
    let page = app
        .get_json(
            &format!("{devices_path}?$expand=intendedDeploymentProfile&$orderby=serialNumber&$top=5"),
            Some(&token),
        )
        .await;
    assert_eq!(page["value"][0]["intendedDeploymentProfile"]["displayName"], "Next");
    assert_eq!(page["value"][1]["intendedDeploymentProfile"], Value::Null);
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{bare}?$expand=deploymentProfile"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "v1.0 has no such navigation property");

    let nav = app.get_json(&format!("{devices_path}/{assigned}/deploymentProfile"), Some(&token)).await;
    assert_eq!(
        nav["@odata.context"],
        format!(
            "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotDeviceIdentities('{assigned}')/deploymentProfile/$entity"
        )
    );
    assert_eq!(nav["id"], profile_id);
    let nav = app.get_json(&format!("{devices_path}/{assigned}/intendedDeploymentProfile"), Some(&token)).await;
    assert_eq!(nav["id"], intended_id);
    assert_eq!(
        send(&app, Method::GET, &format!("{devices_path}/{bare}/deploymentProfile"), &token, None).await.0,
        StatusCode::NOT_FOUND
    );

    // Get-AutopilotProfileAssignedDevice.
    let devices = app.get_json(&format!("{PROFILES}/{profile_id}/assignedDevices"), Some(&token)).await;
    assert_eq!(devices["@odata.context"], format!("{CONTEXT}('{profile_id}')/assignedDevices"));
    assert_eq!(devices["value"].as_array().unwrap().len(), 1);
    assert_eq!(devices["value"][0]["id"], assigned);
    assert_eq!(devices["value"][0]["serialNumber"], "PR-1");
    let none = app.get_json(&format!("{PROFILES}/{intended_id}/assignedDevices"), Some(&token)).await;
    assert_eq!(none["value"], json!([]));
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{PROFILES}/{profile_id}/assignedDevices?$filter=serialNumber eq 'x'"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}
