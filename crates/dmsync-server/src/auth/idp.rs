//! The built-in identity provider: Entra ID's discovery documents, JWKS and token endpoint (and
//! the device code flow's endpoints, in `device_code.rs`), for the tenants, apps and users in
//! dmsync's database. Tokens are shaped like the v1 tokens Entra issues for Graph, whichever
//! endpoint version asked for them.

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

use dmsync_core::identity::{AppRegistration, Tenant, User};
use dmsync_core::permissions::PrincipalKind;
use dmsync_core::{Clock, Store, TenantId};

use super::assertions::{self, AssertionRefusal};
use super::device_code;
use super::keys::KeyRing;
use super::secrets::verify_secret;
use super::sessions::{self, RefreshRefusal};
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
    pub(super) directory: Arc<dyn Store>,
}

impl Issuer {
    pub fn new(keys: Arc<KeyRing>, clock: Arc<dyn Clock>, directory: Arc<dyn Store>) -> Issuer {
        Issuer { keys, clock, directory }
    }

    pub(super) fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub(super) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub(super) fn directory(&self) -> &dyn Store {
        self.directory.as_ref()
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
        .route("/{tenant}/.well-known/openid-configuration", get(openid_configuration_v1))
        .route("/{tenant}/userrealm/{user}", get(user_realm))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code::device_authorization))
        .route(
            "/{tenant}/oauth2/deviceauth",
            get(device_code::verification_page).post(device_code::verification_submit),
        )
        .route("/{tenant}/oauth2/v2.0/authorize", get(super::authorize::authorize_page).post(super::authorize::sign_in))
        .route("/{tenant}/discovery/instance", get(instance_discovery))
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

