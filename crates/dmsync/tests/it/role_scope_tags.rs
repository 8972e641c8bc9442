//! Role scope tags over HTTP (beta only): the built-in Default tag of every tenant, Intune's
//! numbered ids, create (200, as Intune answers) with the docs' own example body, PATCH and
//! DELETE, the refusals in Intune's error shape, list options and paging, the permissions, and
//! the development identities' access.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const TAGS: &str = "/beta/deviceManagement/roleScopeTags";
const RBAC_RW: &str = "DeviceManagementRBAC.ReadWrite.All";
const RBAC_READ: &str = "DeviceManagementRBAC.Read.All";
const CONFIGURATION_RW: &str = "DeviceManagementConfiguration.ReadWrite.All";

#[tokio::test]
async fn scope_tags_are_numbered_with_a_default_that_takes_no_change() {
    let app = spawn_app().await;
    let token = app.user_token().await;

    let (status, list) = send(&app, Method::GET, TAGS, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["@odata.context"], "https://graph.microsoft.com/beta/$metadata#deviceManagement/roleScopeTags");
    assert_eq!(list["value"], json!([{ "id": "0", "displayName": "Default", "description": "", "isBuiltIn": true }]));

    // The docs' example body, read-only isBuiltIn included.
    let example = json!({
        "@odata.type": "#microsoft.graph.roleScopeTag",
        "displayName": "Display Name value",
        "description": "Description value",
        "isBuiltIn": true,
    });
    let (status, created) = send(&app, Method::POST, TAGS, &token, Some(example)).await;
    assert_eq!(status, StatusCode::OK, "Intune answers a create 200: {created}");
    assert_eq!(
        created["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/roleScopeTags/$entity"
    );
    assert_eq!((created["id"].as_str(), created["isBuiltIn"].as_bool()), (Some("1"), Some(false)), "{created}");
    assert_eq!(created["description"], "Description value");
    let (_, sales) = send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": "Sales" }))).await;
    assert_eq!((sales["id"].as_str(), sales["description"].as_str()), (Some("2"), Some("")));

    let (status, body) = send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": "sales" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "BadRequest");
    assert!(intune_message(&body).starts_with("A scope tag named 'sales' already exists - Operation ID"), "{body}");
    for missing in [json!({ "description": "no name" }), json!({ "displayName": "  " })] {
        let (status, body) = send(&app, Method::POST, TAGS, &token, Some(missing)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, _) = send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": "x", "color": "red" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown property");

    let (status, patched) =
        send(&app, Method::PATCH, &format!("{TAGS}/2"), &token, Some(json!({ "description": "Sales devices" }))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        patched,
        json!({
            "@odata.context": "https://graph.microsoft.com/beta/$metadata#deviceManagement/roleScopeTags/$entity",
            "id": "2", "displayName": "Sales", "description": "Sales devices", "isBuiltIn": false,
        })
    );
    let (status, body) =
        send(&app, Method::PATCH, &format!("{TAGS}/2"), &token, Some(json!({ "displayName": "DISPLAY NAME VALUE" })))
            .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("BadRequest")));

    // The Default tag read back and sent back unchanged is fine; any change is refused.
    let (status, default) = send(&app, Method::GET, &format!("{TAGS}/0"), &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let unchanged = json!({ "id": "0", "displayName": "Default", "description": "", "isBuiltIn": true });
    let (status, _) = send(&app, Method::PATCH, &format!("{TAGS}/0"), &token, Some(unchanged)).await;
    assert_eq!(status, StatusCode::OK);
    for change in [json!({ "displayName": "Everyone" }), json!({ "description": "mine" })] {
        let (status, body) = send(&app, Method::PATCH, &format!("{TAGS}/0"), &token, Some(change)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(intune_message(&body).starts_with("The built-in scope tag 'Default' cannot be modified or deleted"));
    }
    let (status, body) = send(&app, Method::DELETE, &format!("{TAGS}/0"), &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(send(&app, Method::GET, &format!("{TAGS}/0"), &token, None).await.1, default);

    let (status, body) = send(&app, Method::DELETE, &format!("{TAGS}/1"), &token, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for path in [format!("{TAGS}/1"), format!("{TAGS}/01"), format!("{TAGS}/x"), format!("{TAGS}/99")] {
        let (status, body) = send(&app, Method::GET, &path, &token, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("ResourceNotFound")),
            "{path}"
        );
    }
    assert_eq!(send(&app, Method::DELETE, &format!("{TAGS}/1"), &token, None).await.0, StatusCode::NOT_FOUND);
    let (_, again) = send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": "Display Name value" }))).await;
    assert_eq!(again["id"], "3", "a deleted tag's id is not given again");

    // Graph has no v1.0 roleScopeTags.
    let (status, body) = send(&app, Method::GET, "/v1.0/deviceManagement/roleScopeTags", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Resource not found for the segment 'roleScopeTags'.");
    app.stop().await;
}

#[tokio::test]
async fn scope_tag_lists_filter_select_count_and_page() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    for i in 1..=11 {
        let (status, _) =
            send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": format!("Region {i}") }))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, found) = send(&app, Method::GET, &format!("{TAGS}?$filter=displayName eq 'REGION 7'"), &token, None).await;
    assert_eq!(found["value"][0]["id"], "7", "{found}");
    let (_, found) =
        send(&app, Method::GET, &format!("{TAGS}?$filter=id eq '0'&$select=displayName"), &token, None).await;
    assert_eq!(found["value"], json!([{ "id": "0", "displayName": "Default" }]), "{found}");
    assert_eq!(
        found["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/roleScopeTags(displayName)"
    );
    let (status, body) = send(&app, Method::GET, &format!("{TAGS}?$select=color"), &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages of five follow the numeric ids: 0-4, 5-9, 10-11.
    let mut ids = Vec::new();
    let mut next = Some(format!("{}{TAGS}?$top=5&$count=true", app.base_url));
    while let Some(url) = next {
        let page: Value = app.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["@odata.count"], 12, "{page}");
        ids.extend(page["value"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(ids, (0..=11).map(|i| i.to_string()).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn scope_tags_take_the_rbac_or_configuration_permissions() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let mint = |permission: &'static str| {
        let admin = app.admin.clone();
        let tenant = tenant.clone();
        async move { admin.mint_token(&tenant, "application", &[permission], "work", None).await.unwrap() }
    };
    let reader = mint(RBAC_READ).await;
    assert_eq!(send(&app, Method::GET, TAGS, &reader, None).await.0, StatusCode::OK);
    let (status, body) = send(&app, Method::POST, TAGS, &reader, Some(json!({ "displayName": "R" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    assert!(
        inner["Message"].as_str().unwrap().contains(
            "one of the following scopes: DeviceManagementConfiguration.ReadWrite.All, DeviceManagementRBAC.ReadWrite.All"
        ),
        "{inner}"
    );
    for writer in [RBAC_RW, CONFIGURATION_RW] {
        let token = mint(writer).await;
        let (status, tag) = send(&app, Method::POST, TAGS, &token, Some(json!({ "displayName": writer }))).await;
        assert_eq!(status, StatusCode::OK, "{writer}");
        let path = format!("{TAGS}/{}", tag["id"].as_str().unwrap());
        assert_eq!(send(&app, Method::DELETE, &path, &token, None).await.0, StatusCode::NO_CONTENT, "{writer}");
    }
    // The Autopilot permission alone reads no scope tags.
    assert_eq!(send(&app, Method::GET, TAGS, &mint(RW).await, None).await.0, StatusCode::FORBIDDEN);
    // The development app (client credentials) manages them, as IntuneCD signs in with it.
    let app_token = app.app_token().await;
    let (status, _) = send(&app, Method::POST, TAGS, &app_token, Some(json!({ "displayName": "From the app" }))).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn every_tenant_has_its_own_default_and_numbers() {
    let app = spawn_app().await;
    let other = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
    app.admin.create_tenant(other, "fabrikam.onmicrosoft.com").await.unwrap();
    let contoso = app.user_token().await;
    let fabrikam = app.admin.mint_token(other, "delegated", &[RBAC_RW], "work", None).await.unwrap();
    let (_, tag) = send(&app, Method::POST, TAGS, &contoso, Some(json!({ "displayName": "Contoso only" }))).await;
    assert_eq!(tag["id"], "1");
    let (_, list) = send(&app, Method::GET, TAGS, &fabrikam, None).await;
    assert_eq!(list["value"], json!([{ "id": "0", "displayName": "Default", "description": "", "isBuiltIn": true }]));
    assert_eq!(send(&app, Method::GET, &format!("{TAGS}/1"), &fabrikam, None).await.0, StatusCode::NOT_FOUND);
    let (_, theirs) = send(&app, Method::POST, TAGS, &fabrikam, Some(json!({ "displayName": "Contoso only" }))).await;
    assert_eq!(theirs["id"], "1", "names and numbers are per tenant");
    app.stop().await;
}

/// Bodies are bounded as everywhere: malformed JSON and over-deep JSON are 400, an oversized body
/// 413, and nothing is created by any of them.
#[tokio::test]
async fn malformed_deep_and_oversized_bodies_create_nothing() {
    let app = spawn_app_with(|c| c.max_body_bytes = 64 * 1024).await;
    let token = app.user_token().await;
    let post = |body: String| {
        app.raw(Method::POST, TAGS, Some(&token)).header("content-type", "application/json").body(body).send()
    };
    let r = post("{\"displayName\":".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(format!("{{\"displayName\":\"x\",\"description\":{}1{}}}", "[".repeat(200), "]".repeat(200)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(format!("{{\"displayName\":\"{}\"}}", "x".repeat(128 * 1024))).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, list) = send(&app, Method::GET, TAGS, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "only Default: {list}");
    app.stop().await;
}
