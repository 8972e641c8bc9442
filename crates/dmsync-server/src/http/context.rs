//! The request context: request ids, the rendering of every error body, metrics.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dmsync_graph::datetime::inner_error_date;
use dmsync_graph::{GraphErrorBody, InnerError, IntuneErrorMessage, MainError};
use uuid::Uuid;

use crate::auth::VerifiedToken;
use crate::config::PublicUrl;
use crate::error::{ApiError, ErrorSpec, MessageSpec};
use crate::proxy::TunnelHost;
use crate::serve::Connection;
use crate::state::AppState;

/// Set by handlers whose error bodies are not Graph's (the token endpoint speaks Entra ID).
#[derive(Clone, Copy, Debug)]
pub struct ForeignErrorBody;

/// Per-request facts that handlers and the error renderer need. Cheap to clone: handlers take
/// it as an `Extension`, which clones.
#[derive(Clone, Debug)]
pub struct RequestContext(Arc<ContextFacts>);

impl std::ops::Deref for RequestContext {
    type Target = ContextFacts;
    fn deref(&self) -> &ContextFacts {
        &self.0
    }
}

/// The request's ids and URLs. Most requests answer without quoting any of them but the ids in
/// the response's headers, so the strings are made on first use, not for every request.
#[derive(Debug)]
pub struct ContextFacts {
    id: Uuid,
    id_text: OnceLock<String>,
    /// The client's own `client-request-id`, when it sent a usable one.
    client_request_id: Option<String>,
    origin: OriginFacts,
    base_url: OnceLock<String>,
    url: OnceLock<String>,
    /// Set by the control plane's gate alone (`control::admit`). The context is made afresh for
    /// every request, so nothing a client sends can set it. It lives here rather than as an
    /// extension of its own: each extension is a box and a slot in the request's map.
    verified: OnceLock<VerifiedToken>,
}

impl ContextFacts {
    /// Our id of the request, as `request-id` and error bodies carry it.
    pub fn request_id(&self) -> &str {
        self.id_text.get_or_init(|| self.id.hyphenated().to_string())
    }

    /// What the client sent as `client-request-id`, or our own id when it sent none.
    pub fn client_request_id(&self) -> &str {
        self.client_request_id.as_deref().unwrap_or_else(|| self.request_id())
    }

    /// The request's bearer token as the control plane's gate verified it, when the gate ran
    /// and the token passed, so that the route's `Caller` does not verify it again.
    pub fn verified_token(&self) -> Option<&VerifiedToken> {
        self.verified.get()
    }

    pub(crate) fn set_verified_token(&self, token: VerifiedToken) {
        // The gate runs once per request; a second verdict would be the same token's.
        let _ = self.verified.set(token);
    }

    /// `scheme://host[:port]`, for absolute links (see [`base_url`]).
    pub fn base_url(&self) -> &str {
        self.base_url.get_or_init(|| self.origin.base_url())
    }

    /// The full request URL, as Intune quotes it in its error messages.
    pub fn url(&self) -> &str {
        self.url.get_or_init(|| {
            let path_and_query = self.origin.uri.path_and_query().map_or("/", |p| p.as_str());
            [self.base_url(), path_and_query].concat()
        })
    }
}

/// What the base URL is made of, kept from the request (header values and the URI share the
/// request's buffer, so keeping them copies nothing).
#[derive(Debug)]
struct OriginFacts {
    headers: OriginHeaders,
    /// `--public-url`, unless the request came through the proxy's tunnel.
    public_url: Option<PublicUrl>,
    connection_scheme: Scheme,
    /// The URI as the client sent it.
    uri: axum::http::Uri,
    listen: std::net::SocketAddr,
}

impl OriginFacts {
    fn base_url(&self) -> String {
        base_url(
            &self.headers,
            Origin {
                public_url: self.public_url.as_ref(),
                connection_scheme: &self.connection_scheme,
                target_authority: self.uri.authority().map(|a| a.as_str()),
                fallback: self.listen,
            },
        )
    }
}

/// The headers that name the origin a client addressed.
#[derive(Debug, Default)]
struct OriginHeaders {
    forwarded_host: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
    host: Option<HeaderValue>,
}

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
static AGS_DIAGNOSTIC: HeaderName = HeaderName::from_static("x-ms-ags-diagnostic");

