//! The device authorization grant, as Entra ID serves it: `POST /{tenant}/oauth2/v2.0/devicecode`
//! hands out a device code and a user code, the person opens the verification page on dmsync,
//! types the user code and signs in (or cancels), and the client polls the token endpoint with
//! the `urn:ietf:params:oauth:grant-type:device_code` grant until it gets the user's tokens.
//! The admin API approves or declines a code without the page, for unattended tests.
//!
//! The codes live in the database ([`dmsync_core::store::DeviceCodeStore`]), so a code issued by
//! one replica is approved and redeemed on any other, and survives a restart.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use dmsync_core::device_codes::{
    ApprovedUser, DEVICE_CODE_LIFETIME, DeviceCode, DeviceCodeDecision, MIN_POLL_SPACING, POLL_INTERVAL, PollAnswer,
    USER_CODE_ALPHABET, USER_CODE_LENGTH, normalize_user_code,
};
use dmsync_core::identity::User;
use dmsync_core::{Store, StoreError, TenantId};

use super::idp::{
    Client, EntraError, Issuer, MAX_FORM_BYTES, Session, TokenFailure, check_confidential_client, consented_scopes,
    granted_scopes, no_store, read_form, resolve_tenant, user_token_response,
};
use super::secrets::verify_secret;
use super::sign_in_page::{Input, Page, PageForm, SecondButton, render_page};
use crate::error::ApiError;
use crate::http::context::RequestContext;

/// The grant type the client polls the token endpoint with.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The longest device code looked up; ours are 64 characters.
const MAX_DEVICE_CODE_LENGTH: usize = 512;

/// The tenant a device code is for: one tenant, or any (`organizations`, `common`), where the
/// user's domain picks it.
async fn code_tenant(issuer: &Issuer, segment: &str) -> Result<Option<Option<TenantId>>, ApiError> {
    Ok(match segment.to_ascii_lowercase().as_str() {
        "organizations" | "common" => Some(None),
        _ => resolve_tenant(issuer, segment).await?.map(|tenant| Some(tenant.id)),
    })
}

