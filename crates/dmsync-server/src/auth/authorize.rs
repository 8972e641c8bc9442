//! The authorization code flow with PKCE, as Entra ID runs it for public clients
//! (`acquire_token_interactive`, `Connect-MgGraph -Scopes`): `GET /{tenant}/oauth2/v2.0/authorize`
//! shows a sign-in page, its form posts back to the same address, and a good user name and
//! password send the browser to the client's redirect URI with a one-time code, which the token
//! endpoint's `authorization_code` grant redeems with the PKCE verifier.
//!
//! The client id and the redirect URI are checked before anything is sent to the redirect URI:
//! a request that fails them is answered on the page, so dmsync never redirects a browser to an
//! address nobody registered. Every later refusal goes to the redirect URI, as OAuth says.
//!
//! dmsync keeps no browser session: every sign-in asks for the password, and `prompt=none`
//! answers `login_required`. The form carries the request's parameters as hidden fields with a
//! signed flow token over them, so a POST that did not come from a page dmsync showed (or that
//! changed its parameters) is refused. Codes are stored by their SHA-256 only.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use dmsync_core::identity::{AuthorizationCode, CodeRedemption};

use super::idp::{
    Client, EntraError, Issuer, Redemption, Session, TokenFailure, check_confidential_client, check_user_password,
    consented_scopes, granted_scopes, parse_form, read_form, resolve_tenant, user_token_response,
};
use super::sessions::password_fingerprint;
use super::sign_in_page::{Input, Page, PageForm, form_post_page, render_page};
use crate::error::ApiError;
use crate::http::context::{ForeignErrorBody, RequestContext};

/// How long an authorization code can be redeemed: Entra's ten minutes.
pub const CODE_LIFETIME_SECONDS: i64 = 600;
/// How long a sign-in page's form stays valid: long enough for a person to type, short enough
/// that an old page cannot be replayed days later.
const FLOW_TOKEN_LIFETIME_SECONDS: i64 = 30 * 60;
/// The audience of flow tokens: no resource's, so no API accepts one.
const FLOW_TOKEN_AUDIENCE: &str = "urn:dmsync:authorize_form";
/// The longest query string of an authorization request read. MSAL's are under 2 KiB.
const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The longest value of one parameter (a redirect URI, a state, a scope list).
const MAX_PARAMETER_CHARS: usize = 4096;
/// The longest code or verifier read; RFC 7636 verifiers are at most 128 characters.
const MAX_CODE_CHARS: usize = 512;
const MAX_VERIFIER_CHARS: usize = 128;

/// The parameters of an authorization request that the sign-in form carries as hidden fields
/// and that the flow token signs. Everything else a client sends (MSAL's telemetry) is dropped.
const CARRIED: &[&str] = &[
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "prompt",
    "login_hint",
    "client_info",
];

