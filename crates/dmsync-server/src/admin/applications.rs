//! `/_dmsync/tenants/{tid}/applications`: the tenant's app registrations, as an Entra
//! administrator makes them: a client id, a secret shown once, certificates (found by
//! thumbprint when a client assertion names one), redirect URIs, and the application and
//! delegated permissions granted to the app.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use dmsync_core::identity::{AppCertificate, AppRegistration};
use dmsync_core::permissions::{ALL_PERMISSIONS, APPLICATION_PERMISSIONS};
use dmsync_core::{StoreError, TenantId};
use dmsync_graph::datetime::GraphDateTime;

use super::known_tenant;
use crate::auth::assertions::{CertificateRefusal, certificate_from_pem};
use crate::auth::secrets::hash_secret;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

/// The most redirect URIs an app may have (Entra's limit for one platform).
const MAX_REDIRECT_URIS: usize = 256;
/// The longest redirect URI Entra accepts.
const MAX_REDIRECT_URI_CHARS: usize = 256;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewApplication {
    display_name: String,
    /// Application permissions granted by admin consent (the app token's `roles`).
    #[serde(default)]
    roles: Vec<String>,
    /// Delegated permissions granted to the app; absent, a user's own consent decides.
    #[serde(default)]
    delegated_permissions: Option<Vec<String>>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCertificate {
    pem: String,
}

/// A client secret in Entra's alphabet, long enough that guessing it is hopeless.
fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let mut rng = rand::thread_rng();
    (0..40).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn client_id(segment: &str) -> ApiResult<Uuid> {
    segment
        .parse()
        .map_err(|_| ApiError::NotFoundPlain(format!("'{segment}' is not an application's client id (a GUID).")))
}

fn no_such_app(tenant: TenantId, id: Uuid) -> ApiError {
    ApiError::NotFoundPlain(format!("Tenant {tenant} has no application {id}."))
}

fn check_permissions(list: &[String], allowed: &[&str], kind: &str) -> ApiResult<()> {
    match list.iter().find(|p| !allowed.contains(&p.as_str())) {
        Some(unknown) => Err(ApiError::BadRequest(format!("'{unknown}' is not an {kind} permission dmsync serves."))),
        None => Ok(()),
    }
}

/// A redirect URI as Entra takes one: absolute, `https`, or `http` only for a loopback host.
fn check_redirect_uri(uri: &str) -> ApiResult<()> {
    let refused = || {
        ApiError::BadRequest(format!(
            "'{uri}' is not a valid redirect URI: it must be an absolute https URI (http only for localhost) of at most {MAX_REDIRECT_URI_CHARS} characters."
        ))
    };
    if uri.len() > MAX_REDIRECT_URI_CHARS {
        return Err(refused());
    }
    let parsed: axum::http::Uri = uri.parse().map_err(|_| refused())?;
    let host = parsed.host().unwrap_or("");
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match parsed.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(refused()),
    }
}

fn certificate_body(cert: &AppCertificate) -> Value {
    json!({
        "thumbprint": cert.thumbprint_sha1,
        "thumbprintSha256": cert.thumbprint_sha256,
        "startDateTime": GraphDateTime(Some(cert.not_before)).format(),
        "endDateTime": GraphDateTime(Some(cert.not_after)).format(),
    })
}

fn application_body(app: &AppRegistration, certificates: &[AppCertificate]) -> Value {
    json!({
        "appId": app.client_id,
        "id": app.object_id,
        "displayName": app.display_name,
        "roles": app.roles,
        "delegatedPermissions": app.delegated_permissions,
        "redirectUris": app.redirect_uris,
        "certificates": certificates.iter().map(certificate_body).collect::<Vec<_>>(),
    })
}

