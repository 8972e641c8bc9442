//! Signing in to the console with the admin token, and what every later request must carry.
//!
//! The session is a cookie that is `HttpOnly`, `SameSite=Strict` and, over TLS, `Secure`. It
//! holds no secret: a time, a random nonce and an HMAC over both, keyed by a hash of the admin
//! token. So every replica that shares the admin token accepts it, and changing the token signs
//! every browser out. Each state change must also carry the session's CSRF token (an HMAC of its
//! nonce) in a form field or the `x-csrf-token` header, and pass the admin API's `Host` and
//! `Origin` checks, which keep a page that rebound its name to this server out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, RequestPartsExt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::layout::{self, Notice};
use super::{BASE, ConsoleState, see_other};
use crate::serve::Connection;

/// How long a sign-in lasts, on the system clock: advancing dmsync's Clock signs no one out.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The header a script's request carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

type HmacSha256 = Hmac<Sha256>;

/// A signed-in browser: what a handler needs to render forms that will be accepted.
#[derive(Clone, Debug)]
pub struct Session {
    csrf: String,
}

impl Session {
    /// The token every form of the page carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The session cookie's name: over TLS the `__Host-` prefix, which browsers accept only from a
/// secure origin with `Path=/` and no domain, so no other site on the host can set it.
fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-dmsync_console" } else { "dmsync_console" }
}

fn is_secure(parts: &Parts) -> bool {
    parts.extensions.get::<Connection>().is_some_and(Connection::is_https)
}

/// The key sessions are signed with, derived from the admin token in force; `None` when the
/// admin API is off, and with it the console.
fn session_key(state: &ConsoleState) -> Option<[u8; 32]> {
    let token = state.app.config().effective_admin_token()?;
    let mut hash = Sha256::new();
    hash.update(b"dmsync console session key\0");
    hash.update(token.as_bytes());
    Some(hash.finalize().into())
}

fn mac(key: &[u8; 32], purpose: &str, value: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn equal_in_constant_time(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A new session's cookie value: `issued.nonce.mac`.
fn new_cookie_value(key: &[u8; 32]) -> String {
    let nonce: [u8; 18] = rand::random();
    let body = format!("{}.{}", unix_now(), URL_SAFE_NO_PAD.encode(nonce));
    let signature = mac(key, "session", &body);
    format!("{body}.{signature}")
}

/// The session a cookie value proves, if its signature holds and it has not expired.
fn open_cookie_value(key: &[u8; 32], value: &str) -> Option<Session> {
    let (body, signature) = value.rsplit_once('.')?;
    if !equal_in_constant_time(&mac(key, "session", body), signature) {
        return None;
    }
    let (issued, nonce) = body.split_once('.')?;
    let issued: u64 = issued.parse().ok()?;
    let age = unix_now().checked_sub(issued)?;
    (age < SESSION_LIFETIME.as_secs()).then(|| Session { csrf: mac(key, "csrf", nonce) })
}

fn cookie_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(n, v)| (n == name).then_some(v))
}

/// Why a request was not let in.
pub enum Refusal {
    /// The `Host` or `Origin` check failed: the admin API's own check, which keeps a page that
    /// rebound its name to this server, or another site's page, out.
    Host(crate::error::ApiError),
    /// No valid session: a page is sent to the sign-in form, anything else is a 401.
    SignedOut {
        to_login: bool,
        next: String,
    },
    /// A change without the session's CSRF token.
    Forged,
    /// The admin API is off, and with it the console.
    Disabled,
    BadForm(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Host(error) => {
                let refused = match &error {
                    crate::error::ApiError::AdminHostRefused { header, value } => format!("{header} '{value}'"),
                    other => other.to_string(),
                };
                layout::bare_page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    Notice::Error(format!(
                        "The console answers only to the names the admin API answers to, and to pages of its own \
                         origin; it refused {refused}."
                    )),
                )
            }
            Refusal::SignedOut { to_login: true, next } => {
                let query = form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish();
                see_other(&format!("{BASE}/login?{query}"))
            }
            Refusal::SignedOut { to_login: false, .. } => layout::bare_page(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                Notice::Error("Sign in to the console again; the session has ended or was never started.".into()),
            ),
            Refusal::Forged => layout::bare_page(
                StatusCode::FORBIDDEN,
                "Refused",
                Notice::Error(
                    "The request did not carry this console's CSRF token, so it was refused and changed nothing. \
                     Reload the page and try again."
                        .into(),
                ),
            ),
            Refusal::Disabled => layout::bare_page(
                StatusCode::NOT_FOUND,
                "Console off",
                Notice::Error(
                    "The admin API is off (no --admin-token and not on loopback), and the console with it.".into(),
                ),
            ),
            Refusal::BadForm(message) => {
                layout::bare_page(StatusCode::BAD_REQUEST, "Bad request", Notice::Error(message))
            }
        }
    }
}

fn check_host(state: &ConsoleState, parts: &Parts) -> Result<[u8; 32], Refusal> {
    crate::http::host::check_admin_host(state.app.config(), parts.version, &parts.uri, &parts.headers)
        .map_err(Refusal::Host)?;
    session_key(state).ok_or(Refusal::Disabled)
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Session, Refusal> {
        let key = check_host(state, parts)?;
        let name = cookie_name(is_secure(parts));
        match cookie_of(&parts.headers, name).and_then(|value| open_cookie_value(&key, value)) {
            Some(session) => Ok(session),
            None => {
                // The path as the browser asked for it, before the console's prefix was taken off.
                let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
                let next = uri.path_and_query().map_or(BASE, |p| p.as_str()).to_owned();
                Err(Refusal::SignedOut { to_login: parts.method == Method::GET, next })
            }
        }
    }
}

