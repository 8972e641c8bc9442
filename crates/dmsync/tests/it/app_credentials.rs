//! App registrations through the admin API (issue 18, part 3) and certificate credentials
//! (part 2): an app's secret is shown once and can be replaced, a registered certificate signs
//! client assertions that the token endpoint takes in place of the secret, and every bad
//! assertion (replayed, expired, for another audience, signed by another key, naming an unknown
//! certificate) is refused with Entra's code and issues nothing.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use dmsync_server::bootstrap::{DEV_TENANT_DOMAIN, DEV_USER_PASSWORD, DEV_USER_UPN};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";

/// A self-signed RSA certificate, its DER, and its key, as a user makes them for an app.
struct Certificate {
    pem: String,
    key: EncodingKey,
}

fn certificate() -> Certificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
    let cert = rcgen::CertificateParams::new(vec!["dmsync-app".into()]).unwrap().self_signed(&key).unwrap();
    Certificate { pem: cert.pem(), key: EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap() }
}

/// The bytes of an upper-case hex thumbprint, as the admin API shows them.
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// MSAL Python's spelling of the SHA-1 thumbprint: base64url with `=` padding.
fn x5t_padded(sha1_hex: &str) -> String {
    URL_SAFE.encode(hex_bytes(sha1_hex))
}

fn assertion(cert: &Certificate, header: Header, claims: Value) -> String {
    jsonwebtoken::encode(&header, &claims, &cert.key).unwrap()
}

