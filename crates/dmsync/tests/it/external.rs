//! Tokens from an external issuer (a real Entra ID tenant) go through the same checks, with
//! the issuer's JWKS fetched, cached by kid, and refreshed on an unknown kid at most every
//! five minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use dmsync_core::identity::SigningKey;
use dmsync_server::auth::keys::generate_key;
use dmsync_server::config::ExternalIssuer;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// A JWKS endpoint on port 0 that counts its hits.
async fn jwks_server(keys: serde_json::Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/keys",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let keys = keys.clone();
            async move { axum::Json(keys) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// An app that trusts an external issuer whose JWKS serves one fresh key; the key, and the
/// JWKS endpoint's hit counter.
async fn app_trusting_an_issuer() -> (TestApp, SigningKey, Arc<AtomicUsize>) {
    let key = generate_key(time::OffsetDateTime::now_utc()).unwrap();
    let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": key.kid, "n": key.n, "e": key.e}]});
    let (url, hits) = jwks_server(jwks).await;
    let app = spawn_app_with(|c| {
        c.external_issuer = Some(ExternalIssuer { jwks_url: url, audiences: vec!["api://dmsync".into()] })
    })
    .await;
    (app, key, hits)
}

/// A v2-style app token's claims for the API's own audience.
fn external_claims(tenant: &str) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "aud": "api://dmsync", "iss": format!("https://login.microsoftonline.com/{tenant}/v2.0"),
        "tid": tenant, "iat": now, "nbf": now, "exp": now + 3600, "roles": [READ], "azp": "x",
    })
}

fn sign(key: &SigningKey, header: jsonwebtoken::Header, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap())
        .unwrap()
}

fn header_with_kid(kid: &str) -> jsonwebtoken::Header {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header
}

#[tokio::test]
async fn external_tokens_are_verified_with_the_issuers_jwks() {
    let (app, key, hits) = app_trusting_an_issuer().await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once at start");

    // A token from a tenant dmsync has never seen.
    let tenant = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
    let claims = external_claims(tenant);
    let sign = |claims: serde_json::Value, kid: &str| sign(&key, header_with_kid(kid), &claims);
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&sign(claims.clone(), &key.kid)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(app.state.store().tenant(tenant.parse().unwrap()).await.unwrap().is_some(), "tenant provisioned");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a known kid needs no fetch");

    // An unknown kid triggers one refresh, and the next unknown kid within five minutes none.
    for _ in 0..2 {
        let r = app
            .raw(
                Method::GET,
                "/beta/deviceManagement/windowsAutopilotSettings",
                Some(&sign(claims.clone(), "rotated-away")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one rate-limited refresh for unknown kids");

    // The external audience is not accepted on dmsync's own tokens' issuer path, and a wrong
    // issuer is refused even with a good signature.
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example/");
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&sign(wrong_iss, &key.kid)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// An external issuer's token whose header has `crit` is refused like dmsync's own (RFC 7515
/// §4.1.11), with Graph's 401 body.
#[tokio::test]
async fn external_tokens_with_critical_extensions_are_refused() {
    let (app, key, _) = app_trusting_an_issuer().await;
    let claims = external_claims("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee");
    let with_crit = |crit: Option<Vec<String>>| {
        let mut header = header_with_kid(&key.kid);
        header.crit = crit;
        sign(&key, header, &claims)
    };
    let settings = "/beta/deviceManagement/windowsAutopilotSettings";
    let r = app.raw(Method::GET, settings, Some(&with_crit(None))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app
        .raw(Method::GET, settings, Some(&with_crit(Some(vec!["urn:example:unknown".into()]))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token validation failure.");
    app.stop().await;
}