fn hash_device_code(device_code: &str) -> String {
    Sha256::digest(device_code.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn new_user_code() -> String {
    let mut rng = rand::thread_rng();
    (0..USER_CODE_LENGTH).map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char).collect()
}

fn new_device_code() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` (form: `client_id`, `scope`): the device code, the
/// user code and where to type it, in Entra's fields and wording.
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#device-authorization-request>
pub(super) async fn device_authorization(
    State(issuer): State<Issuer>,
    Path(tenant_segment): Path<String>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
    body: Body,
) -> Response {
    super::idp::answer(issue_device_code(&issuer, &tenant_segment, &ctx, body).await, &ctx)
}

async fn issue_device_code(
    issuer: &Issuer,
    tenant_segment: &str,
    ctx: &RequestContext,
    body: Body,
) -> Result<Response, TokenFailure> {
    let form = read_form(body).await.ok_or(EntraError::FormTooLarge)?;
    let field = |name: &str| form.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    let client_id = field("client_id").ok_or(EntraError::MissingParameter("'client_id'"))?;
    if Uuid::parse_str(client_id).is_err() {
        let directory = tenant_segment.to_owned();
        return Err(EntraError::ClientIdNotFound { client_id: client_id.to_owned(), directory }.into());
    }
    let scope = field("scope").ok_or(EntraError::MissingParameter("'scope'"))?;
    let tenant_id = code_tenant(issuer, tenant_segment)
        .await?
        .ok_or_else(|| EntraError::TenantNotFound(tenant_segment.to_owned()))?;
    let now = issuer.now();
    let device_code = new_device_code();
    // A user code is 45 random bits, so a clash with a live one is rare; draw again if so.
    let mut attempts = 0;
    let user_code = loop {
        let user_code = new_user_code();
        let code = DeviceCode::new(
            hash_device_code(&device_code),
            user_code.clone(),
            tenant_id,
            client_id.to_owned(),
            scope.to_owned(),
            now,
        );
        match issuer.directory().insert_device_code(&code, now).await {
            Ok(()) => break user_code,
            Err(StoreError::AlreadyExists(_)) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let segment = match tenant_id {
        Some(id) => id.to_string(),
        None => tenant_segment.to_ascii_lowercase(),
    };
    let verification_uri = format!("{}/{segment}/oauth2/deviceauth", ctx.base_url());
    Ok(no_store(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_LIFETIME.whole_seconds(),
        "interval": POLL_INTERVAL.whole_seconds(),
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    })))
}

/// The device code grant: `authorization_pending` until the user signs in, `slow_down` for a
/// poll sooner than the interval, `authorization_declined`, `expired_token` after
/// `expires_in`, and once approved the user's tokens, once. The code must be polled by the
/// client and on the authority it was issued to.
pub(super) async fn device_code_grant(
    issuer: &Issuer,
    tenant_segment: &str,
    client: Client,
    session: Session<'_>,
    device_code: &str,
) -> Result<Response, TokenFailure> {
    if device_code.len() > MAX_DEVICE_CODE_LENGTH {
        return Err(EntraError::BadVerificationCode.into());
    }
    let directory = issuer.directory();
    let hash = hash_device_code(device_code);
    // The lookup is by the hash of a 384-bit random secret, so its timing tells nothing about
    // any stored code.
    let now = issuer.now();
    let poll =
        directory.poll_device_code(&hash, now, MIN_POLL_SPACING).await?.ok_or(EntraError::BadVerificationCode)?;
    let same_authority = code_tenant(issuer, tenant_segment).await? == Some(poll.code.tenant_id);
    if !same_authority || !poll.code.client_id.eq_ignore_ascii_case(&client.id) {
        return Err(EntraError::BadVerificationCode.into());
    }
    let approved = match poll.answer(now) {
        PollAnswer::Pending => return Err(EntraError::AuthorizationPending.into()),
        PollAnswer::SlowDown => return Err(EntraError::SlowDown.into()),
        PollAnswer::Expired => return Err(EntraError::DeviceCodeExpired.into()),
        PollAnswer::Declined => return Err(EntraError::AuthorizationDeclined.into()),
        PollAnswer::AlreadyRedeemed => return Err(EntraError::DeviceCodeRedeemed.into()),
        PollAnswer::Approved(user) => user,
    };
    let tenant = directory.tenant(approved.tenant_id).await?.ok_or(EntraError::GrantRevoked)?;
    let user = directory.user_by_upn(tenant.id, &approved.user_principal_name).await?;
    let user = user.filter(|u| u.object_id == approved.object_id).ok_or(EntraError::GrantRevoked)?;
    check_confidential_client(issuer, &tenant, &client, session.origin).await?;
    let consented = consented_scopes(issuer, &user, client.uuid).await?;
    let granted = granted_scopes(&poll.code.scope, &consented, &client.id, &tenant.domain)?;
    if !directory.redeem_device_code(&hash).await? {
        return Err(EntraError::DeviceCodeRedeemed.into());
    }
    let session = Session { scope: &poll.code.scope, ..session };
    user_token_response(issuer, &user, &client, &session, granted).await
}

/// The user a code may be approved for: a user of the code's tenant, or for `organizations`
/// and `common` of the tenant their domain names.
pub async fn signing_in_user(store: &dyn Store, code: &DeviceCode, upn: &str) -> Result<Option<User>, StoreError> {
    let tenant = match code.tenant_id {
        Some(id) => Some(id),
        None => {
            let domain = upn.rsplit_once('@').map_or("", |(_, domain)| domain);
            if domain.is_empty() { None } else { store.tenant_by_domain(domain).await?.map(|t| t.id) }
        }
    };
    match tenant {
        Some(tenant) => store.user_by_upn(tenant, upn).await,
        None => Ok(None),
    }
}

/// The approval of a code for a user, as the store records it.
pub fn approval(user: &User) -> DeviceCodeDecision {
    DeviceCodeDecision::Approve(ApprovedUser {
        tenant_id: user.tenant_id,
        object_id: user.object_id,
        user_principal_name: user.user_principal_name.clone(),
    })
}

/// What the verification page shows.
enum Shown<'a> {
    /// The sign-in form, with what was typed (never the password) and why it was refused.
    SignIn { user_code: &'a str, username: &'a str, error: Option<&'static str> },
    /// The end of the flow: signed in, or cancelled.
    Done { heading: &'static str, text: &'static str },
}

/// The verification page, through the renderer of every sign-in page. Its form posts to the
/// page's own address (`deviceauth`, relative), on whichever host and authority it was opened.
fn show(status: StatusCode, shown: Shown<'_>) -> Response {
    match shown {
        Shown::SignIn { user_code, username, error } => {
            let inputs = [
                Input { name: "user_code", label: "Code", kind: "text", value: user_code, autocomplete: "off" },
                Input {
                    name: "username",
                    label: "Email, phone, or Skype",
                    kind: "email",
                    value: username,
                    autocomplete: "username",
                },
                Input {
                    name: "password",
                    label: "Password",
                    kind: "password",
                    value: "",
                    autocomplete: "current-password",
                },
            ];
            let cancel = SecondButton { label: "Cancel", name: "action", value: "cancel" };
            let form = PageForm {
                action: "deviceauth",
                hidden: &[],
                inputs: &inputs,
                submit: "Sign in",
                second_button: Some(cancel),
            };
            let page = Page {
                title: "Sign in to your account",
                heading: "Enter code",
                text: Some("Enter the code displayed on your app or device, then sign in with your work account."),
                error,
                form: Some(form),
                redirect_origin: None,
            };
            render_page(status, &page)
        }
        Shown::Done { heading, text } => {
            let page = Page {
                title: "Sign in to your account",
                heading,
                text: Some(text),
                error: None,
                form: None,
                redirect_origin: None,
            };
            render_page(status, &page)
        }
    }
}

/// `GET /{tenant}/oauth2/deviceauth[?user_code=…]`: the verification page's form.
pub(super) async fn verification_page(RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let typed = if query.len() > MAX_FORM_BYTES {
        None
    } else {
        form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "user_code").map(|(_, v)| v.into_owned())
    };
    let user_code = typed.as_deref().and_then(normalize_user_code).unwrap_or_default();
    show(StatusCode::OK, Shown::SignIn { user_code: &user_code, username: "", error: None })
}

/// `POST /{tenant}/oauth2/deviceauth` (form: `user_code`, `username`, `password`, `action`):
/// signs the user in and approves the code, or with `action=cancel` declines it.
pub(super) async fn verification_submit(State(issuer): State<Issuer>, body: Body) -> Response {
    match submit(&issuer, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn submit(issuer: &Issuer, body: Body) -> Result<Response, ApiError> {
    let Some(form) = read_form(body).await else {
        let page = Shown::SignIn { user_code: "", username: "", error: Some("The request was too large.") };
        return Ok(show(StatusCode::PAYLOAD_TOO_LARGE, page));
    };
    let field = |name: &str| form.get(name).map(|s| s.trim()).unwrap_or("");
    let (typed_code, username, password) = (field("user_code"), field("username"), field("password"));
    // Only what a user name can be is shown again.
    let username = if username.len() > 256 { "" } else { username };
    let refuse =
        |status, user_code: &str, error| show(status, Shown::SignIn { user_code, username, error: Some(error) });
    const UNKNOWN_CODE: &str = "That code didn't work. Check the code and try again.";
    let Some(user_code) = normalize_user_code(typed_code) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "", UNKNOWN_CODE));
    };
    let directory = issuer.directory();
    let now = issuer.now();
    let Some(code) = directory.pending_device_code(&user_code, now).await? else {
        return Ok(refuse(StatusCode::BAD_REQUEST, &user_code, UNKNOWN_CODE));
    };
    if field("action") == "cancel" {
        directory.decide_device_code(&user_code, DeviceCodeDecision::Decline, now).await?;
        let text = "You have declined to sign in to the application on your device. You may now close this window.";
        return Ok(show(StatusCode::OK, Shown::Done { heading: "Sign-in cancelled", text }));
    }
    const BAD_CREDENTIALS: &str = "Your account or password is incorrect.";
    if username.is_empty() || password.is_empty() {
        return Ok(refuse(StatusCode::BAD_REQUEST, &user_code, "Enter your user name and password."));
    }
    let user = signing_in_user(directory, &code, username).await?;
    let Some(user) = user.filter(|u| verify_secret(password, &u.password_hash)) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, &user_code, BAD_CREDENTIALS));
    };
    if !directory.decide_device_code(&user_code, approval(&user), now).await? {
        return Ok(refuse(StatusCode::BAD_REQUEST, &user_code, UNKNOWN_CODE));
    }
    let text = "You have signed in to the application on your device. You may now close this window.";
    Ok(show(StatusCode::OK, Shown::Done { heading: "You're signed in", text }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn codes_are_drawn_from_their_alphabets() {
        for _ in 0..100 {
            let user_code = new_user_code();
            assert_eq!(normalize_user_code(&user_code).as_deref(), Some(user_code.as_str()));
            let device_code = new_device_code();
            assert_eq!(device_code.len(), 64);
            assert!(device_code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows_again() {
        let page = Shown::SignIn { user_code: "ABC", username: "\"><script>x</script>", error: Some("a<b") };
        let response = show(StatusCode::OK, page);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"));
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX)).unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("a&lt;b"));
    }
}