/// The token endpoint's refusals, each in Entra ID's own shape (which MSAL and azure-identity
/// parse); [`EntraError::parts`] is the one table of their statuses, codes and texts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum EntraError {
    /// The form is over [`MAX_FORM_BYTES`] or has more than [`MAX_FORM_FIELDS`] fields.
    FormTooLarge,
    /// A required parameter is absent or blank; the text names it as Entra does.
    MissingParameter(&'static str),
    UnsupportedGrantType(String),
    TenantNotFound(String),
    /// A client id that is not a GUID, looked up in the directory the path named.
    ClientIdNotFound {
        client_id: String,
        directory: String,
    },
    /// A well-formed client id that the tenant has no app registration for.
    AppNotRegistered {
        client_id: String,
        domain: String,
    },
    ResourceNotFound {
        resource: String,
        domain: String,
    },
    /// A client credentials request without a `/.default` scope.
    NotADefaultScope(String),
    MissingClientSecret,
    InvalidClientSecret {
        client_id: String,
    },
    /// A `client_assertion` with another `client_assertion_type` than JWT bearer.
    UnsupportedAssertionType,
    /// A client assertion that is not a JWT Entra can read; the text says what is wrong.
    MalformedAssertion(&'static str),
    /// No certificate registered to the app has the thumbprint the assertion names.
    CertificateNotRegistered {
        thumbprint: String,
        client_id: String,
    },
    AssertionSignatureInvalid,
    AssertionClientMismatch,
    AssertionAudienceMismatch,
    AssertionOutsideValidity,
    /// A client assertion whose `jti` was used before.
    AssertionReplayed,
    InvalidUserCredentials,
    /// A refresh token that is not one of ours, or not for this client or tenant.
    MalformedGrant,
    /// A refresh token unused for too long.
    RefreshTokenExpired,
    /// A refresh token whose user was removed or changed password since it was issued.
    GrantRevoked,
    ConsentRequired {
        client_id: String,
    },
    /// A device code whose user has not signed in yet.
    AuthorizationPending,
    /// A device code polled sooner than the interval after its last poll.
    SlowDown,
    /// A device code past its `expires_in`.
    DeviceCodeExpired,
    /// A device code whose user cancelled on the verification page.
    AuthorizationDeclined,
    /// A device code that is not one of ours, or not this client's or this authority's.
    BadVerificationCode,
    /// A device code whose tokens were issued already.
    DeviceCodeRedeemed,
    /// An `authorize` request whose redirect URI is neither a loopback address nor registered
    /// to the app. Shown on the page, never redirected to.
    RedirectUriNotAllowed {
        redirect_uri: String,
        client_id: String,
    },
    /// An `authorize` request without a PKCE challenge, or with a malformed one.
    PkceRequired,
    /// A `code_challenge_method` other than `S256` (`plain` included).
    UnsupportedChallengeMethod(String),
    UnsupportedResponseType(String),
    /// `prompt=none`: dmsync keeps no browser session, so no user is ever signed in silently.
    LoginRequired,
    /// A sign-in form posted without the form token of the page that showed it, or with one that
    /// does not match its parameters or has expired.
    InvalidFlowToken,
    /// An authorization code redeemed a second time.
    CodeAlreadyRedeemed,
    /// An authorization code older than its ten minutes.
    CodeExpired,
    /// A `code_verifier` that is missing or whose S256 hash is not the code's challenge.
    CodeVerifierMismatch,
    /// A token request's `redirect_uri` that is not the one the code was issued to.
    RedirectUriMismatch {
        given: String,
        expected: String,
    },
    /// An authorization code redeemed by a client other than the one it was issued to.
    CodeForAnotherClient,
}

impl EntraError {
    /// The table: HTTP status, OAuth `error`, AADSTS code and description of every refusal.
    pub(super) fn parts(&self) -> (StatusCode, &'static str, u32, String) {
        use EntraError::*;
        let bad = StatusCode::BAD_REQUEST;
        match self {
            FormTooLarge => (
                bad,
                "invalid_request",
                90100,
                format!(
                    "The request body is not valid: it is larger than {MAX_FORM_BYTES} bytes or has more than {MAX_FORM_FIELDS} parameters."
                ),
            ),
            MissingParameter(names) => (
                bad,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: {names}."),
            ),
            UnsupportedGrantType(grant) => (
                bad,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ),
            TenantNotFound(tenant) => (
                bad,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ),
            ClientIdNotFound { client_id, directory } => (
                bad,
                "unauthorized_client",
                700016,
                format!("Application with identifier '{client_id}' was not found in the directory '{directory}'."),
            ),
            AppNotRegistered { client_id, domain } => (
                bad,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{domain}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            ),
            ResourceNotFound { resource, domain } => (
                bad,
                "invalid_resource",
                500011,
                format!("The resource principal named {resource} was not found in the tenant named {domain}."),
            ),
            NotADefaultScope(scope) => (
                bad,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ),
            MissingClientSecret => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
            ),
            InvalidClientSecret { client_id } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ),
            UnsupportedAssertionType => (
                bad,
                "invalid_request",
                50027,
                format!("Invalid JWT token. 'client_assertion_type' must be '{}'.", assertions::JWT_BEARER),
            ),
            MalformedAssertion(why) => {
                (bad, "invalid_request", 50027, format!("Invalid JWT token. The client assertion is invalid: {why}."))
            }
            CertificateNotRegistered { thumbprint, client_id } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
                ),
            ),
            AssertionSignatureInvalid => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.".into(),
            ),
            AssertionClientMismatch => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
            ),
            AssertionAudienceMismatch => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer.".into(),
            ),
            AssertionOutsideValidity => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.".into(),
            ),
            AssertionReplayed => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50027,
                "Invalid JWT token. The client assertion was already used: its 'jti' must be unique.".into(),
            ),
            InvalidUserCredentials => (
                bad,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.".into(),
            ),
            MalformedGrant => (bad, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.".into()),
            RefreshTokenExpired => (
                bad,
                "invalid_grant",
                700082,
                format!(
                    "The refresh token has expired due to inactivity. The token was issued on a date more than {} days ago.",
                    sessions::REFRESH_LIFETIME_SECONDS / 86_400
                ),
            ),
            GrantRevoked => (
                bad,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.".into(),
            ),
            RedirectUriNotAllowed { redirect_uri, client_id } => (
                bad,
                "invalid_request",
                50011,
                format!(
                    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
                ),
            ),
            PkceRequired => (
                bad,
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required: send a code_challenge (43 to 128 characters) with code_challenge_method 'S256'.".into(),
            ),
            UnsupportedChallengeMethod(method) => (
                bad,
                "invalid_request",
                9002325,
                format!(
                    "Proof Key for Code Exchange is required with code_challenge_method 'S256'; '{method}' is not accepted."
                ),
            ),
            UnsupportedResponseType(response_type) => (
                bad,
                "unsupported_response_type",
                700054,
                format!("response_type '{response_type}' is not enabled for the application."),
            ),
            LoginRequired => (
                bad,
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.".into(),
            ),
            InvalidFlowToken => (bad, "invalid_request", 90100, "flowToken parameter is empty or not valid.".into()),
            CodeAlreadyRedeemed => (
                bad,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.".into(),
            ),
            CodeExpired => (
                bad,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.".into(),
            ),
            CodeVerifierMismatch => (
                bad,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.".into(),
            ),
            RedirectUriMismatch { given, expected } => (
                bad,
                "invalid_grant",
                500112,
                format!(
                    "The reply address '{given}' does not match the reply address '{expected}' provided when requesting Authorization code."
                ),
            ),
            CodeForAnotherClient => (bad, "invalid_grant", 70000, "Provided grant is invalid or malformed.".into()),
            ConsentRequired { client_id } => (
                bad,
                "invalid_grant",
                65001,
                format!(
                    "The user or administrator has not consented to use the application with ID '{client_id}'. Send an interactive authorization request for this user and resource."
                ),
            ),
            AuthorizationPending => (
                bad,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.".into(),
            ),
            // Entra documents no AADSTS code of its own for RFC 8628's slow_down; 70016 is its
            // device flow's polling code.
            SlowDown => (
                bad,
                "slow_down",
                70016,
                format!(
                    "OAuth 2.0 device flow error. Polling too frequently: wait at least {} seconds between requests.",
                    dmsync_core::device_codes::POLL_INTERVAL.whole_seconds()
                ),
            ),
            DeviceCodeExpired => (
                bad,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device code has expired.".into(),
            ),
            AuthorizationDeclined => {
                (bad, "authorization_declined", 65004, "User declined to consent to access the app.".into())
            }
            BadVerificationCode => (
                bad,
                "bad_verification_code",
                70018,
                "The provided value for the input parameter 'device_code' is not valid.".into(),
            ),
            DeviceCodeRedeemed => (
                bad,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.".into(),
            ),
        }
    }

    /// The error's body, stamped with the request's ids as Entra stamps its own.
    pub(super) fn render(&self, ctx: &RequestContext) -> Response {
        let (status, error, code, description) = self.parts();
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
                ctx.request_id(), ctx.client_request_id()
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": ctx.request_id(),
            "correlation_id": ctx.client_request_id(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ForeignErrorBody);
        response
    }
}