impl OriginHeaders {
    fn of(headers: &HeaderMap) -> OriginHeaders {
        OriginHeaders {
            forwarded_host: headers.get(&X_FORWARDED_HOST).cloned(),
            forwarded_proto: headers.get(&X_FORWARDED_PROTO).cloned(),
            host: headers.get(header::HOST).cloned(),
        }
    }
}

const JSON: &str = "application/json";

/// Our ceilings on a request's head. hyper's sit above them (`serve.rs`), so a request over
/// these still gets Graph's body and the request ids; one over hyper's gets hyper's empty answer.
pub const MAX_URI_BYTES: usize = 32 * 1024;
pub const MAX_HEADER_COUNT: usize = 64;
const _: () = assert!(MAX_HEADER_COUNT < crate::serve::HYPER_MAX_HEADERS);
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The status for a request whose head is over our ceilings, if it is.
fn head_over_limits(uri: &axum::http::Uri, headers: &HeaderMap) -> Option<StatusCode> {
    if uri.path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI_BYTES {
        return Some(StatusCode::URI_TOO_LONG);
    }
    if headers.len() > MAX_HEADER_COUNT
        || headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum::<usize>() > MAX_HEADER_BYTES
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    None
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&CLIENT_REQUEST_ID)?.to_str().ok()?.trim();
    // Echo what the client sent, within reason; a hostile value is replaced by our own id.
    (!value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())).then(|| value.to_owned())
}

/// What decides the origin of absolute links, besides the request's headers.
struct Origin<'a> {
    /// `--public-url`.
    public_url: Option<&'a PublicUrl>,
    /// The scheme of the connection (`https` on a TLS listener).
    connection_scheme: &'a Scheme,
    /// The authority of an HTTP/2 request or of an absolute-form target.
    target_authority: Option<&'a str>,
    /// The listen address, for a request that names no host at all (HTTP/1.0); written out
    /// only then.
    fallback: std::net::SocketAddr,
}

/// The origin the client addressed, for absolute links, first match wins:
/// 1. `X-Forwarded-Host` and `X-Forwarded-Proto` from a reverse proxy (or from a client that
///    keeps addressing https://graph.microsoft.com and hands its requests to dmsync; fetch in
///    Node cannot set `Host` itself). The one that is missing comes from the request as in 3.
/// 2. `--public-url`, for a TLS terminator that sends no such headers (not for a request that
///    came through the proxy's tunnel, whose links name the host the client asked for).
/// 3. The connection's scheme and the host the request names (`Host`, or HTTP/2's authority).
///
/// A header with anything but a host and a port in it is ignored.
fn base_url(headers: &OriginHeaders, origin: Origin<'_>) -> String {
    fn usable(value: &Option<HeaderValue>) -> Option<&str> {
        value.as_ref().and_then(|h| h.to_str().ok()).filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b',' | b'\\'))
        })
    }
    let forwarded_host = usable(&headers.forwarded_host);
    let forwarded_scheme =
        headers.forwarded_proto.as_ref().and_then(|h| h.to_str().ok()).filter(|p| *p == "https" || *p == "http");
    if forwarded_host.is_none()
        && forwarded_scheme.is_none()
        && let Some(public_url) = origin.public_url
    {
        return public_url.origin().to_owned();
    }
    let scheme = forwarded_scheme.unwrap_or(origin.connection_scheme.as_str());
    match forwarded_host.or_else(|| usable(&headers.host)).or(origin.target_authority) {
        Some(host) => [scheme, "://", host].concat(),
        None => format!("{scheme}://{}", origin.fallback),
    }
}

/// What the request context learned of a request before it ran, to finish its answer with.
pub struct Begun {
    context: RequestContext,
    started: Instant,
    over_limits: Option<StatusCode>,
    route: Option<MatchedPath>,
    method: axum::http::Method,
    http1: bool,
    body_deadline: Option<crate::serve::BodyDeadline>,
}

