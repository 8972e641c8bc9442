//! Sign-in as MSAL walks it (issue 18): the discovery documents for a tenant, a domain and
//! Entra's multi-tenant audiences, the user realm, and a user's password grant answered with
//! an id token, `client_info` and a refresh token that the refresh grant redeems and rotates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_TENANT_DOMAIN, DEV_USER_OBJECT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const PERSONAL: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The scopes MSAL adds to every user sign-in.
const MSAL_SCOPES: &str =
    "DeviceManagementServiceConfig.ReadWrite.All Group.ReadWrite.All openid profile offline_access";

async fn password_sign_in(app: &TestApp, tenant: &str) -> Value {
    let client = DEV_CLIENT_ID.to_string();
    let form = [
        ("grant_type", "password"),
        ("client_id", client.as_str()),
        ("username", DEV_USER_UPN),
        ("password", DEV_USER_PASSWORD),
        ("scope", MSAL_SCOPES),
        ("client_info", "1"),
    ];
    let (status, body) = token_request(app, tenant, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(app: &TestApp, tenant: &str, client: &str, token: &str, scope: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client),
        ("refresh_token", token),
        ("scope", scope),
        ("client_info", "1"),
    ];
    token_request(app, tenant, &form).await
}

#[tokio::test]
async fn discovery_documents_name_the_tenant_as_entra_does() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let base = &app.base_url;
    for segment in [tenant.as_str(), DEV_TENANT_DOMAIN] {
        let doc = app.get_json(&format!("/{segment}/v2.0/.well-known/openid-configuration"), None).await;
        assert_eq!(doc["issuer"], format!("{base}/{tenant}/v2.0"));
        assert_eq!(doc["token_endpoint"], format!("{base}/{tenant}/oauth2/v2.0/token"), "the id, even by domain");
        assert_eq!(doc["tenant_region_scope"], "NA");
    }
    for (segment, issuer_tenant) in [("common", "{tenantid}"), ("organizations", "{tenantid}"), ("consumers", PERSONAL)]
    {
        let doc = app.get_json(&format!("/{segment}/v2.0/.well-known/openid-configuration"), None).await;
        assert_eq!(doc["issuer"], format!("{base}/{issuer_tenant}/v2.0"), "{segment}");
        assert_eq!(doc["token_endpoint"], format!("{base}/{segment}/oauth2/v2.0/token"));
        assert_eq!(doc["authorization_endpoint"], format!("{base}/{segment}/oauth2/v2.0/authorize"));
        assert_eq!(doc["tenant_region_scope"], Value::Null);
    }
    let v1 = app.get_json("/common/.well-known/openid-configuration", None).await;
    assert_eq!(v1["issuer"], "https://sts.windows.net/{tenantid}/");
    assert_eq!(v1["jwks_uri"], format!("{base}/common/discovery/keys"));
    let v1 = app.get_json(&format!("/{DEV_TENANT_DOMAIN}/.well-known/openid-configuration"), None).await;
    assert_eq!(v1["issuer"], format!("https://sts.windows.net/{tenant}/"));
    let keys = app.get_json("/common/discovery/keys", None).await;
    assert!(!keys["keys"].as_array().unwrap().is_empty());

    let unknown = app.raw(Method::GET, "/nowhere.example/v2.0/.well-known/openid-configuration", None);
    let r = unknown.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(aadsts(&r.json().await.unwrap()), "AADSTS90002");
    app.stop().await;
}

#[tokio::test]
async fn the_user_realm_is_managed_for_a_tenant_domain() {
    let app = spawn_app().await;
    let realm = app.get_json(&format!("/common/userrealm/{DEV_USER_UPN}?api-version=1.0"), None).await;
    assert_eq!(realm["account_type"], "Managed");
    assert_eq!(realm["domain_name"], DEV_TENANT_DOMAIN);
    assert_eq!(realm["ver"], "1.0");
    let realm = app.get_json("/common/userrealm/someone@example.org?api-version=1.0", None).await;
    assert_eq!(realm["account_type"], "Unknown");
    let realm = app.get_json(&format!("/common/userrealm/{DEV_USER_UPN}?api-version=2.0"), None).await;
    assert_eq!((&realm["NameSpaceType"], &realm["Login"]), (&json!("Managed"), &json!(DEV_USER_UPN)));
    app.stop().await;
}