/// Why a token request failed: refused as Entra refuses, or an error of dmsync's own (a
/// database failure), which renders as every other error does.
pub(super) enum TokenFailure {
    Entra(EntraError),
    Api(ApiError),
}

/// The answer of an identity endpoint that speaks Entra's protocol: its response, or its refusal
/// in Entra's shape (or dmsync's own error body for a failure of dmsync's own).
pub(super) fn answer(outcome: Result<Response, TokenFailure>, ctx: &RequestContext) -> Response {
    match outcome {
        Ok(response) => response,
        Err(TokenFailure::Entra(refusal)) => refusal.render(ctx),
        Err(TokenFailure::Api(error)) => error.into_response(),
    }
}

impl From<EntraError> for TokenFailure {
    fn from(e: EntraError) -> Self {
        TokenFailure::Entra(e)
    }
}

impl From<ApiError> for TokenFailure {
    fn from(e: ApiError) -> Self {
        TokenFailure::Api(e)
    }
}

impl From<dmsync_core::StoreError> for TokenFailure {
    fn from(e: dmsync_core::StoreError) -> Self {
        TokenFailure::Api(e.into())
    }
}

pub(super) async fn resolve_tenant(issuer: &Issuer, segment: &str) -> Result<Option<Tenant>, ApiError> {
    Ok(match segment.parse::<TenantId>() {
        Ok(id) => issuer.directory.tenant(id).await?,
        Err(_) => issuer.directory.tenant_by_domain(segment).await?,
    })
}

async fn jwks(State(issuer): State<Issuer>) -> Json<serde_json::Value> {
    Json(issuer.keys.jwks().await)
}

/// What an authority's tenant segment names: a tenant (by id or by verified domain), or one of
/// Entra's multi-tenant audiences.
enum Authority {
    Tenant(Tenant),
    /// `common` and `organizations`: the tenant is known only once a user signs in, so the
    /// documents say `{tenantid}` where the tenant's id would be.
    AnyTenant(&'static str),
    /// `consumers`: personal accounts, whose tenant is fixed.
    Consumers,
}

impl Authority {
    /// The segment the documents' endpoints use: the tenant's id (Entra writes the id even when
    /// the document was asked for by domain), or the audience's name.
    fn segment(&self) -> String {
        match self {
            Authority::Tenant(tenant) => tenant.id.to_string(),
            Authority::AnyTenant(name) => (*name).to_owned(),
            Authority::Consumers => "consumers".to_owned(),
        }
    }

    /// The tenant id as the issuer names it.
    fn issuer_tenant(&self) -> String {
        match self {
            Authority::Tenant(tenant) => tenant.id.to_string(),
            Authority::AnyTenant(_) => "{tenantid}".to_owned(),
            Authority::Consumers => dmsync_core::PERSONAL_ACCOUNT_TENANT.to_string(),
        }
    }

    /// Entra's region of the tenant's data; none for the multi-tenant documents.
    fn region(&self) -> serde_json::Value {
        match self {
            Authority::Tenant(_) => json!("NA"),
            _ => serde_json::Value::Null,
        }
    }
}

async fn resolve_authority(issuer: &Issuer, segment: &str) -> Result<Option<Authority>, ApiError> {
    Ok(match segment.to_ascii_lowercase().as_str() {
        "common" => Some(Authority::AnyTenant("common")),
        "organizations" => Some(Authority::AnyTenant("organizations")),
        "consumers" => Some(Authority::Consumers),
        _ => resolve_tenant(issuer, segment).await?.map(Authority::Tenant),
    })
}

/// The v2.0 OpenID Connect discovery document, for a tenant (by id or domain), `common`,
/// `organizations` or `consumers`, with absolute URLs on the host the client used.
async fn openid_configuration(
    State(issuer): State<Issuer>,
    Path(tenant): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let Some(authority) = resolve_authority(&issuer, &tenant).await? else {
        return Ok(EntraError::TenantNotFound(tenant).render(&ctx));
    };
    let base = format!("{}/{}", ctx.base_url(), authority.segment());
    let mut document = json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{}/{}/v2.0", ctx.base_url(), authority.issuer_tenant()),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "msgraph_host", "aud", "exp", "iat", "nonce",
            "preferred_username", "name", "tid", "ver", "oid",
        ],
        "tenant_region_scope": authority.region(),
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    });
    if let Authority::Tenant(t) = &authority {
        document["access_token_issuer"] = json!(v1_issuer(t.id));
    }
    Ok(Json(document).into_response())
}