/// The request context's first half: gives the request its ids and URLs (in its extensions, for
/// the handlers) and checks its head against our ceilings.
pub fn begin(state: &AppState, request: &mut Request) -> Begun {
    let started = Instant::now();
    let original = request.extensions().get::<axum::extract::OriginalUri>().map(|o| &o.0);
    let uri = original.unwrap_or(request.uri());
    let connection_scheme = request.extensions().get::<Connection>().map_or(Scheme::HTTP, |c| c.scheme().clone());
    // Through the proxy, links name the Microsoft host the client asked for.
    let public_url =
        state.config().public_url.as_ref().filter(|_| request.extensions().get::<TunnelHost>().is_none()).cloned();
    let over_limits = head_over_limits(uri, request.headers());
    let context = RequestContext(Arc::new(ContextFacts {
        id: Uuid::new_v4(),
        id_text: OnceLock::new(),
        client_request_id: client_request_id(request.headers()),
        origin: OriginFacts {
            headers: OriginHeaders::of(request.headers()),
            public_url,
            connection_scheme,
            uri: uri.clone(),
            listen: state.config().listen,
        },
        base_url: OnceLock::new(),
        url: OnceLock::new(),
        verified: OnceLock::new(),
    }));
    let begun = Begun {
        context: context.clone(),
        started,
        over_limits,
        route: request.extensions().get::<MatchedPath>().cloned(),
        method: request.method().clone(),
        http1: request.version() < axum::http::Version::HTTP_2,
        body_deadline: request.extensions().get::<crate::serve::BodyDeadline>().cloned(),
    };
    request.extensions_mut().insert(context);
    begun
}

impl Begun {
    /// The answer to a request whose head is over our ceilings, which nothing else may read.
    pub fn refusal(&self) -> Option<Response> {
        self.over_limits.map(IntoResponse::into_response)
    }

