//! The built-in identity provider: Entra ID's discovery documents, JWKS and token endpoint, for
//! the tenants, apps and users in dmsync's database. Tokens are shaped like the v1 tokens Entra
//! issues for Graph, whichever endpoint version asked for them.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use std::sync::Arc;

use dmsync_core::identity::Tenant;
use dmsync_core::permissions::PrincipalKind;
use dmsync_core::{Clock, Store, TenantId};

use super::keys::KeyRing;
use super::secrets::verify_secret;
use super::v1_issuer;
use crate::error::ApiError;
use crate::http::context::{ForeignErrorBody, RequestContext};

/// Lifetime of the tokens the token endpoint issues (Entra's default is 60 to 90 minutes).
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;
const GRAPH_RESOURCES: &[&str] = &["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"];
/// OpenID Connect scopes that carry no Graph permission.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The token issuer: the signing keys, the Clock that dates its tokens, and the directory it
/// authenticates apps and users against. Handlers take it from the router state.
#[derive(Clone)]
pub struct Issuer {
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    directory: Arc<dyn Store>,
}

impl Issuer {
    pub fn new(keys: Arc<KeyRing>, clock: Arc<dyn Clock>, directory: Arc<dyn Store>) -> Issuer {
        Issuer { keys, clock, directory }
    }
}

pub fn router<S>() -> Router<S>
where
    Issuer: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(openid_configuration))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
}

/// What a token says about its principal.
pub struct MintRequest {
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
    pub permissions: Vec<String>,
    pub app_id: Uuid,
    pub app_display_name: String,
    pub object_id: Uuid,
    pub user_principal_name: Option<String>,
    pub name: Option<String>,
    pub lifetime_seconds: i64,
}

#[derive(Serialize)]
struct AccessTokenClaims {
    aud: &'static str,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    app_displayname: String,
    appid: String,
    appidacr: &'static str,
    idp: String,
    idtyp: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    oid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scp: Option<String>,
    sub: String,
    tid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upn: Option<String>,
    uti: String,
    ver: &'static str,
}

impl Issuer {
    /// Signs a Graph access token, waiting for the first signing key during a first start.
    pub async fn mint(&self, req: MintRequest) -> Result<String, ApiError> {
        self.keys.wait_until_ready().await;
        let now = self.clock.now().unix_timestamp();
        let iss = v1_issuer(req.tenant_id);
        let (idtyp, roles, scp) = match req.kind {
            PrincipalKind::Application => ("app", Some(req.permissions), None),
            PrincipalKind::Delegated => ("user", None, Some(req.permissions.join(" "))),
        };
        let claims = AccessTokenClaims {
            aud: "https://graph.microsoft.com",
            idp: iss.clone(),
            iss,
            iat: now,
            nbf: now,
            exp: now + req.lifetime_seconds,
            app_displayname: req.app_display_name,
            appid: req.app_id.to_string(),
            appidacr: if req.kind == PrincipalKind::Application { "1" } else { "0" },
            idtyp,
            name: req.name,
            oid: req.object_id.to_string(),
            roles,
            scp,
            sub: req.object_id.to_string(),
            tid: req.tenant_id.to_string(),
            unique_name: req.user_principal_name.clone(),
            upn: req.user_principal_name,
            uti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
            ver: "1.0",
        };
        self.keys.sign(&claims).map_err(|e| ApiError::Internal(format!("token signing: {e}")))
    }
}

/// An error in Entra ID's own shape, which MSAL and azure-identity parse.
fn entra_error(status: StatusCode, error: &str, code: u32, description: &str, ctx: &RequestContext) -> Response {
    let timestamp = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        timestamp.year(),
        u8::from(timestamp.month()),
        timestamp.day(),
        timestamp.hour(),
        timestamp.minute(),
        timestamp.second()
    );
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {ts}",
            ctx.request_id, ctx.client_request_id
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": ctx.request_id,
        "correlation_id": ctx.client_request_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(ForeignErrorBody);
    response
}

async fn resolve_tenant(issuer: &Issuer, segment: &str) -> Result<Option<Tenant>, ApiError> {
    Ok(match Uuid::parse_str(segment) {
        Ok(id) => issuer.directory.tenant(id).await?,
        Err(_) => issuer.directory.tenant_by_domain(segment).await?,
    })
}

async fn jwks(State(issuer): State<Issuer>) -> Json<serde_json::Value> {
    Json(issuer.keys.jwks().await)
}