/// The v1 document (`/{tenant}/.well-known/openid-configuration`), which older libraries and
/// token validators read: the issuer of the v1 tokens dmsync issues (`sts.windows.net`) and the
/// keys. Its endpoints are Entra's v1 ones; dmsync serves the keys, and signs in through v2.0.
async fn openid_configuration_v1(
    State(issuer): State<Issuer>,
    Path(tenant): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let Some(authority) = resolve_authority(&issuer, &tenant).await? else {
        return Ok(EntraError::TenantNotFound(tenant).render(&ctx));
    };
    let base = format!("{}/{}", ctx.base_url(), authority.segment());
    Ok(Json(json!({
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{}/common/discovery/keys", ctx.base_url()),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": format!("https://sts.windows.net/{}/", authority.issuer_tenant()),
        "microsoft_multi_refresh_token": true,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "msgraph_host", "aud", "exp", "iat", "nonce", "tid"],
        "tenant_region_scope": authority.region(),
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }))
    .into_response())
}

/// The user realm (`/common/userrealm/{upn}?api-version=1.0` or `2.0`), which MSAL asks before a
/// password grant to learn whether the account is federated: every tenant's domain is
/// `Managed` (dmsync federates nothing), any other domain `Unknown`, as Entra answers.
async fn user_realm(
    State(issuer): State<Issuer>,
    Path((_, user)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let version = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| "1.0".to_owned());
    let domain = user.rsplit_once('@').map_or("", |(_, domain)| domain);
    let tenant = if domain.is_empty() { None } else { issuer.directory.tenant_by_domain(domain).await? };
    let body = match (version.as_str(), &tenant) {
        ("2.0", Some(tenant)) => json!({
            "NameSpaceType": "Managed",
            "Login": user,
            "DomainName": tenant.domain,
            "FederationBrandName": tenant.domain,
            "TenantBrandingInfo": null,
            "cloud_instance_name": "microsoftonline.com",
        }),
        ("2.0", None) => json!({
            "NameSpaceType": "Unknown",
            "Login": user,
            "DomainName": domain,
            "cloud_instance_name": "microsoftonline.com",
        }),
        (_, Some(tenant)) => json!({
            "ver": "1.0",
            "account_type": "Managed",
            "domain_name": tenant.domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }),
        (_, None) => json!({ "ver": "1.0", "account_type": "Unknown", "cloud_instance_name": "microsoftonline.com" }),
    };
    Ok(Json(body).into_response())
}

