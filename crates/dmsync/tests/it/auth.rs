//! The token endpoint, token validation as Graph does it, and the permission table.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_client::ClientError;
use dmsync_server::bootstrap::{DEV_APP_ROLES, DEV_CLIENT_ID, DEV_USER_PASSWORD, DEV_USER_SCOPES, DEV_USER_UPN};
use dmsync_server::config::PermissionProfile;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";
const SYNC: &str = "/beta/deviceManagement/windowsAutopilotSettings/sync";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn client_credentials_grant_issues_a_graph_app_token() {
    let app = spawn_app().await;
    let c = claims(&app.app_token().await);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{}/", app.tenant()));
    assert_eq!(c["tid"], app.tenant());
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["appid"], DEV_CLIENT_ID.to_string());
    assert_eq!(c["roles"], json!(DEV_APP_ROLES));
    assert_eq!(c["ver"], "1.0");
    assert!(c["scp"].is_null());
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn password_grant_issues_a_delegated_token() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let c = claims(&token);
    assert_eq!(c["idtyp"], "user");
    assert_eq!(c["scp"], DEV_USER_SCOPES.join(" "));
    assert_eq!(c["upn"], DEV_USER_UPN);
    assert!(c["roles"].is_null());
    // The header names the key, as Entra does, and the key is in the JWKS.
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = app.get_json(&format!("/{}/discovery/v2.0/keys", app.tenant()), None).await;
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"] && k["kty"] == "RSA"));
    // The discovery document points at the token endpoint and the keys.
    let oidc: Value = app.get_json(&format!("/{}/v2.0/.well-known/openid-configuration", app.tenant()), None).await;
    assert_eq!(oidc["token_endpoint"], format!("{}/{}/oauth2/v2.0/token", app.base_url, app.tenant()));
    assert!(oidc["jwks_uri"].as_str().unwrap().ends_with("/discovery/v2.0/keys"));
    app.stop().await;
}