async fn openid_configuration(
    State(issuer): State<Issuer>,
    Path(tenant): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let Some(t) = resolve_tenant(&issuer, &tenant).await? else {
        return Ok(tenant_not_found(&tenant, &ctx));
    };
    let base = format!("{}/{}", ctx.base_url, tenant);
    Ok(Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{}/{}/v2.0", ctx.base_url, t.id),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "scp", "roles", "idtyp"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
        "access_token_issuer": v1_issuer(t.id),
    }))
    .into_response())
}

fn tenant_not_found(tenant: &str, ctx: &RequestContext) -> Response {
    entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
        ctx,
    )
}

/// `client_secret_basic`: the client id and secret in an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn token_response(access_token: String, scope: Option<String>) -> Response {
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "access_token": access_token,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response
}

/// Strips a Graph resource prefix from a requested scope (`https://graph.microsoft.com/X` → `X`).
fn graph_scope_name(scope: &str) -> Option<&str> {
    for resource in GRAPH_RESOURCES {
        if let Some(rest) = scope.strip_prefix(resource).and_then(|r| r.strip_prefix('/')) {
            return Some(rest);
        }
    }
    (!scope.contains('/')).then_some(scope)
}

/// The largest token request body, and the most fields in it. A real request has a handful of
/// short fields; a client assertion (a signed JWT), the longest field any client sends, is a
/// few kilobytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
pub const MAX_FORM_FIELDS: usize = 32;

/// The token request's fields, or `None` when the body is over [`MAX_FORM_BYTES`] or has more
/// than [`MAX_FORM_FIELDS`] fields. The body is read only up to the bound.
async fn read_form(body: Body) -> Option<std::collections::HashMap<String, String>> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()?;
    parse_form(&bytes)
}

fn parse_form(bytes: &[u8]) -> Option<std::collections::HashMap<String, String>> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(bytes).into_owned().take(MAX_FORM_FIELDS + 1).collect();
    (fields.len() <= MAX_FORM_FIELDS).then(|| fields.into_iter().collect())
}