/// The password grant answers as Entra does to MSAL's scopes: an id token for the client,
/// `client_info` naming the home account, and a refresh token that is redeemed for new tokens
/// (rotating), by its own client only, and is no access token.
#[tokio::test]
async fn a_password_sign_in_gives_an_account_and_a_refresh_token() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let client = DEV_CLIENT_ID.to_string();
    let first = password_sign_in(&app, "organizations").await;
    let id = claims(first["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], client.as_str());
    assert_eq!(id["iss"], format!("{}/{tenant}/v2.0", app.base_url));
    assert_eq!(id["preferred_username"], DEV_USER_UPN);
    assert_eq!((&id["oid"], &id["tid"], &id["ver"]), (&json!(DEV_USER_OBJECT_ID), &json!(tenant), &json!("2.0")));
    let info: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first["client_info"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(info, json!({ "uid": DEV_USER_OBJECT_ID, "utid": tenant }));
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();

    // Redeemed: a working access token with the scopes granted, and a new refresh token.
    let fewer = "DeviceManagementServiceConfig.ReadWrite.All openid profile offline_access";
    let (status, second) = refresh(&app, &tenant, &client, &refresh_token, fewer).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "DeviceManagementServiceConfig.ReadWrite.All");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert!(second["id_token"].is_string() && second["client_info"].is_string());
    let access = second["access_token"].as_str().unwrap();
    let settings = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(access));
    assert_eq!(settings.send().await.unwrap().status(), StatusCode::OK);
    // A scope beyond what was granted at sign-in (though consented) needs a new sign-in.
    let (status, body) = refresh(&app, "organizations", &client, &refresh_token, "Device.ReadWrite.All").await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS65001"), "{body}");

    // Never an access token; never redeemed by another client, in another tenant, or forged.
    let as_bearer = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&refresh_token));
    assert_eq!(as_bearer.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let other_client = uuid::Uuid::new_v4().to_string();
    let (status, body) = refresh(&app, &tenant, &other_client, &refresh_token, MSAL_SCOPES).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_grant")), "{body}");
    let (status, body) = refresh(&app, PERSONAL, &client, &refresh_token, MSAL_SCOPES).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let access_as_refresh = refresh(&app, &tenant, &client, access, MSAL_SCOPES).await;
    assert_eq!(aadsts(&access_as_refresh.1), "AADSTS9002313");
    let (status, body) = refresh(&app, &tenant, &client, "not-a-token", MSAL_SCOPES).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS9002313"));

    // Unused for more than 90 days on the Clock, it has expired.
    app.admin.advance_clock(91.0 * 86_400.0).await.unwrap();
    let (status, body) = refresh(&app, &tenant, &client, &refresh_token, MSAL_SCOPES).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS700082"), "{body}");
    app.stop().await;
}

async fn user_sign_in(app: &TestApp, upn: &str, password: &str) -> (StatusCode, Value) {
    let client = DEV_CLIENT_ID.to_string();
    let form = [
        ("grant_type", "password"),
        ("client_id", client.as_str()),
        ("username", upn),
        ("password", password),
        ("scope", "Group.ReadWrite.All openid offline_access"),
    ];
    token_request(app, "organizations", &form).await
}

