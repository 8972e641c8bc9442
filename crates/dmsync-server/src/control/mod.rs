//! The control plane for tests: what a tester switches on to see how their automation behaves
//! when Intune misbehaves. It sits in the request path in one place, the request pipeline
//! (`http::pipeline`): the journal outside the request context (so it sees final statuses and
//! rendered errors), [`admit`] inside it (so its refusals get Graph's bodies and request ids) and
//! outside the routes, which every Graph, `$batch` and sign-in request passes; the admin API
//! (`/_dmsync/…`), the operational endpoints and the web console's own calls pass it untouched.

pub mod faults;
pub mod journal;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use dmsync_core::TenantId;
use time::OffsetDateTime;

pub mod throttling;

use crate::auth::{VerifiedToken, Verifier, bearer_token_of};
use crate::http::context::RequestContext;
use crate::state::AppState;

/// Whether the control plane applies to a request for `path`: Graph and the identity provider,
/// not the admin API, the OpenAPI documents, the CA or the operational endpoints.
pub fn is_controlled(path: &str) -> bool {
    !(path.starts_with("/_dmsync/") || path == "/_dmsync" || path == "/metrics" || path.starts_with("/health"))
}

/// Who a request says it is, as far as the control plane needs to know: the tenant and the
/// application of its bearer token, once the token has verified. A request without a valid
/// token has neither (it will be refused by its route; the control plane does not guess).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestIdentity {
    pub tenant: Option<TenantId>,
    pub app: Option<String>,
}

/// Whether the control plane applies to this request: a controlled path, and not a request the
/// web console made in process (`console::ConsoleOrigin`), which watches what a test drives and
/// must not be journalled, throttled or faulted in the test's place.
pub fn applies_to(request: &Request) -> bool {
    is_controlled(request.uri().path()) && request.extensions().get::<crate::console::ConsoleOrigin>().is_none()
}

/// The identity of a request, from its bearer token, and the token once verified. Verification
/// is the same (cached) check the route's `Caller` makes, so an unverified claim never decides
/// whose limits or faults apply; a token that fails it is left for the route to refuse.
pub async fn identify(
    verifier: &Verifier,
    headers: &axum::http::HeaderMap,
) -> (RequestIdentity, Option<VerifiedToken>) {
    let Some(token) = bearer_token_of(headers) else { return (RequestIdentity::default(), None) };
    match verifier.verify(token).await {
        Ok(principal) => (
            RequestIdentity { tenant: Some(principal.tenant_id), app: principal.app_id.clone() },
            Some(VerifiedToken(principal)),
        ),
        Err(_) => (RequestIdentity::default(), None),
    }
}

/// What the control plane decided for a request.
pub enum Admission {
    /// Throttled: this is the answer, in the route's place.
    Refused(Response),
    /// Let through, to the fault rule that fired for it, if one did.
    Admitted(Option<faults::Firing>),
}

/// The control plane's step in the request pipeline (`http::pipeline`), for a request it
/// [`applies_to`] that arrived at `now`. It identifies the request once, refuses it with
/// Graph's 429 when its throttling buckets are empty (`throttling`), then takes the first fault
/// rule that fires for it (`faults`), which the pipeline applies in the route's place
/// ([`faults::inject`]); it leaves the verified token in the request's context for the route's
/// `Caller`, and returns the identity for the journal.
/// Throttling comes first because a real client's request is counted before anything answers it.
pub async fn admit(state: &AppState, request: &mut Request, now: OffsetDateTime) -> (RequestIdentity, Admission) {
    let (identity, verified) = identify(state.verifier(), request.headers()).await;
    if let Err(refusal) = state.throttle().admit(&identity, request.method(), request.uri().path(), now).await {
        return (identity, Admission::Refused(refusal.into_response()));
    }
    // Only the control plane sets the verified token, in the context `http::context::begin`
    // made for this very request.
    if let (Some(verified), Some(context)) = (verified, request.extensions().get::<RequestContext>()) {
        context.set_verified_token(verified);
    }
    let fired = state.faults().take_http(&faults::RequestFacts {
        method: request.method(),
        path: request.uri().path(),
        identity: &identity,
    });
    (identity, Admission::Admitted(fired))
}