    /// The request context's second half: Graph's body for an error, the `Date`, the ids and
    /// Graph's diagnostic header, and the request's metrics.
    pub fn finish(self, state: &AppState, mut response: Response) -> Response {
        let context = &self.context;
        if self.body_deadline.is_some_and(|deadline| deadline.expired()) {
            // Whatever the handler made of its failed read, the client was too slow: say so, and
            // close, since the rest of the body may still be on its way.
            response = StatusCode::REQUEST_TIMEOUT.into_response();
            if self.http1 {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        // One reading of the Clock for the whole response, so `Date` and an error's innerError
        // date agree.
        let now = state.now();
        if response.status().as_u16() >= 400 && response.extensions().get::<ForeignErrorBody>().is_none() {
            response = render_error(context, response, now);
        }
        let headers = response.headers_mut();
        // Graph's `Date` is the service's own time. dmsync's is its Clock, which the admin API can
        // move forward, so that a client reading timestamps in a body (the sync cooldown, a token's
        // expiry) can measure them against the server's now rather than its own. Hyper adds a
        // wall-clock `Date` only when the response has none.
        if let Some(date) = date_header(now) {
            headers.insert(header::DATE, date);
        }
        let mut buffer = Uuid::encode_buffer();
        if let Ok(id) = HeaderValue::from_str(context.id.hyphenated().encode_lower(&mut buffer)) {
            let theirs = context.client_request_id.as_deref().map(HeaderValue::from_str);
            headers.insert(REQUEST_ID.clone(), id.clone());
            match theirs {
                Some(Ok(theirs)) => headers.insert(CLIENT_REQUEST_ID.clone(), theirs),
                Some(Err(_)) => None,
                None => headers.insert(CLIENT_REQUEST_ID.clone(), id),
            };
        }
        headers.insert(
            AGS_DIAGNOSTIC.clone(),
            HeaderValue::from_static(
                r#"{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"dmsync"}}"#,
            ),
        );
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        crate::metrics::record_request(route, &self.method, response.status(), self.started.elapsed());
        response
    }
}

/// The request context alone, as a middleware, for the routers that answer a refused connection
/// (the Graph routes have it in [`crate::http::pipeline`]).
pub async fn request_context(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let begun = begin(&state, &mut request);
    let response = match begun.refusal() {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    begun.finish(&state, response)
}

/// Turns any error response into Graph's body (also used by `$batch` for the answer of a request it
/// did not run). Responses from our own `ApiError` carry an
/// [`ErrorSpec`]; anything else (a framework rejection, a layer's 413) gets one from its status.
pub(crate) fn render_error(context: &RequestContext, response: Response, now: time::OffsetDateTime) -> Response {
    let (mut parts, _) = response.into_parts();
    let spec =
        parts.extensions.remove::<ErrorSpec>().unwrap_or_else(|| ApiError::for_status(parts.status).error_spec());
    let message = match spec.message {
        MessageSpec::Plain(text) => text,
        MessageSpec::Intune { lead, phrase, retry_after } => IntuneErrorMessage {
            version: 3,
            message: [
                &*lead,
                " - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - Activity ID: ",
                context.request_id(),
                " - Url: ",
                context.url(),
            ]
            .concat(),
            custom_api_error_phrase: phrase,
            retry_after,
            error_source_service: String::new(),
            http_headers: "{}".into(),
        }
        .to_message_string(),
    };
    let body = GraphErrorBody {
        error: MainError {
            code: spec.code,
            message,
            details: spec.details,
            inner_error: Some(InnerError {
                // The Clock's time, like the Date header; logs are found by the request-id.
                date: inner_error_date(now),
                request_id: context.request_id().to_owned(),
                client_request_id: context.client_request_id().to_owned(),
            }),
        },
    };
    let bytes = body.to_json();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// The `Date` header for `now`. It changes once a second, so each thread keeps the last one it
/// made rather than formatting one for every response.
fn date_header(now: time::OffsetDateTime) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    let second = now.unix_timestamp();
    LAST.with_borrow_mut(|last| match last {
        Some((at, value)) if *at == second => Some(value.clone()),
        _ => {
            let value = HeaderValue::from_str(&http_date(now)).ok()?;
            *last = Some((second, value.clone()));
            Some(value)
        }
    })
}

/// An HTTP date (RFC 9110's IMF-fixdate), as the `Date` header carries it.
fn http_date(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls_follow_forwarded_headers_then_the_public_url_then_the_connection() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            OriginHeaders::of(&map)
        };
        let public = PublicUrl::parse("https://dmsync.example").unwrap();
        let origin = |public_url, connection_scheme, target_authority| Origin {
            public_url,
            connection_scheme,
            target_authority,
            fallback: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let host = headers(&[("host", "127.0.0.1:9443")]);
        assert_eq!(base_url(&host, origin(None, &Scheme::HTTP, None)), "http://127.0.0.1:9443");
        assert_eq!(base_url(&host, origin(None, &Scheme::HTTPS, None)), "https://127.0.0.1:9443");
        assert_eq!(base_url(&host, origin(Some(&public), &Scheme::HTTP, None)), "https://dmsync.example");
        // HTTP/2 names the authority in the target, not in Host.
        assert_eq!(
            base_url(&headers(&[]), origin(None, &Scheme::HTTPS, Some("localhost:9443"))),
            "https://localhost:9443"
        );
        assert_eq!(base_url(&headers(&[]), origin(None, &Scheme::HTTP, None)), "http://127.0.0.1:8080");
        // A proxy's headers come first, each filling in what it names.
        let forwarded = headers(&[("host", "10.0.0.1"), ("x-forwarded-host", "graph.example")]);
        assert_eq!(base_url(&forwarded, origin(Some(&public), &Scheme::HTTPS, None)), "https://graph.example");
        let proto = headers(&[("host", "10.0.0.1"), ("x-forwarded-proto", "http")]);
        assert_eq!(base_url(&proto, origin(Some(&public), &Scheme::HTTPS, None)), "http://10.0.0.1");
        let bogus = headers(&[("host", "10.0.0.1"), ("x-forwarded-host", "evil/path")]);
        assert_eq!(base_url(&bogus, origin(Some(&public), &Scheme::HTTP, None)), "https://dmsync.example");
    }

    #[test]
    fn http_date_is_imf_fixdate_in_gmt() {
        let at = time::macros::datetime!(2026-12-02 08:05:09.9 +01:00);
        assert_eq!(http_date(at), "Wed, 02 Dec 2026 07:05:09 GMT");
    }
}