fn check_csrf(session: &Session, presented: Option<&str>) -> Result<(), Refusal> {
    match presented {
        Some(token) if equal_in_constant_time(token, session.csrf()) => Ok(()),
        _ => Err(Refusal::Forged),
    }
}

/// A form whose only field is its CSRF token (a button's form).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A form posted by a signed-in browser with the session's CSRF token (the `csrf` field or the
/// `x-csrf-token` header), parsed into `T`.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = parts.extract_with_state::<Session, _>(state).await.map_err(IntoResponse::into_response)?;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let from_form = form_urlencoded::parse(&bytes).find(|(name, _)| name == "csrf").map(|(_, value)| value);
        let from_header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        check_csrf(&session, from_form.as_deref().or(from_header)).map_err(IntoResponse::into_response)?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, bytes.into()), state)
            .await
            .map_err(|rejection| Refusal::BadForm(rejection.body_text()).into_response())?;
        Ok(Posted { session, form })
    }
}

/// A raw body (the CSV upload) posted by a signed-in browser with the CSRF token in the
/// `x-csrf-token` header.
pub struct PostedBytes {
    pub session: Session,
    pub bytes: Bytes,
}

impl FromRequest<ConsoleState> for PostedBytes {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = parts.extract_with_state::<Session, _>(state).await.map_err(IntoResponse::into_response)?;
        check_csrf(&session, parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
            .map_err(IntoResponse::into_response)?;
        let bytes =
            Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        Ok(PostedBytes { session, bytes })
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path of the console itself may be where sign-in leads, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with(BASE) && !next.starts_with("//") && !next.contains('\\') => next.to_owned(),
        _ => format!("{BASE}/tenants"),
    }
}

fn login_form(next: &str, notice: Option<Notice>, status: StatusCode) -> Response {
    let body = html! {
        form method="post" action={ (BASE) "/login" } class="login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Admin token" }
            input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
            p class="hint" {
                "The token " code { "serve" } " printed for the admin API (" code { "--admin-token" }
                " or " code { "DMSYNC_ADMIN_TOKEN" } "; on loopback without one, the development token)."
            }
            button type="submit" { "Sign in" }
        }
    };
    layout::signed_out_page(status, "Sign in", notice, body)
}

/// `GET /_dmsync/console/login`.
pub async fn login_page(State(state): State<ConsoleState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(refusal) = check_host(&state, &parts) {
        return refusal.into_response();
    }
    let query = axum::extract::Query::<LoginQuery>::try_from_uri(&parts.uri).ok();
    let next = safe_next(query.as_ref().and_then(|q| q.next.as_deref()));
    login_form(&next, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

/// `POST /_dmsync/console/login`: the admin token for a session cookie.
pub async fn sign_in(State(state): State<ConsoleState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let key = match check_host(&state, &parts) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let secure = is_secure(&parts);
    let form = match Form::<SignIn>::from_request(Request::from_parts(parts, body), &state).await {
        Ok(Form(form)) => form,
        Err(rejection) => return Refusal::BadForm(rejection.body_text()).into_response(),
    };
    let next = safe_next(form.next.as_deref());
    let expected = state.app.config().effective_admin_token().unwrap_or_default();
    if !crate::admin::admin_token_matches(&expected, form.token.trim()) {
        tracing::info!("console sign-in refused: not the admin token");
        return login_form(&next, Some(Notice::Error("That is not the admin token.".into())), StatusCode::UNAUTHORIZED);
    }
    let cookie = session_cookie(secure, &new_cookie_value(&key), SESSION_LIFETIME.as_secs());
    let mut response = see_other(&next);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The `Set-Cookie` value of a session, or of its removal (an empty value that expires now).
fn session_cookie(secure: bool, value: &str, max_age: u64) -> HeaderValue {
    let path = if secure { "/" } else { BASE };
    let secure_attribute = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure_attribute}",
        cookie_name(secure)
    );
    HeaderValue::from_str(&cookie).expect("the cookie is ASCII")
}

/// `POST /_dmsync/console/logout`: forgets the cookie in this browser.
pub async fn sign_out(
    connection: Option<axum::Extension<Connection>>,
    _: Posted<std::collections::HashMap<String, String>>,
) -> Response {
    let secure = connection.is_some_and(|c| c.0.is_https());
    let mut response = see_other(&format!("{BASE}/login"));
    response.headers_mut().append(header::SET_COOKIE, session_cookie(secure, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_opens_with_its_key_only_and_not_once_altered() {
        let key = [7u8; 32];
        let value = new_cookie_value(&key);
        let session = open_cookie_value(&key, &value).expect("a fresh cookie opens");
        assert_eq!(session.csrf().len(), 43);
        assert!(open_cookie_value(&[8u8; 32], &value).is_none());
        let (issued, rest) = value.split_once('.').unwrap();
        let older = format!("{}.{rest}", issued.parse::<u64>().unwrap() - 1);
        assert!(open_cookie_value(&key, &older).is_none(), "the time is signed");
        let expired_body = format!("{}.AAAA", unix_now() - SESSION_LIFETIME.as_secs() - 1);
        let expired = format!("{expired_body}.{}", mac(&key, "session", &expired_body));
        assert!(open_cookie_value(&key, &expired).is_none());
        assert!(open_cookie_value(&key, "").is_none());
        assert!(open_cookie_value(&key, "...").is_none());
    }

    #[test]
    fn sign_in_leads_only_into_the_console() {
        assert_eq!(safe_next(Some("/_dmsync/console/clock")), "/_dmsync/console/clock");
        for bad in ["https://evil.example/", "//evil.example", "/beta/x", "/_dmsync/console\\@evil"] {
            assert_eq!(safe_next(Some(bad)), "/_dmsync/console/tenants", "{bad}");
        }
    }
}