/// Users created through the admin API sign in; a password change or the user's removal
/// revokes the refresh tokens issued before it (Entra's 50173), and the old password no longer
/// signs in.
#[tokio::test]
async fn a_changed_password_or_a_removed_user_revokes_refresh_tokens() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let client = DEV_CLIENT_ID.to_string();
    let users = format!("/_dmsync/tenants/{tenant}/users");
    for (body, status) in [
        (json!({ "userPrincipalName": "x@elsewhere.example", "password": "p" }), StatusCode::BAD_REQUEST),
        (json!({ "userPrincipalName": format!("x@{DEV_TENANT_DOMAIN}"), "password": " " }), StatusCode::BAD_REQUEST),
        (
            json!({ "userPrincipalName": format!("x@{DEV_TENANT_DOMAIN}"), "password": "p", "scopes": ["Mail.Read"] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "userPrincipalName": DEV_USER_UPN, "password": "p" }), StatusCode::CONFLICT),
    ] {
        assert_eq!(admin(&app, Method::POST, &users, body).await.0, status);
    }
    let mut ids = Vec::new();
    for name in ["alice", "bob"] {
        let body = json!({ "userPrincipalName": format!("{name}@{DEV_TENANT_DOMAIN}"), "password": "first-password" });
        let (status, created) = admin(&app, Method::POST, &users, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (alice, bob) = (format!("alice@{DEV_TENANT_DOMAIN}"), format!("bob@{DEV_TENANT_DOMAIN}"));
    let (status, alice_first) = user_sign_in(&app, &alice, "first-password").await;
    assert_eq!(status, StatusCode::OK, "{alice_first}");
    let (_, bob_first) = user_sign_in(&app, &bob, "first-password").await;
    let alice_refresh = alice_first["refresh_token"].as_str().unwrap();
    let bob_refresh = bob_first["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, &tenant, &client, alice_refresh, "Group.ReadWrite.All").await.0, StatusCode::OK);

    let (status, _) =
        admin(&app, Method::PATCH, &format!("{users}/{}", ids[0]), json!({ "password": "second-password" })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = refresh(&app, &tenant, &client, alice_refresh, "Group.ReadWrite.All").await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS50173"), "{body}");
    assert_eq!(aadsts(&user_sign_in(&app, &alice, "first-password").await.1), "AADSTS50126");
    assert_eq!(user_sign_in(&app, &alice, "second-password").await.0, StatusCode::OK);

    assert_eq!(
        admin(&app, Method::DELETE, &format!("{users}/{}", ids[1]), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(admin(&app, Method::DELETE, &format!("{users}/{}", ids[1]), Value::Null).await.0, StatusCode::NOT_FOUND);
    let (status, body) = refresh(&app, &tenant, &client, bob_refresh, "Group.ReadWrite.All").await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS50173"), "{body}");
    assert_eq!(aadsts(&user_sign_in(&app, &bob, "first-password").await.1), "AADSTS50126");
    app.stop().await;
}

/// The new surfaces take bad input as every other does: a Graph-shaped 400 (or 413) for the
/// admin API's malformed, over-deep or oversized bodies, Entra's for an oversized refresh token,
/// an answer for an absurd user name, and the server still serving.
#[tokio::test]
async fn bad_input_on_the_sign_in_surfaces_is_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let users = format!("/_dmsync/tenants/{}/users", app.tenant());
    let post = |body: String| {
        app.raw(Method::POST, &users, Some("dmsync-dev-admin")).header("content-type", "application/json").body(body)
    };
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let oversized = format!("{{\"userPrincipalName\":\"{}\"}}", "a".repeat(5 * 1024 * 1024));
    for (body, status) in [
        ("{\"userPrincipalName\":".to_owned(), StatusCode::BAD_REQUEST),
        (nested, StatusCode::BAD_REQUEST),
        (oversized, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let r = post(body).send().await.unwrap();
        assert_eq!(r.status(), status);
        let error: Value = r.json().await.unwrap();
        assert!(error["error"]["code"].is_string(), "{error}");
    }
    let huge = "x".repeat(60 * 1024);
    let (status, body) = refresh(&app, &app.tenant(), &DEV_CLIENT_ID.to_string(), &huge, MSAL_SCOPES).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS9002313"));
    let (status, body) = refresh(&app, &app.tenant(), &DEV_CLIENT_ID.to_string(), &"x".repeat(70 * 1024), "").await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS90100"));
    let realm =
        app.get_json(&format!("/common/userrealm/{}@example.org?api-version=1.0", "u".repeat(4096)), None).await;
    assert_eq!(realm["account_type"], "Unknown");
    // Still serving.
    let (status, _) = user_sign_in(&app, DEV_USER_UPN, DEV_USER_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