fn assertion_claims(client_id: &str, audience: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": client_id, "sub": client_id, "aud": audience, "iat": now, "nbf": now, "exp": now + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

async fn client_credentials_with(app: &TestApp, tenant: &str, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", GRAPH_DEFAULT),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    token_request(app, tenant, &form).await
}

/// Creates an app with the given roles and returns its client id and secret.
async fn create_app(app: &TestApp, body: Value) -> (String, String) {
    let path = format!("/_dmsync/tenants/{}/applications", app.tenant());
    let (status, created) = admin(app, Method::POST, &path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["appId"].as_str().unwrap().to_owned(), created["secretText"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn applications_are_created_listed_rekeyed_and_deleted() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let apps = format!("/_dmsync/tenants/{tenant}/applications");
    for bad in [
        json!({ "displayName": " " }),
        json!({ "displayName": "x", "roles": ["Directory.AccessAsUser.All"] }),
        json!({ "displayName": "x", "delegatedPermissions": ["Mail.Read"] }),
        json!({ "displayName": "x", "redirectUris": ["http://evil.example/cb"] }),
        json!({ "displayName": "x", "unknownField": 1 }),
    ] {
        assert_eq!(admin(&app, Method::POST, &apps, bad.clone()).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (client_id, secret) = create_app(
        &app,
        json!({ "displayName": "Backup job", "roles": ["DeviceManagementServiceConfig.Read.All"],
                "redirectUris": ["https://app.contoso.com/cb"] }),
    )
    .await;
    assert!(secret.len() >= 32);
    let (status, listed) = admin(&app, Method::GET, &apps, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let ours = listed["value"].as_array().unwrap().iter().find(|a| a["appId"] == client_id.as_str()).unwrap();
    assert_eq!(ours["redirectUris"], json!(["https://app.contoso.com/cb"]));
    assert!(ours.get("secretText").is_none(), "a secret is shown once: {ours}");

    let secret_grant = |secret: String| {
        let client_id = client_id.clone();
        let tenant = tenant.clone();
        let app = &app;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", GRAPH_DEFAULT),
            ];
            token_request(app, &tenant, &form).await
        }
    };
    let (status, token) = secret_grant(secret.clone()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        claims(token["access_token"].as_str().unwrap())["roles"],
        json!(["DeviceManagementServiceConfig.Read.All"])
    );

    let (status, replaced) = admin(&app, Method::POST, &format!("{apps}/{client_id}/secrets"), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) = secret_grant(secret).await;
    assert_eq!((status, aadsts(&refused)), (StatusCode::UNAUTHORIZED, "AADSTS7000215"), "the old secret is gone");
    assert_eq!(secret_grant(replaced["secretText"].as_str().unwrap().to_owned()).await.0, StatusCode::OK);

    assert_eq!(
        admin(&app, Method::DELETE, &format!("{apps}/{client_id}"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(admin(&app, Method::GET, &format!("{apps}/{client_id}"), Value::Null).await.0, StatusCode::NOT_FOUND);
    let (_, refused) = secret_grant(replaced["secretText"].as_str().unwrap().to_owned()).await;
    assert_eq!(aadsts(&refused), "AADSTS700016", "a deleted app signs in no more");
}

#[tokio::test]
async fn a_registered_certificate_signs_assertions_that_are_used_once() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let (client_id, _) = create_app(&app, json!({ "displayName": "Unattended", "roles": ["Group.Read.All"] })).await;
    let certs = format!("/_dmsync/tenants/{tenant}/applications/{client_id}/certificates");
    for bad in [json!({ "pem": "not a certificate" }), json!({ "pem": "x".repeat(20_000) })] {
        assert_eq!(admin(&app, Method::POST, &certs, bad).await.0, StatusCode::BAD_REQUEST);
    }
    let cert = certificate();
    let (status, registered) = admin(&app, Method::POST, &certs, json!({ "pem": cert.pem })).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let sha1_hex = registered["thumbprint"].as_str().unwrap().to_owned();
    let sha256_hex = registered["thumbprintSha256"].as_str().unwrap().to_owned();
    assert_eq!((sha1_hex.len(), sha256_hex.len()), (40, 64));
    assert_eq!(admin(&app, Method::POST, &certs, json!({ "pem": cert.pem })).await.0, StatusCode::CONFLICT);

    let audience = format!("{}/{tenant}/oauth2/v2.0/token", app.base_url);
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(x5t_padded(&sha1_hex));
    let first = assertion(&cert, header.clone(), assertion_claims(&client_id, &audience));
    let (status, token) = client_credentials_with(&app, &tenant, &client_id, &first).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let access = claims(token["access_token"].as_str().unwrap());
    assert_eq!(
        (access["appid"].as_str(), access["roles"].clone()),
        (Some(client_id.as_str()), json!(["Group.Read.All"]))
    );
    let (status, body) = app_get(&app, token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The same assertion again is a replay; the same claims signed anew with a new jti are not.
    let (status, replay) = client_credentials_with(&app, &tenant, &client_id, &first).await;
    assert_eq!((status, aadsts(&replay)), (StatusCode::UNAUTHORIZED, "AADSTS50027"), "{replay}");
    assert!(replay.get("access_token").is_none());

    // Every spelling of the thumbprint, and the SHA-256 one, in PS256 too; by domain as well.
    for (alg, x5t, x5t_s256) in [
        (Algorithm::RS256, Some(URL_SAFE_NO_PAD.encode(hex_bytes(&sha1_hex))), None),
        (Algorithm::RS256, Some(sha1_hex.to_lowercase()), None),
        (Algorithm::PS256, None, Some(URL_SAFE_NO_PAD.encode(hex_bytes(&sha256_hex)))),
    ] {
        let mut header = Header::new(alg);
        header.x5t = x5t;
        header.x5t_s256 = x5t_s256;
        let fresh = assertion(&cert, header, assertion_claims(&client_id, &audience));
        let (status, body) = client_credentials_with(&app, DEV_TENANT_DOMAIN, &client_id, &fresh).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let through_the_proxy = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
    let fresh = assertion(&cert, header.clone(), assertion_claims(&client_id, &through_the_proxy));
    assert_eq!(client_credentials_with(&app, &tenant, &client_id, &fresh).await.0, StatusCode::OK);

    // The attack set: each refused with Entra's code, nothing issued.
    let other = certificate();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut expired = assertion_claims(&client_id, &audience);
    expired["exp"] = json!(now - 3600);
    expired["nbf"] = json!(now - 4200);
    let mut other_client = assertion_claims(&client_id, &audience);
    other_client["iss"] = json!(uuid::Uuid::new_v4().to_string());
    let mut unknown_cert = header.clone();
    unknown_cert.x5t = Some(URL_SAFE_NO_PAD.encode([7u8; 20]));
    let cases = [
        (assertion(&other, header.clone(), assertion_claims(&client_id, &audience)), "AADSTS700027"),
        (assertion(&other, unknown_cert, assertion_claims(&client_id, &audience)), "AADSTS700027"),
        (assertion(&cert, header.clone(), expired), "AADSTS700024"),
        (
            assertion(&cert, header.clone(), assertion_claims(&client_id, "https://elsewhere.example/token")),
            "AADSTS700023",
        ),
        (assertion(&cert, header.clone(), other_client), "AADSTS700021"),
        ("not-a-jwt".to_owned(), "AADSTS50027"),
    ];
    for (bad, code) in cases {
        let (status, body) = client_credentials_with(&app, &tenant, &client_id, &bad).await;
        assert_eq!(aadsts(&body), code, "{body}");
        assert!(status.is_client_error() && body.get("access_token").is_none());
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("scope", GRAPH_DEFAULT),
        ("client_assertion_type", "urn:something:else"),
        ("client_assertion", "x"),
    ];
    assert_eq!(aadsts(&token_request(&app, &tenant, &form).await.1), "AADSTS50027");

    // A removed certificate signs nothing more.
    let removed = admin(&app, Method::DELETE, &format!("{certs}/{}", sha1_hex.to_lowercase()), Value::Null).await;
    assert_eq!(removed.0, StatusCode::NO_CONTENT);
    let fresh = assertion(&cert, header, assertion_claims(&client_id, &audience));
    assert_eq!(aadsts(&client_credentials_with(&app, &tenant, &client_id, &fresh).await.1), "AADSTS700027");
}

/// A registered app's delegated permissions narrow what its users' tokens carry.
#[tokio::test]
async fn an_apps_delegated_permissions_narrow_its_users_tokens() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let (client_id, secret) =
        create_app(&app, json!({ "displayName": "Reader", "delegatedPermissions": ["Group.Read.All"] })).await;
    let form = [
        ("grant_type", "password"),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("username", DEV_USER_UPN),
        ("password", DEV_USER_PASSWORD),
        ("scope", GRAPH_DEFAULT),
    ];
    let (status, token) = token_request(&app, &tenant, &form).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(claims(token["access_token"].as_str().unwrap())["scp"], "Group.Read.All");
    let mut asks_for_more = form;
    asks_for_more[5] = ("scope", "https://graph.microsoft.com/Group.ReadWrite.All");
    assert_eq!(aadsts(&token_request(&app, &tenant, &asks_for_more).await.1), "AADSTS65001");
}

/// The development app and user hold every permission dmsync serves: a newcomer's first call
/// of `managedDevices` works with either.
#[tokio::test]
async fn the_development_identities_reach_every_route() {
    let app = spawn_app().await;
    for token in [app.app_token().await, app.user_token().await] {
        let (status, body) = send(&app, Method::GET, "/v1.0/deviceManagement/managedDevices", &token, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn app_get(app: &TestApp, token: &str) -> (StatusCode, Value) {
    send(app, Method::GET, "/v1.0/groups", token, None).await
}

/// The new surfaces take bad input as every other does: the admin API's malformed, over-deep
/// and oversized application and certificate bodies get Graph's 400 or 413, an assertion that is
/// huge or a JWT of garbage gets Entra's answer, and the server keeps issuing tokens.
#[tokio::test]
async fn bad_input_on_applications_and_assertions_is_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let (client_id, _) = create_app(&app, json!({ "displayName": "Target" })).await;
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for path in [
        format!("/_dmsync/tenants/{tenant}/applications"),
        format!("/_dmsync/tenants/{tenant}/applications/{client_id}/certificates"),
    ] {
        let oversized = format!("{{\"displayName\":\"{}\",\"pem\":\"\"}}", "a".repeat(5 * 1024 * 1024));
        for (body, status) in [
            ("{\"displayName\":".to_owned(), StatusCode::BAD_REQUEST),
            (nested.clone(), StatusCode::BAD_REQUEST),
            (oversized, StatusCode::PAYLOAD_TOO_LARGE),
        ] {
            let r = app
                .raw(Method::POST, &path, Some("dmsync-dev-admin"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{path}");
            let error: Value = r.json().await.unwrap();
            assert!(error["error"]["code"].is_string(), "{error}");
        }
    }
    let garbage_jwt = format!("{}.{}.{}", "e".repeat(100), "x".repeat(40 * 1024), "s".repeat(10));
    let (status, body) = client_credentials_with(&app, &tenant, &client_id, &garbage_jwt).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS50027"));
    let (status, body) = client_credentials_with(&app, &tenant, &client_id, &"x".repeat(70 * 1024)).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, "AADSTS90100"), "over the form's bound");
    // Still serving.
    let token = app.app_token().await;
    assert!(!token.is_empty());
    app.stop().await;
}
