//! Entra groups over HTTP (v1.0 and beta): create, list with `$filter` as the Autopilot tools
//! send it, get with IntuneCD's `$select`, update and delete, with Entra's 400s and 404s;
//! `members/$ref` as Get-WindowsAutopilotInfo `-AddToGroup` sends it; dynamic device groups that
//! follow their rule after `--group-processing-delay`, which a clock advance skips; the
//! permissions.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const IDENTITIES: &str = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";

fn security_group(name: &str) -> Value {
    json!({ "displayName": name, "mailEnabled": false, "mailNickname": name.replace(' ', ""), "securityEnabled": true })
}

fn dynamic_group(name: &str, rule: &str) -> Value {
    let mut group = security_group(name);
    group["groupTypes"] = json!(["DynamicMembership"]);
    group["membershipRule"] = json!(rule);
    group["membershipRuleProcessingState"] = json!("On");
    group
}

async fn create(app: &TestApp, token: &str, version: &str, body: Value) -> Value {
    let (status, created) = send_with(app, Method::POST, &format!("/{version}/groups"), token, false, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The object id of the Entra device with this serial number.
async fn object_id(app: &TestApp, token: &str, serial: &str) -> String {
    let found = app.get_json(&format!("/beta/devices?$filter=displayName eq '{serial}'"), Some(token)).await;
    found["value"][0]["id"].as_str().unwrap().to_owned()
}

async fn member_names(app: &TestApp, token: &str, group: &str) -> Vec<String> {
    let members = app.get_json(&format!("/v1.0/groups/{group}/members"), Some(token)).await;
    let mut names: Vec<String> =
        members["value"].as_array().unwrap().iter().map(|m| m["displayName"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

/// Polls the group's members until they are `want`, for at most a few seconds (the worker runs
/// the evaluation once it is due).
async fn wait_for_members(app: &TestApp, token: &str, group: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = member_names(app, token, group).await;
        if names == want {
            return;
        }
        assert!(Instant::now() < deadline, "members {names:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn groups_are_created_listed_read_updated_and_deleted() {
    let app = spawn_app().await;
    let token = app.app_token().await;
    let created = create(&app, &token, "v1.0", security_group("Autopilot Devices")).await;
    assert_eq!(created["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#groups/$entity");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&created["displayName"], &created["securityEnabled"], &created["mailEnabled"], &created["groupTypes"]),
        (&json!("Autopilot Devices"), &json!(true), &json!(false), &json!([]))
    );
    assert_eq!((&created["membershipRule"], &created["mail"]), (&Value::Null, &Value::Null));
    assert!(created["securityIdentifier"].as_str().unwrap().starts_with("S-1-12-1-"), "{created}");
    assert!(created["createdDateTime"].as_str().unwrap().ends_with('Z'));
    create(&app, &token, "beta", security_group("Kiosks")).await;

    // Get-WindowsAutopilotInfo's and IntuneCD's lookups, ignoring case as Entra does.
    let found = app.get_json("/beta/groups?$filter=displayName eq 'autopilot devices'", Some(&token)).await;
    assert_eq!(found["@odata.context"], "https://graph.microsoft.com/beta/$metadata#groups");
    assert_eq!(found["value"].as_array().unwrap().len(), 1);
    assert_eq!(found["value"][0]["id"], id);
    let by_id = app.get_json(&format!("/beta/groups?$filter=id eq '{id}'"), Some(&token)).await;
    assert_eq!(by_id["value"].as_array().unwrap().len(), 1);
    let by_nickname = app.get_json("/v1.0/groups?$filter=mailNickname eq 'KIOSKS'", Some(&token)).await;
    assert_eq!(by_nickname["value"][0]["displayName"], "Kiosks");
    let selected = app
        .get_json(&format!("/beta/groups/{id}?$select=displayName,id,groupTypes,membershipRule"), Some(&token))
        .await;
    assert_eq!(
        selected["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#groups(displayName,id,groupTypes,membershipRule)/$entity"
    );
    assert_eq!(selected.as_object().unwrap().len(), 5, "{selected}");

    // Paging with an absolute nextLink; $count only with ConsistencyLevel: eventual.
    let first = app.get_json("/v1.0/groups?$top=1", Some(&token)).await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/v1.0/groups?", app.base_url)), "{next}");
    let second = app.get_json(next.strip_prefix(&app.base_url).unwrap(), Some(&token)).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert!(second.get("@odata.nextLink").is_none());
    let (status, body) = send_with(&app, Method::GET, "/v1.0/groups?$count=true", &token, false, None).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (StatusCode::BAD_REQUEST, &json!("$count is not currently supported."))
    );
    let (status, body) = send_with(&app, Method::GET, "/v1.0/groups?$count=true", &token, true, None).await;
    assert_eq!((status, &body["@odata.count"]), (StatusCode::OK, &json!(2)));
    let (status, body) =
        send_with(&app, Method::GET, "/v1.0/groups?$search=\"displayName:auto\"", &token, true, None).await;
    assert_eq!((status, body["value"].as_array().unwrap().len()), (StatusCode::OK, 1));

    let path = format!("/v1.0/groups/{id}");
    let (status, body) =
        send_with(&app, Method::PATCH, &path, &token, false, Some(json!({ "description": "Every Autopilot device" })))
            .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(app.get_json(&path, Some(&token)).await["description"], "Every Autopilot device");
    assert_eq!(send_with(&app, Method::DELETE, &path, &token, false, None).await.0, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE, Method::PATCH] {
        let (status, body) = send_with(&app, method.clone(), &path, &token, false, Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
        assert_eq!(
            body["error"]["message"],
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present.")
        );
    }
    let (status, _) = send_with(&app, Method::GET, "/v1.0/groups/not-a-guid", &token, false, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn writes_entra_refuses_are_its_400s() {
    let app = spawn_app().await;
    let token = app.app_token().await;
    let refused = |body: Value| {
        let app = &app;
        let token = &token;
        async move {
            let (status, answer) = send_with(app, Method::POST, "/v1.0/groups", token, false, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(answer["error"]["code"], "Request_BadRequest", "{answer}");
            answer["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    for property in ["displayName", "mailEnabled", "mailNickname", "securityEnabled"] {
        let mut body = security_group("G");
        body.as_object_mut().unwrap().remove(property);
        assert_eq!(refused(body).await, format!("A value is required for property '{property}' of resource 'Group'."));
    }
    let mut blank = security_group("G");
    blank["displayName"] = json!(" ");
    assert_eq!(refused(blank).await, "Invalid value specified for property 'displayName' of resource 'Group'.");
    let mut bad_nickname = security_group("G");
    bad_nickname["mailNickname"] = json!("a b@c");
    assert_eq!(refused(bad_nickname).await, "Invalid value specified for property 'mailNickname' of resource 'Group'.");
    let mut no_rule = dynamic_group("D", "x");
    no_rule.as_object_mut().unwrap().remove("membershipRule");
    assert!(refused(no_rule).await.contains("membershipRule property is required"));
    let message = refused(dynamic_group("D", r#"user.department -eq "Sales""#)).await;
    assert!(message.starts_with("Invalid membershipRule: Only device rules"), "{message}");
    let message = refused(dynamic_group("D", r#"device.deviceModel -eq "X""#)).await;
    assert!(message.contains("not supported"), "{message}");
    let mut paused = dynamic_group("D", r#"device.displayName -eq "x""#);
    paused["membershipRuleProcessingState"] = json!("Sometimes");
    assert!(refused(paused).await.contains("'membershipRuleProcessingState'"));
    let mut unified = security_group("U");
    unified["groupTypes"] = json!(["Unified"]);
    assert!(refused(unified).await.contains("'groupTypes'"));
    let mut mail = security_group("M");
    mail["mailEnabled"] = json!(true);
    assert!(refused(mail).await.contains("Only security groups"));
    let mut rule_on_assigned = security_group("R");
    rule_on_assigned["membershipRule"] = json!(r#"device.displayName -eq "x""#);
    assert!(refused(rule_on_assigned).await.contains("only when groupTypes contains"));

    let created = create(&app, &token, "beta", dynamic_group("D", r#"device.displayName -eq "x""#)).await;
    let path = format!("/beta/groups/{}", created["id"].as_str().unwrap());
    let deep = format!("{}device.displayName -eq \"x\"{}", "(".repeat(100), ")".repeat(100));
    let (status, body) =
        send_with(&app, Method::PATCH, &path, &token, false, Some(json!({ "membershipRule": deep }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("levels deep"), "{body}");
    assert_eq!(app.get_json(&path, Some(&token)).await["membershipRule"], r#"device.displayName -eq "x""#);
    app.stop().await;
}

/// `members@odata.bind` on a create and an update adds the devices with the write, all or
/// nothing, and the assignment engine hears of it.
#[tokio::test]
async fn members_bound_in_the_body_are_added_with_the_write() {
    let app = synced_app(&["B-1", "B-2", "B-3"]).await;
    let token = app.app_token().await;
    let (first, second, third) = (
        object_id(&app, &token, "B-1").await,
        object_id(&app, &token, "B-2").await,
        object_id(&app, &token, "B-3").await,
    );
    let bind = |ids: &[&str]| -> Value {
        ids.iter().map(|id| json!(format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"))).collect()
    };

    let mut body = security_group("Bound");
    body["members@odata.bind"] = bind(&[&first, &second]);
    body["owners@odata.bind"] = json!(["https://graph.microsoft.com/v1.0/users/26be1845-4119-4801-a799-aea79d09f1a2"]);
    let group = create(&app, &token, "v1.0", body).await["id"].as_str().unwrap().to_owned();
    assert_eq!(member_names(&app, &token, &group).await, ["B-1", "B-2"]);

    // A refused create leaves no group.
    let unknown = uuid::Uuid::new_v4().to_string();
    for (members, status) in [
        (bind(&[&third, &unknown]), StatusCode::NOT_FOUND),
        (bind(&[&third, &third]), StatusCode::BAD_REQUEST),
        (
            json!(["https://graph.microsoft.com/v1.0/users/26be1845-4119-4801-a799-aea79d09f1a2"]),
            StatusCode::BAD_REQUEST,
        ),
        (bind(&vec![third.as_str(); 21]), StatusCode::BAD_REQUEST),
    ] {
        let mut body = security_group("Refused");
        body["members@odata.bind"] = members;
        let (got, answer) = send(&app, Method::POST, "/v1.0/groups", &token, Some(body)).await;
        assert_eq!(got, status, "{answer}");
    }
    let refused = app.get_json("/v1.0/groups?$filter=displayName eq 'Refused'", Some(&token)).await;
    assert_eq!(refused["value"], json!([]), "no group was created");
    let mut body = dynamic_group("Dynamic", r#"device.displayName -eq "B-1""#);
    body["members@odata.bind"] = bind(&[&third]);
    let (status, answer) = send(&app, Method::POST, "/v1.0/groups", &token, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // An update adds the new members, or, refused, changes nothing at all.
    let path = format!("/v1.0/groups/{group}");
    let patch = json!({ "description": "changed", "members@odata.bind": bind(&[&third, &first]) });
    let (status, answer) = send(&app, Method::PATCH, &path, &token, Some(patch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    assert_eq!(app.get_json(&path, Some(&token)).await["description"], Value::Null);
    assert_eq!(member_names(&app, &token, &group).await, ["B-1", "B-2"]);
    let patch = json!({ "description": "changed", "members@odata.bind": bind(&[&third]) });
    let (status, answer) = send(&app, Method::PATCH, &path, &token, Some(patch)).await;
    assert_eq!((status, answer), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(app.get_json(&path, Some(&token)).await["description"], "changed");
    assert_eq!(member_names(&app, &token, &group).await, ["B-1", "B-2", "B-3"]);
    app.stop().await;
}

#[tokio::test]
async fn members_are_added_by_reference_and_removed() {
    let app = synced_app(&["M-1", "M-2", "M-3"]).await;
    let token = app.app_token().await;
    let group =
        create(&app, &token, "beta", security_group("Autopilot Devices")).await["id"].as_str().unwrap().to_owned();
    let refs = format!("/beta/groups/{group}/members/$ref");

    // Get-WindowsAutopilotInfo -AddToGroup: the device by deviceId, then the reference.
    let identities = app.get_json(IDENTITIES, Some(&token)).await;
    let aad = identities["value"][0]["azureActiveDirectoryDeviceId"].as_str().unwrap().to_owned();
    let device = app.get_json(&format!("/beta/devices?$filter=deviceId eq '{aad}'"), Some(&token)).await;
    let first = device["value"][0]["id"].as_str().unwrap().to_owned();
    let reference = json!({ "@odata.id": format!("https://graph.microsoft.com/beta/directoryObjects/{first}") });
    let (status, body) = send_with(&app, Method::POST, &refs, &token, false, Some(reference.clone())).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = send_with(&app, Method::POST, &refs, &token, false, Some(reference)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    // The other forms of the reference.
    let second = object_id(&app, &token, "M-2").await;
    let third = object_id(&app, &token, "M-3").await;
    for (object, reference) in [
        (&second, format!("https://graph.microsoft.com/v1.0/devices/{second}")),
        (&third, format!("directoryObjects/{third}")),
    ] {
        let (status, body) =
            send_with(&app, Method::POST, &refs, &token, false, Some(json!({ "@odata.id": reference }))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{object}: {body}");
    }
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = send_with(
        &app,
        Method::POST,
        &refs,
        &token,
        false,
        Some(json!({ "@odata.id": format!("https://graph.microsoft.com/beta/directoryObjects/{unknown}") })),
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("Request_ResourceNotFound")));
    let (status, _) = send_with(
        &app,
        Method::POST,
        &refs,
        &token,
        false,
        Some(json!({ "@odata.id": "https://graph.microsoft.com/beta/users/x" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send_with(
        &app,
        Method::POST,
        &format!("/beta/groups/{unknown}/members/$ref"),
        &token,
        false,
        Some(json!({ "@odata.id": format!("directoryObjects/{first}") })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The members are directory objects typed as devices, paged by an absolute nextLink.
    let page = app.get_json(&format!("/v1.0/groups/{group}/members?$top=2"), Some(&token)).await;
    assert_eq!(page["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#directoryObjects");
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    for member in page["value"].as_array().unwrap() {
        assert_eq!(member["@odata.type"], "#microsoft.graph.device", "{member}");
        assert_eq!(member["operatingSystem"], "Windows");
    }
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/v1.0/groups/{group}/members?", app.base_url)), "{next}");
    let rest = app.get_json(next.strip_prefix(&app.base_url).unwrap(), Some(&token)).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 1);
    assert_eq!(member_names(&app, &token, &group).await, ["M-1", "M-2", "M-3"]);
    let selected = app.get_json(&format!("/beta/groups/{group}/members?$select=displayName"), Some(&token)).await;
    assert_eq!(selected["value"][0].as_object().unwrap().len(), 3, "{selected}");

    let remove = format!("/beta/groups/{group}/members/{second}/$ref");
    assert_eq!(send_with(&app, Method::DELETE, &remove, &token, false, None).await.0, StatusCode::NO_CONTENT);
    let (status, body) = send_with(&app, Method::DELETE, &remove, &token, false, None).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("Request_ResourceNotFound")));
    // A deleted device leaves the group.
    assert_eq!(
        send_with(&app, Method::DELETE, &format!("/v1.0/devices/{third}"), &token, false, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(member_names(&app, &token, &group).await, ["M-1"]);
    let (status, _) =
        send_with(&app, Method::GET, &format!("/v1.0/groups/{unknown}/members"), &token, false, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A dynamic group's members are its rule's.
    let dynamic = create(&app, &token, "v1.0", dynamic_group("D", r#"device.displayName -eq "M-1""#)).await;
    let refs = format!("/v1.0/groups/{}/members/$ref", dynamic["id"].as_str().unwrap());
    let (status, body) = send_with(
        &app,
        Method::POST,
        &refs,
        &token,
        false,
        Some(json!({ "@odata.id": format!("directoryObjects/{first}") })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("dynamic membership"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn dynamic_groups_follow_their_rule_after_the_processing_delay() {
    let app = synced_app(&["D-1", "D-2", "D-3"]).await;
    let token = app.user_token().await;
    let tag = |serial: &'static str, tag: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            let found = app.get_json(&format!("{IDENTITIES}?$filter=serialNumber eq '{serial}'"), Some(token)).await;
            let id = found["value"][0]["id"].as_str().unwrap().to_owned();
            let path = format!("{IDENTITIES}/{id}/updateDeviceProperties");
            let (status, _) = send_with(app, Method::POST, &path, token, false, Some(json!({ "groupTag": tag }))).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
    };
    tag("D-1", "Sales").await;
    let rule = r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:sales"))"#;
    let group = create(&app, &token, "beta", dynamic_group("Sales devices", rule)).await;
    assert_eq!((&group["membershipRule"], &group["membershipRuleProcessingState"]), (&json!(rule), &json!("On")));
    let id = group["id"].as_str().unwrap().to_owned();
    let all = create(
        &app,
        &token,
        "v1.0",
        dynamic_group("All Autopilot", r#"device.devicePhysicalIds -any (_ -startsWith "[ZTDId]")"#),
    )
    .await;
    let all = all["id"].as_str().unwrap().to_owned();

    // Entra takes its time: nothing until the processing delay has passed on the Clock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(member_names(&app, &token, &id).await.is_empty());
    app.admin.advance_clock(300.0).await.unwrap();
    wait_for_members(&app, &token, &id, &["D-1"]).await;
    wait_for_members(&app, &token, &all, &["D-1", "D-2", "D-3"]).await;

    // A group tag change moves [OrderId]; the group follows after the delay.
    tag("D-2", "SALES").await;
    tag("D-1", "Kiosk").await;
    app.admin.advance_clock(300.0).await.unwrap();
    wait_for_members(&app, &token, &id, &["D-2"]).await;

    // A rule change; then a paused group keeps its members whatever changes.
    let path = format!("/v1.0/groups/{id}");
    let patch = json!({ "membershipRule": r#"device.displayName -ne "D-2" -and -not (device.displayName -eq "D-3")"# });
    assert_eq!(send_with(&app, Method::PATCH, &path, &token, false, Some(patch)).await.0, StatusCode::NO_CONTENT);
    app.admin.advance_clock(300.0).await.unwrap();
    wait_for_members(&app, &token, &id, &["D-1"]).await;
    let paused = json!({ "membershipRuleProcessingState": "Paused" });
    assert_eq!(send_with(&app, Method::PATCH, &path, &token, false, Some(paused)).await.0, StatusCode::NO_CONTENT);
    let everything = json!({ "membershipRule": r#"device.accountEnabled -eq true"# });
    assert_eq!(send_with(&app, Method::PATCH, &path, &token, false, Some(everything)).await.0, StatusCode::NO_CONTENT);
    app.admin.advance_clock(300.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(member_names(&app, &token, &id).await, ["D-1"], "paused");
    let on = json!({ "membershipRuleProcessingState": "On" });
    assert_eq!(send_with(&app, Method::PATCH, &path, &token, false, Some(on)).await.0, StatusCode::NO_CONTENT);
    app.admin.advance_clock(300.0).await.unwrap();
    wait_for_members(&app, &token, &id, &["D-1", "D-2", "D-3"]).await;
    app.stop().await;
}

#[tokio::test]
async fn groups_take_the_group_and_directory_permissions() {
    let app = synced_app(&["P-1"]).await;
    let tenant = app.tenant();
    let mint = |kind: &'static str, permission: &'static str| {
        let admin = app.admin.clone();
        let tenant = tenant.clone();
        async move { admin.mint_token(&tenant, kind, &[permission], "work", None).await.unwrap() }
    };
    let creator = mint("application", "Group.Create").await;
    let group = create(&app, &creator, "v1.0", security_group("G")).await["id"].as_str().unwrap().to_owned();
    let path = format!("/v1.0/groups/{group}");
    let user_creator = mint("delegated", "Group.Create").await;
    let (status, _) =
        send_with(&app, Method::POST, "/v1.0/groups", &user_creator, false, Some(security_group("H"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "Group.Create is an application permission");
    assert_eq!(send_with(&app, Method::DELETE, &path, &creator, false, None).await.0, StatusCode::FORBIDDEN);

    let reader = mint("delegated", "GroupMember.Read.All").await;
    assert_eq!(send_with(&app, Method::GET, &path, &reader, false, None).await.0, StatusCode::OK);
    assert_eq!(send_with(&app, Method::GET, &format!("{path}/members"), &reader, false, None).await.0, StatusCode::OK);
    let device_reader = mint("application", "Device.Read.All").await;
    assert_eq!(
        send_with(&app, Method::GET, "/v1.0/groups", &device_reader, false, None).await.0,
        StatusCode::FORBIDDEN
    );

    let token = app.app_token().await;
    let object = object_id(&app, &token, "P-1").await;
    let reference = json!({ "@odata.id": format!("directoryObjects/{object}") });
    let refs = format!("{path}/members/$ref");
    assert_eq!(
        send_with(&app, Method::POST, &refs, &reader, false, Some(reference.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    let member_writer = mint("application", "GroupMember.ReadWrite.All").await;
    assert_eq!(
        send_with(&app, Method::POST, &refs, &member_writer, false, Some(reference)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send_with(&app, Method::PATCH, &path, &member_writer, false, Some(json!({ "description": "x" }))).await.0,
        StatusCode::FORBIDDEN
    );
    let directory = mint("delegated", "Directory.ReadWrite.All").await;
    assert_eq!(send_with(&app, Method::DELETE, &path, &directory, false, None).await.0, StatusCode::NO_CONTENT);
    app.stop().await;
}

/// A device's `memberOf`: the assigned and the dynamic groups it is a member of, each rendered
/// as `GET /groups/{id}` renders it and typed `#microsoft.graph.group`, paged by an absolute
/// nextLink; a device of no group has an empty page, and an unknown device is the 404 of
/// `GET /devices/{id}`.
#[tokio::test]
async fn a_device_lists_its_groups_as_member_of() {
    let app = synced_app(&["G-1", "G-2"]).await;
    let token = app.app_token().await;
    let (member, lonely) = (object_id(&app, &token, "G-1").await, object_id(&app, &token, "G-2").await);
    let assigned = create(&app, &token, "v1.0", security_group("Assigned devices")).await;
    let assigned_id = assigned["id"].as_str().unwrap().to_owned();
    let refs = format!("/v1.0/groups/{assigned_id}/members/$ref");
    let reference = json!({ "@odata.id": format!("directoryObjects/{member}") });
    assert_eq!(send_with(&app, Method::POST, &refs, &token, false, Some(reference)).await.0, StatusCode::NO_CONTENT);
    let dynamic =
        create(&app, &token, "beta", dynamic_group("Dynamic devices", r#"device.displayName -eq "G-1""#)).await;
    let dynamic_id = dynamic["id"].as_str().unwrap().to_owned();
    app.admin.advance_clock(300.0).await.unwrap();
    wait_for_members(&app, &token, &dynamic_id, &["G-1"]).await;

    let page = app.get_json(&format!("/v1.0/devices/{member}/memberOf"), Some(&token)).await;
    assert_eq!(page["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#directoryObjects");
    let groups = page["value"].as_array().unwrap();
    let mut names: Vec<&str> = groups.iter().map(|g| g["displayName"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["Assigned devices", "Dynamic devices"]);
    for group in groups {
        assert_eq!(group["@odata.type"], "#microsoft.graph.group", "{group}");
        let id = group["id"].as_str().unwrap();
        let mut alone = app.get_json(&format!("/v1.0/groups/{id}"), Some(&token)).await;
        alone.as_object_mut().unwrap().remove("@odata.context");
        alone["@odata.type"] = json!("#microsoft.graph.group");
        assert_eq!(group, &alone, "the group as GET /groups/{{id}} renders it");
    }
    let selected = app.get_json(&format!("/beta/devices/{member}/memberOf?$select=displayName"), Some(&token)).await;
    assert_eq!(selected["value"][0].as_object().unwrap().len(), 3, "{selected}");

    // Paging with $top=1: the nextLink is absolute and leads to the other group.
    let first = app.get_json(&format!("/beta/devices/{member}/memberOf?$top=1"), Some(&token)).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 1);
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/beta/devices/{member}/memberOf?", app.base_url)), "{next}");
    let rest = app.get_json(next.strip_prefix(&app.base_url).unwrap(), Some(&token)).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 1);
    assert_ne!(rest["value"][0]["id"], first["value"][0]["id"]);
    assert!(rest.get("@odata.nextLink").is_none(), "{rest}");

    let empty = app.get_json(&format!("/v1.0/devices/{lonely}/memberOf"), Some(&token)).await;
    assert_eq!(empty["value"], json!([]));
    assert!(empty.get("@odata.nextLink").is_none());

    let unknown = uuid::Uuid::new_v4();
    let (status, body) =
        send_with(&app, Method::GET, &format!("/v1.0/devices/{unknown}/memberOf"), &token, false, None).await;
    let (device_status, device_body) =
        send_with(&app, Method::GET, &format!("/v1.0/devices/{unknown}"), &token, false, None).await;
    assert_eq!((status, device_status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        (&body["error"]["code"], &body["error"]["message"]),
        (&device_body["error"]["code"], &device_body["error"]["message"])
    );
    app.stop().await;
}