/// The aliases of each cloud's sign-in host, as Entra's instance discovery lists them.
const CLOUD_ALIASES: &[(&str, &str, &[&str])] = &[
    (
        "login.microsoftonline.com",
        "login.windows.net",
        &["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
    ),
    (
        "login.partner.microsoftonline.cn",
        "login.partner.microsoftonline.cn",
        &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
    ),
    ("login.microsoftonline.de", "login.microsoftonline.de", &["login.microsoftonline.de"]),
    ("login.microsoftonline.us", "login.microsoftonline.us", &["login.microsoftonline.us", "login.usgovcloudapi.net"]),
    ("login-us.microsoftonline.com", "login-us.microsoftonline.com", &["login-us.microsoftonline.com"]),
];

/// Instance discovery (`/common/discovery/instance?authorization_endpoint=…`), which MSAL
/// calls for an authority it does not know: the OpenID document of the tenant the
/// authorization endpoint names (on the host it names, or the one addressed), and the cloud
/// aliases. Entra refuses hosts outside its clouds; dmsync answers for any, since its own host
/// is one.
async fn instance_discovery(
    Path(tenant): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Response {
    let endpoint = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(name, _)| name == "authorization_endpoint")
        .and_then(|(_, value)| value.parse::<axum::http::Uri>().ok());
    let (origin, tenant, v2) = match endpoint.as_ref().and_then(|uri| Some((uri, uri.scheme_str()?, uri.authority()?)))
    {
        Some((uri, scheme, authority)) => {
            let path_tenant = uri.path().split('/').find(|s| !s.is_empty()).unwrap_or(&tenant).to_owned();
            (format!("{scheme}://{authority}"), path_tenant, uri.path().contains("/v2.0/"))
        }
        None => (ctx.base_url().to_owned(), tenant, true),
    };
    let version = if v2 { "v2.0/" } else { "" };
    let metadata: Vec<serde_json::Value> = CLOUD_ALIASES
        .iter()
        .map(|(network, cache, aliases)| json!({ "preferred_network": network, "preferred_cache": cache, "aliases": aliases }))
        .collect();
    Json(json!({
        "tenant_discovery_endpoint": format!("{origin}/{tenant}/{version}.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": metadata,
    }))
    .into_response()
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

fn token_body(access_token: String, scope: Option<String>) -> serde_json::Value {
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "access_token": access_token,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    body
}

/// A token response, which no cache may keep.
pub(super) fn no_store(body: serde_json::Value) -> Response {
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
pub(super) type Form = std::collections::HashMap<String, String>;

pub(super) async fn read_form(body: Body) -> Option<Form> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()?;
    parse_form(&bytes)
}

pub(super) fn parse_form(bytes: &[u8]) -> Option<Form> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(bytes).into_owned().take(MAX_FORM_FIELDS + 1).collect();
    (fields.len() <= MAX_FORM_FIELDS).then(|| fields.into_iter().collect())
}

/// The client a token request names: its id, and the credential it sent, if any: a secret (in
/// the form or in a Basic header) or a client assertion.
pub(super) struct Client {
    pub(super) id: String,
    pub(super) uuid: Uuid,
    pub(super) secret: Option<String>,
    pub(super) assertion: Option<String>,
}

impl Client {
    fn has_credential(&self) -> bool {
        self.secret.is_some() || self.assertion.is_some()
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`, form-encoded: `client_credentials`, `password`,
/// `refresh_token` and the device code grant.
async fn token(
    State(issuer): State<Issuer>,
    Path(tenant_segment): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = match read_form(body).await {
        Some(form) => grant(&issuer, &tenant_segment, &headers, &form, ctx.base_url()).await,
        None => Err(EntraError::FormTooLarge.into()),
    };
    answer(outcome, &ctx)
}

/// Reads what every grant shares (the grant type and the client) and hands over to the grant.
async fn grant(
    issuer: &Issuer,
    tenant_segment: &str,
    headers: &HeaderMap,
    form: &Form,
    origin: &str,
) -> Result<Response, TokenFailure> {
    let field = |name: &str| form.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    let grant_type = field("grant_type").ok_or(EntraError::MissingParameter("'grant_type'"))?;
    // As with form fields, a blank id or secret in the Basic header counts as not sent: Entra
    // asks for the missing parameter, and no client authenticates with an empty secret.
    let nonblank = |s: String| (!s.trim().is_empty()).then_some(s);
    let (basic_id, basic_secret) = basic_credentials(headers).unzip();
    let (basic_id, basic_secret) = (basic_id.and_then(nonblank), basic_secret.and_then(nonblank));
    let id = field("client_id").map(str::to_owned).or(basic_id).ok_or(EntraError::MissingParameter("'client_id'"))?;
    let secret = field("client_secret").map(str::to_owned).or(basic_secret);
    let Ok(uuid) = Uuid::parse_str(&id) else {
        return Err(EntraError::ClientIdNotFound { client_id: id, directory: tenant_segment.to_owned() }.into());
    };
    let assertion = match (field("client_assertion"), field("client_assertion_type")) {
        (None, _) => None,
        (Some(assertion), Some(assertions::JWT_BEARER)) => Some(assertion.to_owned()),
        (Some(_), _) => return Err(EntraError::UnsupportedAssertionType.into()),
    };
    let client = Client { id, uuid, secret, assertion };
    let scope = field("scope").unwrap_or("");
    let session = Session { origin, client_info: field("client_info") == Some("1"), scope, nonce: None };
    match grant_type {
        "client_credentials" => client_credentials(issuer, tenant_segment, client, scope, origin).await,
        "password" => {
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return Err(EntraError::MissingParameter("'username' and 'password'").into());
            };
            password_grant(issuer, tenant_segment, client, session, username, password).await
        }
        "refresh_token" => {
            let token = field("refresh_token").ok_or(EntraError::MissingParameter("'refresh_token'"))?;
            refresh_grant(issuer, tenant_segment, client, session, token).await
        }
        // msal-node (and so @azure/identity) and MSAL.NET send Entra's short name for the grant.
        device_code::GRANT_TYPE | "device_code" => {
            let code = field("device_code").ok_or(EntraError::MissingParameter("'device_code'"))?;
            device_code::device_code_grant(issuer, tenant_segment, client, session, code).await
        }
        "authorization_code" => {
            let code = field("code").ok_or(EntraError::MissingParameter("'code'"))?;
            let redirect_uri = field("redirect_uri").ok_or(EntraError::MissingParameter("'redirect_uri'"))?;
            let redemption = Redemption { code, redirect_uri, code_verifier: field("code_verifier") };
            super::authorize::authorization_code_grant(issuer, tenant_segment, client, session, redemption).await
        }
        other => Err(EntraError::UnsupportedGrantType(other.to_owned()).into()),
    }
}

/// What a user's grant answers besides the access token: the requested scopes, the host the
/// client signed in on (the id token's issuer), and whether it asked for `client_info`.
pub(super) struct Session<'a> {
    pub(super) origin: &'a str,
    pub(super) client_info: bool,
    pub(super) scope: &'a str,
    /// The `nonce` of the authorization request, which the id token repeats.
    pub(super) nonce: Option<&'a str>,
}

/// What an `authorization_code` token request presents besides the client.
pub(super) struct Redemption<'a> {
    pub(super) code: &'a str,
    pub(super) redirect_uri: &'a str,
    pub(super) code_verifier: Option<&'a str>,
}

/// The answer to a user's grant: the access token, and, as Entra gives them to the OpenID
/// scopes MSAL always asks for, the id token, a new refresh token and `client_info`.
pub(super) async fn user_token_response(
    issuer: &Issuer,
    user: &User,
    client: &Client,
    session: &Session<'_>,
    granted: Vec<String>,
) -> Result<Response, TokenFailure> {
    let asked = |name: &str| session.scope.split_whitespace().any(|s| s.eq_ignore_ascii_case(name));
    let scope_out = echoed_scopes(session.scope, &granted);
    let refresh =
        if asked("offline_access") { Some(issuer.refresh_token(user, &client.id, &granted).await?) } else { None };
    let access_token = issuer
        .mint(MintRequest {
            tenant_id: user.tenant_id,
            kind: PrincipalKind::Delegated,
            permissions: granted,
            app_id: client.uuid,
            app_display_name: "dmsync client".into(),
            object_id: user.object_id,
            user_principal_name: Some(user.user_principal_name.clone()),
            name: Some(user.display_name.clone()),
            lifetime_seconds: TOKEN_LIFETIME_SECONDS,
        })
        .await?;
    let mut response = token_body(access_token, Some(scope_out));
    if asked("openid") {
        response["id_token"] = json!(issuer.id_token(user, &client.id, session.origin, session.nonce).await?);
    }
    if let Some(refresh) = refresh {
        response["refresh_token"] = json!(refresh);
    }
    if session.client_info {
        response["client_info"] = json!(sessions::client_info(user));
    }
    Ok(no_store(response))
}

/// The client credentials grant: an app token with the app's roles, for a `/.default` scope.
async fn client_credentials(
    issuer: &Issuer,
    tenant_segment: &str,
    client: Client,
    scope: &str,
    origin: &str,
) -> Result<Response, TokenFailure> {
    let tenant = resolve_tenant(issuer, tenant_segment)
        .await?
        .ok_or_else(|| EntraError::TenantNotFound(tenant_segment.to_owned()))?;
    let default_resource = scope.split_whitespace().find_map(|s| s.strip_suffix("/.default"));
    match default_resource {
        Some(r) if GRAPH_RESOURCES.contains(&r.trim_end_matches('/')) => {}
        Some(r) => {
            return Err(EntraError::ResourceNotFound { resource: r.to_owned(), domain: tenant.domain }.into());
        }
        None => return Err(EntraError::NotADefaultScope(scope.to_owned()).into()),
    }
    let Some(app) = issuer.directory.app(tenant.id, client.uuid).await? else {
        return Err(EntraError::AppNotRegistered { client_id: client.id, domain: tenant.domain }.into());
    };
    if !client.has_credential() {
        return Err(EntraError::MissingClientSecret.into());
    }
    authenticate_client(issuer, &tenant, &app, &client, origin).await?;
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
    Ok(no_store(token_body(token, None)))
}

/// The resource owner password grant: a delegated token with the user's consented scopes.
async fn password_grant(
    issuer: &Issuer,
    tenant_segment: &str,
    client: Client,
    session: Session<'_>,
    username: &str,
    password: &str,
) -> Result<Response, TokenFailure> {
    let (tenant, user) = check_user_password(issuer, tenant_segment, username, password).await?;
    check_confidential_client(issuer, &tenant, &client, session.origin).await?;
    let consented = consented_scopes(issuer, &user, client.uuid).await?;
    let granted = granted_scopes(session.scope, &consented, &client.id, &tenant.domain)?;
    user_token_response(issuer, &user, &client, &session, granted).await
}

/// The tenant and the user a user name and password sign in, as the password grant and the
/// sign-in page check them: `organizations` and `common` pick the tenant from the user's domain.
pub(super) async fn check_user_password(
    issuer: &Issuer,
    tenant_segment: &str,
    username: &str,
    password: &str,
) -> Result<(Tenant, User), TokenFailure> {
    let tenant = match tenant_segment.to_ascii_lowercase().as_str() {
        "organizations" | "common" => {
            let domain = username.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            issuer.directory.tenant_by_domain(domain).await?
        }
        _ => resolve_tenant(issuer, tenant_segment).await?,
    };
    let tenant = tenant.ok_or_else(|| EntraError::TenantNotFound(tenant_segment.to_owned()))?;
    let user = issuer.directory.user_by_upn(tenant.id, username).await?.ok_or(EntraError::InvalidUserCredentials)?;
    if !verify_secret(password, &user.password_hash) {
        return Err(EntraError::InvalidUserCredentials.into());
    }
    Ok((tenant, user))
}

/// The delegated permissions a user's token through `client` may carry: those the user
/// consented to, narrowed to those granted to the app when the client is a registered app
/// with delegated permissions of its own.
pub(super) async fn consented_scopes(
    issuer: &Issuer,
    user: &User,
    client_id: Uuid,
) -> Result<Vec<String>, TokenFailure> {
    let app = issuer.directory.app(user.tenant_id, client_id).await?;
    Ok(match app.and_then(|app| app.delegated_permissions) {
        Some(granted_to_app) => {
            user.scopes.iter().filter(|s| granted_to_app.iter().any(|g| g.eq_ignore_ascii_case(s))).cloned().collect()
        }
        None => user.scopes.clone(),
    })
}

/// A confidential client must still prove itself; a public client id needs no secret.
pub(super) async fn check_confidential_client(
    issuer: &Issuer,
    tenant: &Tenant,
    client: &Client,
    origin: &str,
) -> Result<(), TokenFailure> {
    if client.has_credential()
        && let Some(app) = issuer.directory.app(tenant.id, client.uuid).await?
    {
        authenticate_client(issuer, tenant, &app, client, origin).await?;
    }
    Ok(())
}

/// Checks each credential the client sent: its secret against the app's, and its assertion
/// against the app's certificates, remembering the assertion so that it is never accepted twice.
async fn authenticate_client(
    issuer: &Issuer,
    tenant: &Tenant,
    app: &AppRegistration,
    client: &Client,
    origin: &str,
) -> Result<(), TokenFailure> {
    if let Some(secret) = &client.secret
        && !verify_secret(secret, &app.secret_hash)
    {
        return Err(EntraError::InvalidClientSecret { client_id: client.id.clone() }.into());
    }
    let Some(assertion) = &client.assertion else {
        return Ok(());
    };
    let certificates = issuer.directory.app_certificates(tenant.id, app.client_id).await?;
    // Assertions are dated by the client's wall clock, so they are checked against the system's
    // time rather than the Clock (see the assertions module).
    let now = time::OffsetDateTime::now_utc();
    let accepted = assertions::verify_assertion(
        assertion,
        &client.id,
        &certificates,
        |aud| assertion_audience_matches(aud, origin, tenant),
        now,
    )
    .map_err(|refusal| match refusal {
        AssertionRefusal::Malformed(why) => EntraError::MalformedAssertion(why),
        AssertionRefusal::UnknownCertificate(thumbprint) => {
            EntraError::CertificateNotRegistered { thumbprint, client_id: client.id.clone() }
        }
        AssertionRefusal::BadSignature => EntraError::AssertionSignatureInvalid,
        AssertionRefusal::WrongClient => EntraError::AssertionClientMismatch,
        AssertionRefusal::WrongAudience => EntraError::AssertionAudienceMismatch,
        AssertionRefusal::OutsideValidity => EntraError::AssertionOutsideValidity,
    })?;
    if !issuer.directory.consume_assertion(tenant.id, app.client_id, &accepted.jti, accepted.expires_at, now).await? {
        return Err(EntraError::AssertionReplayed.into());
    }
    Ok(())
}

/// Whether a client assertion's `aud` names this tenant's token endpoint (v2.0 or v1, by tenant
/// id or domain) or its v2.0 issuer, on the host the client used or on one of Entra's own
/// sign-in hosts, which a client that reaches dmsync through the proxy names.
fn assertion_audience_matches(aud: &str, origin: &str, tenant: &Tenant) -> bool {
    let entra_hosts = CLOUD_ALIASES.iter().flat_map(|(_, _, aliases)| aliases.iter());
    let Some(path) = std::iter::once(origin.to_owned())
        .chain(entra_hosts.map(|host| format!("https://{host}")))
        .find_map(|o| aud.strip_prefix(o.as_str()).filter(|rest| rest.starts_with('/')).map(str::to_owned))
    else {
        return false;
    };
    let mut segments = path.trim_start_matches('/').trim_end_matches('/').splitn(2, '/');
    let (Some(segment), Some(rest)) = (segments.next(), segments.next()) else {
        return false;
    };
    let names_tenant =
        segment.parse::<TenantId>().is_ok_and(|id| id == tenant.id) || segment.eq_ignore_ascii_case(&tenant.domain);
    names_tenant && matches!(rest, "oauth2/v2.0/token" | "oauth2/token" | "v2.0")
}

/// The refresh token grant: a new access token (and a new refresh token: they rotate) for the
/// user and the client the refresh token was issued to, with the scopes granted at sign-in or
/// fewer. Refused when the token is not one of ours, has expired, was issued to another client
/// or tenant, or when its user was removed or changed password since.
async fn refresh_grant(
    issuer: &Issuer,
    tenant_segment: &str,
    client: Client,
    session: Session<'_>,
    token: &str,
) -> Result<Response, TokenFailure> {
    let claims = issuer.read_refresh_token(token).map_err(|refusal| match refusal {
        RefreshRefusal::Invalid => EntraError::MalformedGrant,
        RefreshRefusal::Expired => EntraError::RefreshTokenExpired,
    })?;
    let tenant = match tenant_segment.to_ascii_lowercase().as_str() {
        "organizations" | "common" => issuer.directory.tenant(claims.tid).await?,
        _ => resolve_tenant(issuer, tenant_segment).await?,
    };
    let tenant = tenant.ok_or_else(|| EntraError::TenantNotFound(tenant_segment.to_owned()))?;
    if tenant.id != claims.tid || !claims.azp.eq_ignore_ascii_case(&client.id) {
        return Err(EntraError::MalformedGrant.into());
    }
    let user = issuer.directory.user_by_upn(tenant.id, &claims.upn).await?;
    let Some(user) = user.filter(|u| u.object_id == claims.oid && sessions::password_fingerprint(u) == claims.pwd)
    else {
        return Err(EntraError::GrantRevoked.into());
    };
    check_confidential_client(issuer, &tenant, &client, session.origin).await?;
    let held: Vec<String> = claims.scp.split_whitespace().map(str::to_owned).collect();
    let granted = granted_scopes(session.scope, &held, &client.id, &tenant.domain)?;
    user_token_response(issuer, &user, &client, &session, granted).await
}

/// The `scope` of a user's token response: the Graph scopes granted, each in the form it was
/// asked for (`https://graph.microsoft.com/X` or `X`), as Entra echoes them and as MSAL keys its
/// cached tokens by; `.default` stands for every granted scope, with its resource prefix.
fn echoed_scopes(requested: &str, granted: &[String]) -> String {
    let mut echoed: Vec<String> = Vec::new();
    for scope in requested.split_whitespace().filter(|s| !OIDC_SCOPES.contains(s)) {
        match graph_scope_name(scope) {
            Some(".default") => {
                let prefix = &scope[..scope.len() - ".default".len()];
                echoed.extend(granted.iter().map(|name| format!("{prefix}{name}")));
            }
            Some(name) if granted.iter().any(|g| g.eq_ignore_ascii_case(name)) => echoed.push(scope.to_owned()),
            _ => {}
        }
    }
    if echoed.is_empty() {
        echoed = granted.to_vec();
    }
    echoed.dedup();
    echoed.join(" ")
}

/// The scopes a delegated token gets: each requested Graph scope the user has consented to,
/// all of them for `.default` or when only OpenID scopes were asked for.
pub(super) fn granted_scopes(
    scope: &str,
    consented: &[String],
    client_id: &str,
    domain: &str,
) -> Result<Vec<String>, EntraError> {
    let mut granted = Vec::new();
    for requested in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&requested) {
            continue;
        }
        match graph_scope_name(requested) {
            Some(".default") => granted = consented.to_vec(),
            Some(name) => match consented.iter().find(|s| s.eq_ignore_ascii_case(name)) {
                Some(s) => granted.push(s.clone()),
                None => return Err(EntraError::ConsentRequired { client_id: client_id.to_owned() }),
            },
            None => {
                return Err(EntraError::ResourceNotFound { resource: requested.to_owned(), domain: domain.to_owned() });
            }
        }
    }
    if scope.split_whitespace().all(|s| OIDC_SCOPES.contains(&s)) {
        granted = consented.to_vec();
    }
    granted.dedup();
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_are_echoed_as_they_were_asked_for() {
        let granted = vec!["A.Read".to_owned(), "B.Read".to_owned()];
        let echo = |requested| echoed_scopes(requested, &granted);
        assert_eq!(
            echo("https://graph.microsoft.com/A.Read openid offline_access"),
            "https://graph.microsoft.com/A.Read"
        );
        assert_eq!(echo("A.Read profile"), "A.Read");
        assert_eq!(
            echo("https://graph.microsoft.com/.default"),
            "https://graph.microsoft.com/A.Read https://graph.microsoft.com/B.Read"
        );
        assert_eq!(echo("openid profile"), "A.Read B.Read");
    }

    #[test]
    fn entra_refusals_come_from_one_table() {
        let (status, error, code, text) = EntraError::MissingParameter("'grant_type'").parts();
        assert_eq!((status, error, code), (StatusCode::BAD_REQUEST, "invalid_request", 900144));
        assert_eq!(text, "The request body must contain the following parameter: 'grant_type'.");
        let (status, error, code, _) = EntraError::MissingClientSecret.parts();
        assert_eq!((status, error, code), (StatusCode::UNAUTHORIZED, "invalid_client", 7000218));
        let device_flow = [
            (EntraError::AuthorizationPending, "authorization_pending", 70016),
            (EntraError::SlowDown, "slow_down", 70016),
            (EntraError::DeviceCodeExpired, "expired_token", 70020),
            (EntraError::AuthorizationDeclined, "authorization_declined", 65004),
            (EntraError::BadVerificationCode, "bad_verification_code", 70018),
            (EntraError::DeviceCodeRedeemed, "invalid_grant", 54005),
        ];
        for (refusal, want_error, want_code) in device_flow {
            let (status, error, code, _) = refusal.parts();
            assert_eq!((status, error, code), (StatusCode::BAD_REQUEST, want_error, want_code), "{refusal:?}");
        }
        for (refusal, expected) in [
            (EntraError::CodeAlreadyRedeemed, ("invalid_grant", 54005)),
            (EntraError::CodeExpired, ("invalid_grant", 70008)),
            (EntraError::CodeVerifierMismatch, ("invalid_grant", 501481)),
            (EntraError::LoginRequired, ("login_required", 50058)),
            (
                EntraError::RedirectUriNotAllowed { redirect_uri: "u".into(), client_id: "c".into() },
                ("invalid_request", 50011),
            ),
        ] {
            let (status, error, code, _) = refusal.parts();
            assert_eq!((status, (error, code)), (StatusCode::BAD_REQUEST, expected));
        }
        let scopes = vec!["DeviceManagementServiceConfig.Read.All".to_owned()];
        assert_eq!(
            granted_scopes("https://graph.microsoft.com/.default", &scopes, "c", "d").unwrap(),
            scopes,
            "'.default' grants what the user consented to"
        );
        assert_eq!(
            granted_scopes("Mail.Read", &scopes, "c", "d").unwrap_err(),
            EntraError::ConsentRequired { client_id: "c".into() }
        );
    }

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