/// `POST /_dmsync/tenants/{tid}/applications`: 201 with the app and its secret, which is shown
/// this once; dmsync keeps only its hash.
pub(super) async fn create_application(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    GraphJson(req): GraphJson<NewApplication>,
) -> ApiResult<Response> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let display_name = req.display_name.trim();
    if display_name.is_empty() {
        return Err(ApiError::BadRequest("displayName must not be empty.".into()));
    }
    check_permissions(&req.roles, APPLICATION_PERMISSIONS, "application")?;
    if let Some(delegated) = &req.delegated_permissions {
        check_permissions(delegated, ALL_PERMISSIONS, "delegated")?;
    }
    if req.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(ApiError::BadRequest(format!("An application has at most {MAX_REDIRECT_URIS} redirect URIs.")));
    }
    req.redirect_uris.iter().try_for_each(|uri| check_redirect_uri(uri))?;
    let secret = new_secret();
    let app = AppRegistration {
        tenant_id,
        client_id: Uuid::new_v4(),
        object_id: Uuid::new_v4(),
        display_name: display_name.to_owned(),
        secret_hash: hash_secret(&secret),
        roles: req.roles,
        delegated_permissions: req.delegated_permissions,
        redirect_uris: req.redirect_uris,
    };
    state.store().create_app(&app).await?;
    let mut body = application_body(&app, &[]);
    body["secretText"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /_dmsync/tenants/{tid}/applications`: `{"value": [...]}`, without secrets.
pub(super) async fn list_applications(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let store = state.store();
    let mut value = Vec::new();
    for app in store.list_apps(tenant_id).await? {
        let certificates = store.app_certificates(tenant_id, app.client_id).await?;
        value.push(application_body(&app, &certificates));
    }
    Ok(Json(json!({ "value": value })))
}

/// `GET /_dmsync/tenants/{tid}/applications/{clientId}`.
pub(super) async fn get_application(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = client_id(&id)?;
    let store = state.store();
    let app = store.app(tenant_id, id).await?.ok_or_else(|| no_such_app(tenant_id, id))?;
    let certificates = store.app_certificates(tenant_id, id).await?;
    Ok(Json(application_body(&app, &certificates)))
}

/// `DELETE /_dmsync/tenants/{tid}/applications/{clientId}`: 204; its certificates go with it.
pub(super) async fn delete_application(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = client_id(&id)?;
    if state.store().delete_app(tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_app(tenant_id, id))
    }
}

/// `POST /_dmsync/tenants/{tid}/applications/{clientId}/secrets`: 201 with a new secret, shown
/// this once, which replaces the app's secret.
pub(super) async fn replace_secret(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = client_id(&id)?;
    let secret = new_secret();
    if !state.store().set_app_secret(tenant_id, id, &hash_secret(&secret)).await? {
        return Err(no_such_app(tenant_id, id));
    }
    Ok((StatusCode::CREATED, Json(json!({ "secretText": secret }))).into_response())
}

/// `POST /_dmsync/tenants/{tid}/applications/{clientId}/certificates` with `{"pem": …}`: 201
/// with the certificate's thumbprints, by which its assertions will name it.
pub(super) async fn add_certificate(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    GraphJson(req): GraphJson<NewCertificate>,
) -> ApiResult<Response> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = client_id(&id)?;
    let certificate = certificate_from_pem(&req.pem).map_err(|refusal| {
        ApiError::BadRequest(
            match refusal {
                CertificateRefusal::TooLarge => "pem is larger than a certificate.",
                CertificateRefusal::NotACertificate => "pem must be one X.509 certificate in PEM (BEGIN CERTIFICATE).",
                CertificateRefusal::NotRsa => {
                    "The certificate's key must be RSA: client assertions are RS256 or PS256."
                }
            }
            .into(),
        )
    })?;
    match state.store().add_app_certificate(tenant_id, id, &certificate, state.now()).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(certificate_body(&certificate))).into_response()),
        Err(StoreError::NotFound) => Err(no_such_app(tenant_id, id)),
        Err(StoreError::AlreadyExists(_)) => Err(ApiError::Conflict(format!(
            "application {id} already has the certificate {}",
            certificate.thumbprint_sha1
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /_dmsync/tenants/{tid}/applications/{clientId}/certificates/{thumbprint}`: 204. The
/// thumbprint is the SHA-1 one, in any case.
pub(super) async fn delete_certificate(
    State(state): State<AppState>,
    Path((tenant, id, thumbprint)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = client_id(&id)?;
    if state.store().delete_app_certificate(tenant_id, id, &thumbprint.to_ascii_uppercase()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundPlain(format!("Application {id} has no certificate {thumbprint}.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_never_repeat() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for ok in
            ["https://app.contoso.com/auth", "http://localhost", "http://localhost:8400/cb", "http://127.0.0.1:1/"]
        {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in ["http://evil.example/cb", "javascript:alert(1)", "/relative", "", "ftp://x"] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(check_redirect_uri(&format!("https://a/{}", "x".repeat(MAX_REDIRECT_URI_CHARS))).is_err());
    }
}