/// On an empty database the signing key is generated after the server listens: a token and the
/// JWKS asked for at once wait for it, the token verifies against the published key, and the
/// key is the one stored.
#[tokio::test]
async fn the_token_endpoint_and_the_jwks_work_on_a_first_start() {
    let app = spawn_app().await;
    let jwks_path = format!("/{}/discovery/v2.0/keys", app.tenant());
    let (token, jwks) = tokio::join!(app.user_token(), app.get_json(&jwks_path, None));
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
    let stored = app.state.store().signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, header.kid.unwrap());
    let r = app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let minted = app.admin.mint_token(&app.tenant(), "delegated", &[RW], "work", None).await.unwrap();
    assert_eq!(app.raw(Method::GET, SETTINGS, Some(&minted)).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn token_endpoint_errors_are_entra_shaped() {
    let app = spawn_app().await;
    let bad_secret = app
        .graph
        .token_client_credentials(&app.base_url, &app.tenant(), &DEV_CLIENT_ID.to_string(), "wrong")
        .await
        .unwrap_err();
    match bad_secret {
        ClientError::Identity { status, error, description } => {
            assert_eq!((status, error.as_str()), (401, "invalid_client"));
            assert!(description.starts_with("AADSTS7000215: Invalid client secret provided."), "{description}");
        }
        other => panic!("{other:?}"),
    }
    let bad_password = app
        .graph
        .token_password(&app.base_url, &app.tenant(), &DEV_CLIENT_ID.to_string(), DEV_USER_UPN, "wrong")
        .await
        .unwrap_err();
    match bad_password {
        ClientError::Identity { status, error, description } => {
            assert_eq!((status, error.as_str()), (400, "invalid_grant"));
            assert!(description.starts_with("AADSTS50126:"), "{description}");
        }
        other => panic!("{other:?}"),
    }
    // The raw body carries Entra's other fields too.
    let r = app
        .raw(Method::POST, &format!("/{}/oauth2/v2.0/token", app.tenant()), None)
        .form(&[("grant_type", "not_a_grant"), ("client_id", &DEV_CLIENT_ID.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(body["error_codes"], json!([70003]));
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    // An unknown tenant.
    let r = app
        .raw(Method::POST, "/nowhere.onmicrosoft.com/oauth2/v2.0/token", None)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &DEV_CLIENT_ID.to_string()),
            ("client_secret", "x"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS90002"), "{body}");
    app.stop().await;
}

/// The token endpoint reads at most 64 KiB and 32 fields of form; more is Entra's 400.
#[tokio::test]
async fn oversized_token_requests_are_refused_in_entras_shape() {
    let app = spawn_app().await;
    let path = format!("/{}/oauth2/v2.0/token", app.tenant());
    let good =
        format!("grant_type=password&client_id={DEV_CLIENT_ID}&username={DEV_USER_UPN}&password={DEV_USER_PASSWORD}");
    let many_fields = format!("{good}{}", "&x=1".repeat(40));
    let large = format!("{good}&x={}", "a".repeat(70 * 1024));
    for body in [many_fields, large] {
        let r = app
            .raw(Method::POST, &path, None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request");
        assert!(error["error_description"].as_str().unwrap().starts_with("AADSTS90100"), "{error}");
    }
    let r = app
        .raw(Method::POST, &path, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a normal request still works");
    app.stop().await;
}

/// A token signed with the server's own key but with chosen claims: only a test can make one.
async fn forge(app: &TestApp, alg: jsonwebtoken::Algorithm, claims: Value) -> String {
    // On a first start the key is generated after the server listens.
    app.state.keys().wait_until_ready().await;
    let keys = app.state.store().signing_keys().await.unwrap();
    let key = &keys[0];
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(key.kid.clone());
    let encoding = match alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
        // The classic confusion attack: the public key used as an HMAC secret.
        _ => jsonwebtoken::EncodingKey::from_secret(key.n.as_bytes()),
    };
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

fn good_claims(tenant: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{tenant}/"),
        "tid": tenant, "iat": now, "nbf": now, "exp": now + 3600, "scp": RW, "idtyp": "user",
        "oid": "55555555-5555-4555-8555-555555555555",
    })
}

async fn expect_401(app: &TestApp, token: Option<&str>, message: &str) {
    let r = app.raw(Method::GET, SETTINGS, token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer realm=\"\", authorization_uri="), "{challenge}");
    assert!(!challenge.contains("claims="), "no CAE challenge");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["message"].as_str().unwrap().starts_with(message), "{body}");
}

#[tokio::test]
async fn tokens_are_validated_as_graph_validates_them() {
    let app = spawn_app().await;
    let tenant = app.tenant();

    let forged_ok = forge(&app, jsonwebtoken::Algorithm::RS256, good_claims(&tenant)).await;
    let r = app.raw(Method::GET, SETTINGS, Some(&forged_ok)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the forging helper itself makes valid tokens");

    expect_401(&app, None, "Access token is empty.").await;
    expect_401(&app, Some(""), "Access token is empty.").await;
    expect_401(&app, Some("garbage"), "IDX14100: JWT is not well formed").await;
    expect_401(&app, Some("a.b.c"), "CompactToken parsing failed").await;

    let mut expired = good_claims(&tenant);
    expired["exp"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() - 3600);
    expect_401(
        &app,
        Some(&forge(&app, jsonwebtoken::Algorithm::RS256, expired).await),
        "Lifetime validation failed, the token is expired.",
    )
    .await;

    let mut early = good_claims(&tenant);
    early["nbf"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() + 3600);
    expect_401(
        &app,
        Some(&forge(&app, jsonwebtoken::Algorithm::RS256, early).await),
        "Access token has expired or is not yet valid.",
    )
    .await;

    let mut wrong_aud = good_claims(&tenant);
    wrong_aud["aud"] = json!("https://graph.windows.net");
    expect_401(
        &app,
        Some(&forge(&app, jsonwebtoken::Algorithm::RS256, wrong_aud).await),
        "Access token validation failure. Invalid audience.",
    )
    .await;

    let mut wrong_iss = good_claims(&tenant);
    wrong_iss["iss"] = json!("https://sts.windows.net/99999999-9999-4999-8999-999999999999/");
    expect_401(
        &app,
        Some(&forge(&app, jsonwebtoken::Algorithm::RS256, wrong_iss).await),
        "Access token validation failure.",
    )
    .await;

    // A flipped signature byte.
    let mut parts: Vec<String> = forged_ok.split('.').map(str::to_owned).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[10] ^= 0x55;
    parts[2] = URL_SAFE_NO_PAD.encode(sig);
    expect_401(&app, Some(&parts.join(".")), "Access token validation failure.").await;

    // HS256 with the public key as the secret.
    let hs = forge(&app, jsonwebtoken::Algorithm::HS256, good_claims(&tenant)).await;
    expect_401(&app, Some(&hs), "Access token validation failure.").await;

    // alg: none, unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims(&tenant).to_string());
    expect_401(&app, Some(&format!("{none_header}.{payload}.")), "Access token validation failure.").await;

    // A tenant dmsync does not know.
    let stranger = "99999999-9999-4999-8999-999999999999";
    expect_401(
        &app,
        Some(&forge(&app, jsonwebtoken::Algorithm::RS256, good_claims(stranger)).await),
        "Access token validation failure.",
    )
    .await;

    // Each accepted audience spelling works.
    for aud in ["https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000"] {
        let mut c = good_claims(&tenant);
        c["aud"] = json!(aud);
        let r = app
            .raw(Method::GET, SETTINGS, Some(&forge(&app, jsonwebtoken::Algorithm::RS256, c).await))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "aud {aud}");
    }
    app.stop().await;
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must understand, and
/// dmsync understands none, so such a token is refused even with a good signature.
#[tokio::test]
async fn tokens_with_critical_extensions_are_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    app.state.keys().wait_until_ready().await;
    let key = app.state.store().signing_keys().await.unwrap().remove(0);
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
    let sign = |crit: Option<Vec<String>>| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.crit = crit;
        jsonwebtoken::encode(&header, &good_claims(&tenant), &encoding).unwrap()
    };
    let r = app.raw(Method::GET, SETTINGS, Some(&sign(None))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the same token without crit is good");
    for crit in [vec!["b64".to_owned()], vec!["exp".to_owned()], vec!["urn:example:unknown".to_owned()]] {
        expect_401(&app, Some(&sign(Some(crit))), "Access token validation failure.").await;
    }
    app.stop().await;
}

/// A token's length, and its header's and claims' size and nesting, are bounded before any of
/// it is decoded; what is over a bound is an unparseable token, Graph's 401.
#[tokio::test]
async fn oversized_and_overdeep_tokens_are_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let segment = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let header = segment(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = segment(&good_claims(&tenant).to_string());
    let long = format!("{header}.{}.c2ln", "A".repeat(dmsync_server::auth::MAX_TOKEN_LENGTH));
    expect_401(&app, Some(&long), "CompactToken parsing failed").await;
    let big_header = segment(&format!(r#"{{"alg":"RS256","pad":"{}"}}"#, "x".repeat(8 * 1024)));
    expect_401(&app, Some(&format!("{big_header}.{claims}.c2ln")), "CompactToken parsing failed").await;
    // Within the header's size bound, so that its nesting is what refuses it.
    let deep_header = segment(&format!(r#"{{"alg":"RS256","x":{}1{}}}"#, "[".repeat(1_000), "]".repeat(1_000)));
    expect_401(&app, Some(&format!("{deep_header}.{claims}.c2ln")), "CompactToken parsing failed").await;
    let deep_claims = segment(&format!(r#"{{"x":{}1{}}}"#, "[".repeat(5_000), "]".repeat(5_000)));
    expect_401(&app, Some(&format!("{header}.{deep_claims}.c2ln")), "CompactToken parsing failed").await;
    app.stop().await;
}

#[tokio::test]
async fn an_advanced_clock_expires_tokens() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    // Used twice first, so that its verified signature is remembered: the lifetime must still
    // be checked against the Clock on every request.
    for _ in 0..2 {
        assert_eq!(app.raw(Method::GET, SETTINGS, Some(&token)).send().await.unwrap().status(), StatusCode::OK);
    }
    app.admin.advance_clock(2.0 * 3600.0).await.unwrap();
    expect_401(&app, Some(&token), "Lifetime validation failed, the token is expired.").await;
    // A new token, minted on the advanced clock, works.
    let fresh = app.user_token().await;
    assert_eq!(app.raw(Method::GET, SETTINGS, Some(&fresh)).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

async fn status_of(app: &TestApp, method: Method, path: &str, token: &str) -> u16 {
    app.raw(method, path, Some(token)).send().await.unwrap().status().as_u16()
}

async fn forbidden_body(app: &TestApp, path: &str, token: &str) -> Value {
    let r = app.raw(Method::POST, path, Some(token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    r.json().await.unwrap()
}

#[tokio::test]
async fn original_profile_refuses_application_tokens_for_sync_only() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let app_token = app.app_token().await;
    // Reading is allowed to applications in both profiles.
    assert_eq!(status_of(&app, Method::GET, SETTINGS, &app_token).await, 200);
    let body = forbidden_body(&app, SYNC, &app_token).await;
    assert_eq!(body["error"]["code"], "Forbidden");
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    assert!(inner["Message"].as_str().unwrap().starts_with("Application is not authorized to perform this operation"));
    assert_eq!(inner["_version"], 3);

    // Delegated tokens: ReadWrite syncs, Read alone does not.
    let reader = app.admin.mint_token(&tenant, "delegated", &[READ], "work", None).await.unwrap();
    assert_eq!(status_of(&app, Method::GET, SETTINGS, &reader).await, 200);
    let body = forbidden_body(&app, SYNC, &reader).await;
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    assert!(
        inner["Message"]
            .as_str()
            .unwrap()
            .contains("one of the following scopes: DeviceManagementServiceConfig.ReadWrite.All")
    );
    let writer = app.admin.mint_token(&tenant, "delegated", &[RW], "work", None).await.unwrap();
    assert_eq!(status_of(&app, Method::POST, SYNC, &writer).await, 204);

    // No permission at all: 403 even for reads.
    let nobody = app.admin.mint_token(&tenant, "application", &[], "work", None).await.unwrap();
    assert_eq!(status_of(&app, Method::GET, SETTINGS, &nobody).await, 403);
    app.stop().await;
}

#[tokio::test]
async fn current_profile_allows_application_tokens_to_sync() {
    let app = spawn_app_with(|c| c.permission_profile = PermissionProfile::Current).await;
    let app_token = app.app_token().await;
    assert_eq!(status_of(&app, Method::POST, SYNC, &app_token).await, 204);
    let reader = app.admin.mint_token(&app.tenant(), "application", &[READ], "work", None).await.unwrap();
    assert_eq!(status_of(&app, Method::POST, SYNC, &reader).await, 403);
    app.stop().await;
}

#[tokio::test]
async fn personal_accounts_are_refused_on_every_intune_route() {
    for profile in [PermissionProfile::Original, PermissionProfile::Current] {
        let app = spawn_app_with(|c| c.permission_profile = profile).await;
        let personal = app.admin.mint_token(&app.tenant(), "delegated", &[RW], "personal", None).await.unwrap();
        assert_eq!(claims(&personal)["tid"], "9188040d-6c67-4c5b-b112-36a304b66dad");
        for (method, path) in [
            (Method::GET, SETTINGS),
            (Method::POST, SYNC),
            (Method::GET, "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities"),
        ] {
            assert_eq!(status_of(&app, method, path, &personal).await, 403, "{path} under {profile:?}");
        }
        app.stop().await;
    }
}