/// `POST /{tenant}/oauth2/v2.0/token`, form-encoded: `client_credentials` and `password`.
async fn token(
    State(issuer): State<Issuer>,
    Path(tenant_segment): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(form) = read_form(body).await else {
        let description = format!(
            "The request body is not valid: it is larger than {MAX_FORM_BYTES} bytes or has more than {MAX_FORM_FIELDS} parameters."
        );
        return Ok(entra_error(StatusCode::BAD_REQUEST, "invalid_request", 90100, &description, &ctx));
    };
    let field = |name: &str| form.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    let bad = |status, error, code, description: &str| Ok(entra_error(status, error, code, description, &ctx));

    let Some(grant_type) = field("grant_type") else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    // As with form fields, a blank id or secret in the Basic header counts as not sent: Entra
    // asks for the missing parameter, and no client authenticates with an empty secret.
    let nonblank = |s: String| (!s.trim().is_empty()).then_some(s);
    let (basic_id, basic_secret) = basic_credentials(&headers).unzip();
    let (basic_id, basic_secret) = (basic_id.and_then(nonblank), basic_secret.and_then(nonblank));
    let Some(client_id) = field("client_id").map(str::to_owned).or(basic_id) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let client_secret = field("client_secret").map(str::to_owned).or(basic_secret);
    let Ok(client_uuid) = Uuid::parse_str(&client_id) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant_segment}'."),
        );
    };
    let scope = field("scope").unwrap_or("");

    match grant_type {
        "client_credentials" => {
            let Some(tenant) = resolve_tenant(&issuer, &tenant_segment).await? else {
                return Ok(tenant_not_found(&tenant_segment, &ctx));
            };
            let default_resource = scope.split_whitespace().find_map(|s| s.strip_suffix("/.default"));
            match default_resource {
                Some(r) if GRAPH_RESOURCES.contains(&r.trim_end_matches('/')) => {}
                Some(r) => {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        "invalid_resource",
                        500011,
                        &format!(
                            "The resource principal named {r} was not found in the tenant named {}.",
                            tenant.domain
                        ),
                    );
                }
                None => {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        1002012,
                        &format!(
                            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                        ),
                    );
                }
            }
            let Some(app) = issuer.directory.app(tenant.id, client_uuid).await? else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    &format!(
                        "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                        tenant.domain
                    ),
                );
            };
            let Some(secret) = client_secret else {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            };
            if !verify_secret(&secret, &app.secret_hash) {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
            let token = issuer
                .mint(MintRequest {
                    tenant_id: tenant.id,
                    kind: PrincipalKind::Application,
                    permissions: app.roles,
                    app_id: app.client_id,
                    app_display_name: app.display_name,
                    object_id: app.object_id,
                    user_principal_name: None,
                    name: None,
                    lifetime_seconds: TOKEN_LIFETIME_SECONDS,
                })
                .await?;
            Ok(token_response(token, None))
        }
        "password" => {
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'username' and 'password'.",
                );
            };
            // `organizations` and `common` pick the tenant from the user's domain.
            let tenant = match tenant_segment.to_ascii_lowercase().as_str() {
                "organizations" | "common" => {
                    let domain = username.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                    issuer.directory.tenant_by_domain(domain).await?
                }
                _ => resolve_tenant(&issuer, &tenant_segment).await?,
            };
            let Some(tenant) = tenant else {
                return Ok(tenant_not_found(&tenant_segment, &ctx));
            };
            let invalid = || {
                entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50126,
                    "Error validating credentials due to invalid username or password.",
                    &ctx,
                )
            };
            let Some(user) = issuer.directory.user_by_upn(tenant.id, username).await? else {
                return Ok(invalid());
            };
            if !verify_secret(password, &user.password_hash) {
                return Ok(invalid());
            }
            // A confidential client must still prove itself; a public client id needs no secret.
            if let (Some(app), Some(secret)) = (issuer.directory.app(tenant.id, client_uuid).await?, &client_secret)
                && !verify_secret(secret, &app.secret_hash)
            {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
            let mut granted = Vec::new();
            for requested in scope.split_whitespace() {
                if OIDC_SCOPES.contains(&requested) {
                    continue;
                }
                match graph_scope_name(requested) {
                    Some(".default") => granted = user.scopes.clone(),
                    Some(name) => match user.scopes.iter().find(|s| s.eq_ignore_ascii_case(name)) {
                        Some(s) => granted.push(s.clone()),
                        None => {
                            return bad(
                                StatusCode::BAD_REQUEST,
                                "invalid_grant",
                                65001,
                                &format!(
                                    "The user or administrator has not consented to use the application with ID '{client_id}'. Send an interactive authorization request for this user and resource."
                                ),
                            );
                        }
                    },
                    None => {
                        return bad(
                            StatusCode::BAD_REQUEST,
                            "invalid_resource",
                            500011,
                            &format!(
                                "The resource principal named {requested} was not found in the tenant named {}.",
                                tenant.domain
                            ),
                        );
                    }
                }
            }
            if scope.split_whitespace().all(|s| OIDC_SCOPES.contains(&s)) {
                granted = user.scopes.clone();
            }
            granted.dedup();
            let scope_out = granted.join(" ");
            let token = issuer
                .mint(MintRequest {
                    tenant_id: tenant.id,
                    kind: PrincipalKind::Delegated,
                    permissions: granted,
                    app_id: client_uuid,
                    app_display_name: "dmsync client".into(),
                    object_id: user.object_id,
                    user_principal_name: Some(user.user_principal_name.clone()),
                    name: Some(user.display_name.clone()),
                    lifetime_seconds: TOKEN_LIFETIME_SECONDS,
                })
                .await?;
            Ok(token_response(token, Some(scope_out)))
        }
        other => bad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_form_is_bounded_in_size_and_fields() {
        assert_eq!(parse_form(b"grant_type=password&username=a%40b&password=x").unwrap()["username"], "a@b");
        let many = vec!["a=1"; MAX_FORM_FIELDS + 1].join("&");
        assert!(parse_form(many.as_bytes()).is_none());
        assert!(parse_form(vec!["a=1"; MAX_FORM_FIELDS].join("&").as_bytes()).is_some());
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_refused_without_reading_it_all() {
        assert!(read_form(Body::from("a".repeat(MAX_FORM_BYTES))).await.is_some());
        assert!(read_form(Body::from("a".repeat(MAX_FORM_BYTES + 1))).await.is_none());
        let endless = futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from_static(&[b'a'; 1024])));
        assert!(read_form(Body::from_stream(endless)).await.is_none(), "stops reading at the bound");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_forms_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            if let Some(form) = parse_form(&bytes) {
                prop_assert!(form.len() <= MAX_FORM_FIELDS);
            }
        }

        #[test]
        fn forms_of_many_fields_are_refused(fields in (MAX_FORM_FIELDS + 1)..20_000usize) {
            prop_assert!(parse_form("x=1&".repeat(fields).as_bytes()).is_none());
        }
    }
}