/// The carried parameters of one request, non-empty values only.
struct Params(BTreeMap<&'static str, String>);

impl Params {
    /// Picks the carried parameters from a parsed query or form; `None` when one is longer than
    /// [`MAX_PARAMETER_CHARS`].
    fn from_form(form: &super::idp::Form) -> Option<Params> {
        let mut params = BTreeMap::new();
        for name in CARRIED {
            if let Some(value) = form.get(*name).filter(|v| !v.is_empty()) {
                if value.chars().count() > MAX_PARAMETER_CHARS {
                    return None;
                }
                params.insert(*name, value.clone());
            }
        }
        Some(Params(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A digest of the tenant segment and every carried parameter, unambiguous (each value is
    /// length-prefixed), which the flow token signs.
    fn digest(&self, tenant_segment: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(tenant_segment.to_ascii_lowercase().as_bytes());
        for name in CARRIED {
            let value = self.get(name).unwrap_or("");
            hash.update([0u8]);
            hash.update(name.as_bytes());
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(hash.finalize())
    }
}

/// How the answer reaches the redirect URI.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    Fragment,
    /// An auto-submitting HTML form that posts the answer.
    FormPost,
}

/// Where, and how, the answer to a checked request goes.
struct Target {
    redirect_uri: String,
    mode: ResponseMode,
    state: Option<String>,
}

/// An authorization request that passed every check that does not need the user.
struct Checked {
    client_id: String,
    client_uuid: Uuid,
    target: Target,
    scope: String,
    nonce: Option<String>,
    code_challenge: String,
    login_hint: Option<String>,
    client_info: bool,
}

/// Why an authorization request is not answered with a code.
enum Refusal {
    /// The client or the redirect URI cannot be trusted: answered on the page.
    Page(EntraError),
    /// Sent to the client at its (checked) redirect URI.
    Redirect(EntraError, Target),
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<dmsync_core::StoreError> for Refusal {
    fn from(e: dmsync_core::StoreError) -> Self {
        Refusal::Api(e.into())
    }
}

/// Whether the browser may be sent to `redirect_uri`: one of the app's registered redirect URIs
/// (exactly), or, for any app, a loopback address over http on any port and path, as Entra
/// allows for native and command-line clients (`http://localhost`, `127.0.0.1`, `[::1]`).
pub fn redirect_uri_allowed(redirect_uri: &str, registered: &[String]) -> bool {
    if registered.iter().any(|r| r == redirect_uri) {
        return true;
    }
    // A user-info part (`http://localhost@evil.example`) or a fragment has no place in a
    // redirect URI, and a backslash is read differently by browsers and URI parsers.
    if redirect_uri.contains(['@', '#', '\\']) || redirect_uri.len() > MAX_PARAMETER_CHARS {
        return false;
    }
    let Ok(uri) = redirect_uri.parse::<Uri>() else { return false };
    let loopback =
        uri.host().is_some_and(|host| host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]");
    uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http")) && loopback
}

/// `scheme://host[:port]` of a checked redirect URI, for the page's `form-action` source;
/// `None` when it holds anything a CSP source may not.
fn origin_of(redirect_uri: &str) -> Option<String> {
    let uri = redirect_uri.parse::<Uri>().ok()?;
    let origin = format!("{}://{}", uri.scheme_str()?, uri.authority()?.as_str());
    origin.chars().all(|c| c.is_ascii_alphanumeric() || "+-.:/[]".contains(c)).then_some(origin)
}

/// The checks Entra makes before it shows the sign-in page, in its order: the tenant, the
/// client, the redirect URI (refusals on the page), then the rest (refusals to the client).
async fn check(issuer: &Issuer, tenant_segment: &str, params: &Params) -> Result<Checked, Refusal> {
    let tenant = match tenant_segment.to_ascii_lowercase().as_str() {
        "organizations" | "common" => None,
        _ => Some(
            resolve_tenant(issuer, tenant_segment)
                .await?
                .ok_or_else(|| Refusal::Page(EntraError::TenantNotFound(tenant_segment.to_owned())))?,
        ),
    };
    let client_id = params.get("client_id").ok_or(Refusal::Page(EntraError::MissingParameter("'client_id'")))?;
    let Ok(client_uuid) = Uuid::parse_str(client_id) else {
        let directory = tenant_segment.to_owned();
        return Err(Refusal::Page(EntraError::ClientIdNotFound { client_id: client_id.to_owned(), directory }));
    };
    // A client id that is not an app of the tenant is a first-party public client, as for the
    // password grant (Microsoft's own tools are registered in every tenant): it may use the
    // loopback redirect URIs only. For `organizations` and `common` the app is known only once
    // the user's tenant is, so before that only loopback redirect URIs pass.
    let app = match &tenant {
        Some(tenant) => issuer.directory.app(tenant.id, client_uuid).await?,
        None => None,
    };
    let redirect_uri =
        params.get("redirect_uri").ok_or(Refusal::Page(EntraError::MissingParameter("'redirect_uri'")))?;
    let registered = app.as_ref().map_or(&[][..], |app| &app.redirect_uris[..]);
    if !redirect_uri_allowed(redirect_uri, registered) {
        let (redirect_uri, client_id) = (redirect_uri.to_owned(), client_id.to_owned());
        return Err(Refusal::Page(EntraError::RedirectUriNotAllowed { redirect_uri, client_id }));
    }
    let mode = match params.get("response_mode") {
        Some("form_post") => ResponseMode::FormPost,
        Some("fragment") => ResponseMode::Fragment,
        _ => ResponseMode::Query,
    };
    let target = Target { redirect_uri: redirect_uri.to_owned(), mode, state: params.get("state").map(str::to_owned) };
    let refuse = |error: EntraError, target: Target| Err(Refusal::Redirect(error, target));
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => return refuse(EntraError::UnsupportedResponseType(other.to_owned()), target),
        None => return refuse(EntraError::MissingParameter("'response_type'"), target),
    }
    let Some(scope) = params.get("scope") else { return refuse(EntraError::MissingParameter("'scope'"), target) };
    // An S256 challenge is base64url of 32 bytes: 43 characters.
    let code_challenge = match params.get("code_challenge") {
        Some(c) if c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok() => c.to_owned(),
        _ => return refuse(EntraError::PkceRequired, target),
    };
    // Without a method, RFC 7636 means `plain`, which dmsync refuses.
    match params.get("code_challenge_method") {
        Some("S256") => {}
        other => {
            return refuse(EntraError::UnsupportedChallengeMethod(other.unwrap_or("plain").to_owned()), target);
        }
    }
    if params.get("prompt") == Some("none") {
        return refuse(EntraError::LoginRequired, target);
    }
    Ok(Checked {
        client_id: client_id.to_owned(),
        client_uuid,
        scope: scope.to_owned(),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge,
        login_hint: params.get("login_hint").map(str::to_owned),
        client_info: params.get("client_info") == Some("1"),
        target,
    })
}

/// The claims of a flow token: which request's parameters it signs, and until when.
#[derive(Serialize, Deserialize)]
struct FlowClaims {
    aud: String,
    exp: i64,
    /// [`Params::digest`] of the request the page was shown for.
    req: String,
}

impl Issuer {
    async fn flow_token(&self, digest: String) -> Result<String, ApiError> {
        self.keys().wait_until_ready().await;
        let exp = self.now().unix_timestamp() + FLOW_TOKEN_LIFETIME_SECONDS;
        let claims = FlowClaims { aud: FLOW_TOKEN_AUDIENCE.to_owned(), exp, req: digest };
        self.keys().sign(&claims).map_err(|e| ApiError::Internal(format!("flow token signing: {e}")))
    }

    /// Whether `token` is a flow token this identity provider signed, unexpired on the Clock,
    /// for exactly these parameters.
    fn flow_token_matches(&self, token: &str, digest: &str) -> bool {
        if token.len() > MAX_PARAMETER_CHARS {
            return false;
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else { return false };
        let Some(key) = header.kid.as_deref().and_then(|kid| self.keys().decoding_key(kid)) else { return false };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[FLOW_TOKEN_AUDIENCE]);
        // Expiry is checked on the Clock, which tests move forward.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let Ok(claims) = jsonwebtoken::decode::<FlowClaims>(token, &key, &validation).map(|d| d.claims) else {
            return false;
        };
        claims.exp > self.now().unix_timestamp() && bool::from(claims.req.as_bytes().ct_eq(digest.as_bytes()))
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the sign-in page for a good request, Entra's error
/// on the page for a bad client or redirect URI, and any other refusal sent to the client.
///
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code>
pub async fn authorize_page(
    State(issuer): State<Issuer>,
    Path(tenant_segment): Path<String>,
    RawQuery(query): RawQuery,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Response {
    let query = query.unwrap_or_default();
    let params = (query.len() <= MAX_QUERY_BYTES)
        .then(|| parse_form(query.as_bytes()))
        .flatten()
        .and_then(|form| Params::from_form(&form));
    let Some(params) = params else { return error_page(&EntraError::FormTooLarge, &ctx) };
    let outcome = match check(&issuer, &tenant_segment, &params).await {
        Ok(checked) => show_sign_in(&issuer, &tenant_segment, &params, &checked, checked.login_hint.as_deref(), None)
            .await
            .map_err(Refusal::Api),
        Err(refusal) => Err(refusal),
    };
    outcome.unwrap_or_else(|refusal| refuse(refusal, &ctx))
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: the sign-in form. Checks the request again, then the
/// flow token, then the user name and password; a wrong password shows the page again with
/// Entra's message, a good one sends the browser to the redirect URI with a code.
pub async fn sign_in(
    State(issuer): State<Issuer>,
    Path(tenant_segment): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
    body: Body,
) -> Response {
    let Some(form) = read_form(body).await else { return error_page(&EntraError::FormTooLarge, &ctx) };
    let Some(params) = Params::from_form(&form) else { return error_page(&EntraError::FormTooLarge, &ctx) };
    match sign_in_and_issue(&issuer, &tenant_segment, &params, &form, &ctx).await {
        Ok(response) => response,
        Err(refusal) => refuse(refusal, &ctx),
    }
}

async fn sign_in_and_issue(
    issuer: &Issuer,
    tenant_segment: &str,
    params: &Params,
    form: &super::idp::Form,
    ctx: &RequestContext,
) -> Result<Response, Refusal> {
    let checked = check(issuer, tenant_segment, params).await?;
    let flow_token = form.get("flowToken").map(String::as_str).unwrap_or("");
    if !issuer.flow_token_matches(flow_token, &params.digest(tenant_segment)) {
        return Err(Refusal::Page(EntraError::InvalidFlowToken));
    }
    let username = form.get("login").map(|s| s.trim()).filter(|s| !s.is_empty() && s.len() <= 256);
    let password = form.get("passwd").map(String::as_str).filter(|s| !s.is_empty() && s.len() <= 1024);
    let (Some(username), Some(password)) = (username, password) else {
        let shown = username.or(checked.login_hint.as_deref());
        let message = error_line(&EntraError::InvalidUserCredentials, ctx);
        return Ok(show_sign_in(issuer, tenant_segment, params, &checked, shown, Some(&message)).await?);
    };
    let (tenant, user) = match check_user_password(issuer, tenant_segment, username, password).await {
        Ok(found) => found,
        Err(TokenFailure::Entra(error)) => {
            // A user who is not found and a wrong password read the same, as in Entra.
            let error = match error {
                EntraError::TenantNotFound(_) => EntraError::InvalidUserCredentials,
                other => other,
            };
            let message = error_line(&error, ctx);
            return Ok(show_sign_in(issuer, tenant_segment, params, &checked, Some(username), Some(&message)).await?);
        }
        Err(TokenFailure::Api(error)) => return Err(Refusal::Api(error)),
    };
    let consented = match consented_scopes(issuer, &user, checked.client_uuid).await {
        Ok(consented) => consented,
        Err(TokenFailure::Api(error)) => return Err(Refusal::Api(error)),
        Err(TokenFailure::Entra(error)) => return Err(Refusal::Redirect(error, checked.target)),
    };
    let granted = match granted_scopes(&checked.scope, &consented, &checked.client_id, &tenant.domain) {
        Ok(granted) => granted,
        Err(error) => return Err(Refusal::Redirect(error, checked.target)),
    };
    let code = new_code();
    let now = issuer.now();
    let stored = AuthorizationCode {
        code_hash: code_hash(&code),
        tenant_id: tenant.id,
        client_id: checked.client_uuid,
        user_object_id: user.object_id,
        user_principal_name: user.user_principal_name.clone(),
        password_fingerprint: password_fingerprint(&user),
        scopes: granted,
        requested_scope: checked.scope.clone(),
        redirect_uri: checked.target.redirect_uri.clone(),
        code_challenge: checked.code_challenge.clone(),
        nonce: checked.nonce.clone(),
        issued_at: now,
        expires_at: now + time::Duration::seconds(CODE_LIFETIME_SECONDS),
    };
    issuer.directory.insert_authorization_code(&stored, now).await?;
    let mut fields = vec![("code", code)];
    if checked.client_info {
        fields.push(("client_info", super::sessions::client_info(&user)));
    }
    Ok(deliver(&checked.target, fields))
}

/// A new authorization code: 256 random bits, base64url.
fn new_code() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the table keys a code by: its SHA-256, base64url.
fn code_hash(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code.as_bytes()))
}

/// Whether the verifier's S256 hash is the challenge (RFC 7636 §4.6), compared in constant time.
fn verifier_matches(verifier: Option<&str>, challenge: &str) -> bool {
    let Some(verifier) = verifier.filter(|v| (43..=MAX_VERIFIER_CHARS).contains(&v.len())) else { return false };
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// The `authorization_code` grant: redeems the code once (whatever follows, it cannot be
/// redeemed again), then checks it as Entra does: unexpired, this tenant, this client, the same
/// redirect URI, the PKCE verifier, and a user who still exists with the same password.
pub(super) async fn authorization_code_grant(
    issuer: &Issuer,
    tenant_segment: &str,
    client: Client,
    session: Session<'_>,
    redemption: Redemption<'_>,
) -> Result<Response, TokenFailure> {
    if redemption.code.len() > MAX_CODE_CHARS {
        return Err(EntraError::MalformedGrant.into());
    }
    let now = issuer.now();
    let code = match issuer.directory.redeem_authorization_code(&code_hash(redemption.code), now).await? {
        CodeRedemption::Redeemed(code) => code,
        CodeRedemption::AlreadyRedeemed(_) => return Err(EntraError::CodeAlreadyRedeemed.into()),
        CodeRedemption::Unknown => return Err(EntraError::MalformedGrant.into()),
    };
    if code.expires_at <= now {
        return Err(EntraError::CodeExpired.into());
    }
    let tenant = match tenant_segment.to_ascii_lowercase().as_str() {
        "organizations" | "common" => issuer.directory.tenant(code.tenant_id).await?,
        _ => resolve_tenant(issuer, tenant_segment).await?,
    };
    let tenant = tenant.ok_or_else(|| EntraError::TenantNotFound(tenant_segment.to_owned()))?;
    if tenant.id != code.tenant_id {
        return Err(EntraError::MalformedGrant.into());
    }
    if code.client_id != client.uuid {
        return Err(EntraError::CodeForAnotherClient.into());
    }
    if redemption.redirect_uri != code.redirect_uri {
        let (given, expected) = (redemption.redirect_uri.to_owned(), code.redirect_uri.clone());
        return Err(EntraError::RedirectUriMismatch { given, expected }.into());
    }
    if !verifier_matches(redemption.code_verifier, &code.code_challenge) {
        return Err(EntraError::CodeVerifierMismatch.into());
    }
    let user = issuer.directory.user_by_upn(tenant.id, &code.user_principal_name).await?;
    let Some(user) =
        user.filter(|u| u.object_id == code.user_object_id && password_fingerprint(u) == code.password_fingerprint)
    else {
        return Err(EntraError::GrantRevoked.into());
    };
    check_confidential_client(issuer, &tenant, &client, session.origin).await?;
    // The token request's scope decides how scopes are echoed (MSAL keys its cache by them);
    // what is granted is what the user signed in for.
    let scope = if session.scope.trim().is_empty() { code.requested_scope.as_str() } else { session.scope };
    let session = Session { scope, nonce: code.nonce.as_deref(), ..session };
    user_token_response(issuer, &user, &client, &session, code.scopes).await
}

/// Sends the answer to the redirect URI in the request's response mode.
fn deliver(target: &Target, mut fields: Vec<(&'static str, String)>) -> Response {
    if let Some(state) = &target.state {
        fields.push(("state", state.clone()));
    }
    if target.mode == ResponseMode::FormPost {
        return form_post_page(&target.redirect_uri, origin_of(&target.redirect_uri), &fields);
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields.iter()).finish();
    let separator = match target.mode {
        ResponseMode::Fragment => '#',
        _ if target.redirect_uri.contains('?') => '&',
        _ => '?',
    };
    let location = format!("{}{separator}{encoded}", target.redirect_uri);
    let mut response = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        // A checked redirect URI parsed as a URI, so it is a valid header value; if not, the
        // browser gets no redirect rather than a broken one.
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response.extensions_mut().insert(ForeignErrorBody);
    response
}

/// A refusal: on the page, or to the client in its response mode with Entra's `error`,
/// `error_description` and `error_uri`.
fn refuse(refusal: Refusal, ctx: &RequestContext) -> Response {
    match refusal {
        Refusal::Page(error) => error_page(&error, ctx),
        Refusal::Redirect(error, target) => {
            let (_, code_name, code, _) = error.parts();
            let fields = vec![
                ("error", code_name.to_owned()),
                ("error_description", error_line(&error, ctx)),
                ("error_uri", format!("https://login.microsoftonline.com/error?code={code}")),
            ];
            deliver(&target, fields)
        }
        Refusal::Api(error) => error.into_response(),
    }
}

/// `AADSTS{code}: {description} Trace ID: … Correlation ID: …`, as Entra words its errors.
fn error_line(error: &EntraError, ctx: &RequestContext) -> String {
    let (_, _, code, description) = error.parts();
    format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {}", ctx.request_id(), ctx.client_request_id())
}

/// Entra's error page for a request it will not send anywhere.
fn error_page(error: &EntraError, ctx: &RequestContext) -> Response {
    let (status, _, _, _) = error.parts();
    let message = error_line(error, ctx);
    let page = Page {
        title: "Sign in to your account",
        heading: "Sorry, but we’re having trouble signing you in.",
        text: None,
        error: Some(&message),
        form: None,
        redirect_origin: None,
    };
    render_page(status, &page)
}

/// Shows the sign-in page for a checked request, with a fresh flow token over its parameters.
async fn show_sign_in(
    issuer: &Issuer,
    tenant_segment: &str,
    params: &Params,
    checked: &Checked,
    username: Option<&str>,
    error: Option<&str>,
) -> Result<Response, ApiError> {
    let flow_token = issuer.flow_token(params.digest(tenant_segment)).await?;
    let mut hidden: Vec<(&str, &str)> = params.0.iter().map(|(name, value)| (*name, value.as_str())).collect();
    hidden.push(("flowToken", &flow_token));
    let action = format!("/{tenant_segment}/oauth2/v2.0/authorize");
    let inputs = [
        Input {
            name: "login",
            label: "Email, phone, or Skype",
            kind: "email",
            value: username.unwrap_or(""),
            autocomplete: "username",
        },
        Input { name: "passwd", label: "Password", kind: "password", value: "", autocomplete: "current-password" },
    ];
    let page = Page {
        title: "Sign in to your account",
        heading: "Sign in",
        text: None,
        error,
        form: Some(PageForm {
            action: &action,
            hidden: &hidden,
            inputs: &inputs,
            submit: "Sign in",
            second_button: None,
        }),
        redirect_origin: origin_of(&checked.target.redirect_uri),
    };
    Ok(render_page(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a client puts in the query or the form, reading it never panics, keeps only
        /// the carried parameters within their bound, and the digest and the redirect check
        /// take any of them.
        #[test]
        fn random_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            if let Some(params) = parse_form(&bytes).and_then(|form| Params::from_form(&form)) {
                prop_assert!(params.0.values().all(|v| v.chars().count() <= MAX_PARAMETER_CHARS));
                prop_assert!(params.0.keys().all(|k| CARRIED.contains(k)));
                let _ = params.digest("organizations");
                if let Some(uri) = params.get("redirect_uri") {
                    let _ = redirect_uri_allowed(uri, &[]);
                    let _ = origin_of(uri);
                }
            }
        }

        #[test]
        fn random_redirect_uris_never_panic(uri in "\\PC{0,200}") {
            if redirect_uri_allowed(&uri, &[]) {
                prop_assert!(uri.to_ascii_lowercase().starts_with("http://"));
            }
        }
    }

    #[test]
    fn only_loopback_and_registered_redirect_uris_are_allowed() {
        for allowed in [
            "http://localhost",
            "http://localhost:8400",
            "http://localhost:51234/callback?x=1",
            "http://127.0.0.1:3000/",
            "http://[::1]:9000/",
            "HTTP://LOCALHOST:1/",
        ] {
            assert!(redirect_uri_allowed(allowed, &[]), "{allowed}");
        }
        for refused in [
            "https://evil.example/",
            "http://localhost.evil.example/",
            "http://localhost@evil.example/",
            "http://evil.example/?http://localhost",
            "http://localhost:80#frag",
            "http:\\\\evil.example",
            "javascript:alert(1)",
            "ms-appx-web://x",
            "",
        ] {
            assert!(!redirect_uri_allowed(refused, &[]), "{refused}");
        }
        let registered = vec!["https://app.example/auth".to_owned()];
        assert!(redirect_uri_allowed("https://app.example/auth", &registered));
        assert!(!redirect_uri_allowed("https://app.example/auth/", &registered), "exactly");
    }

    #[test]
    fn the_verifier_must_hash_to_the_challenge() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(Some(verifier), challenge));
        assert!(!verifier_matches(Some(&verifier.replace('d', "e")), challenge));
        assert!(!verifier_matches(None, challenge));
        assert!(!verifier_matches(Some(challenge), challenge), "plain is not S256");
        assert!(!verifier_matches(Some(&"a".repeat(129)), challenge));
    }

    #[test]
    fn the_digest_covers_every_carried_parameter() {
        let form = |pairs: &[(&str, &str)]| -> super::super::idp::Form {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let a = Params::from_form(&form(&[("client_id", "c"), ("redirect_uri", "http://localhost/")])).unwrap();
        let b = Params::from_form(&form(&[("client_id", "c"), ("redirect_uri", "http://localhost/x")])).unwrap();
        let c =
            Params::from_form(&form(&[("client_id", "c"), ("redirect_uri", "http://localhost/"), ("x", "y")])).unwrap();
        assert_ne!(a.digest("common"), b.digest("common"));
        assert_ne!(a.digest("common"), a.digest("organizations"));
        assert_eq!(a.digest("common"), c.digest("COMMON"), "uncarried parameters do not count");
        assert!(Params::from_form(&form(&[("state", &"s".repeat(MAX_PARAMETER_CHARS + 1))])).is_none());
    }
}
