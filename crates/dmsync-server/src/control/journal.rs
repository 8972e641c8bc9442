//! The request journal: a bounded in-memory ring of the Graph and sign-in requests the server
//! answered, so a test can see what its automation sent and verify it ("the sync was called
//! exactly once"). It is bounded twice, in entries and in bytes per body, so it can never grow
//! with the traffic (WireMock's unbounded journal is a known cause of running out of memory).
//!
//! [`record`] is a layer outside the request context: it sees the final status and the rendered
//! error bodies. The response body is teed while it streams, keeping at most the per-body limit,
//! and the entry is written when the body ends or is dropped, so a large page is never buffered.
//! Secrets are redacted before an entry is kept; the request's headers are never kept at all.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde::Serialize;
use time::OffsetDateTime;

use dmsync_core::TenantId;

use super::RequestIdentity;
use crate::state::AppState;

/// The longest path and query kept; a longer one is cut, with the marker.
pub const MAX_PATH_BYTES: usize = 2048;
/// The longest application id kept (an external issuer's `appid` is the client's to choose).
const MAX_APP_ID_BYTES: usize = 128;
/// The longest nearest-route text kept.
const MAX_ROUTE_BYTES: usize = 512;
/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// What ends a body or a path that was cut at the limit.
const TRUNCATED: &str = "…[truncated by dmsync]";

/// Form fields whose values are secrets: the token endpoint's and the sign-in page's (which
/// names the password `passwd`, as Entra's does, and carries a signed `flowToken`).
const SECRET_FORM_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "flowToken",
    "client_secret",
    "client_assertion",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
    "assertion",
];

/// JSON properties whose string values are secrets, compared without regard to case. `code` is
/// not one: it names Graph's error codes, which a tester needs to see.
const SECRET_JSON_PROPERTIES: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "device_code",
    "client_secret",
    "client_assertion",
    "password",
    "deviceAccountPassword",
    "clientSecret",
    "secretText",
    "privateKey",
    "key",
];

/// Set on the response by the Graph stack's fallback, for a path no route matched: the known
/// route nearest to it (`None` outside Graph's versions), which the journal shows.
#[derive(Clone, Debug)]
pub struct UnknownRoute(pub Option<String>);

/// One journalled request. The strings are boxed so their length is their allocation, which is
/// what the byte accounting counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Where the entry sits in the journal's order of recording, which `dmsync requests tail`
    /// follows.
    pub sequence: u64,
    /// When the request arrived, on the Clock.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub tenant_id: Option<TenantId>,
    pub app_id: Option<Box<str>>,
    #[serde(serialize_with = "method_text")]
    pub method: Method,
    /// The path (as routed, in canonical spelling) and the query, with secrets redacted.
    pub path: Box<str>,
    pub status: u16,
    pub duration_ms: f64,
    pub request_body: Option<KeptBody>,
    pub response_body: Option<KeptBody>,
    /// The `x-dmsync-fault` rule that answered, when a fault was injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Box<str>>,
    /// For a path no route matched: the known route nearest to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_route: Option<Box<str>>,
}

fn method_text<S: serde::Serializer>(method: &Method, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(method.as_str())
}

impl Entry {
    /// The bytes this entry holds: itself, its `Arc`'s counts and its strings.
    fn bytes(&self) -> usize {
        let text = |s: &Option<Box<str>>| s.as_ref().map_or(0, |s| s.len());
        std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<usize>()
            + self.path.len()
            + text(&self.app_id)
            + self.request_body.as_ref().map_or(0, KeptBody::len)
            + self.response_body.as_ref().map_or(0, KeptBody::len)
            + text(&self.fault)
            + text(&self.nearest_route)
    }

    /// The path without its query.
    fn bare_path(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }
}

/// What selects entries: every field that is set must match.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub method: Option<Method>,
    pub path: Option<PathPattern>,
    pub tenant: Option<TenantId>,
    pub status: Option<StatusFilter>,
    pub since: Option<OffsetDateTime>,
}

impl Filter {
    pub fn matches(&self, entry: &Entry) -> bool {
        self.method.as_ref().is_none_or(|m| *m == entry.method)
            && self.path.as_ref().is_none_or(|p| p.matches(entry))
            && self.tenant.is_none_or(|t| entry.tenant_id == Some(t))
            && self.status.is_none_or(|s| s.matches(entry.status))
            && self.since.is_none_or(|since| entry.time >= since)
    }
}

/// A status filter: one status (`409`) or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<StatusFilter> {
        let text = text.trim();
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Some(StatusFilter::Class(c)),
                _ => None,
            };
        }
        match text.parse::<u16>() {
            Ok(s @ 100..=599) if text.len() == 3 => Some(StatusFilter::Exact(s)),
            _ => None,
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            StatusFilter::Exact(s) => s == status,
            StatusFilter::Class(c) => status / 100 == c,
        }
    }
}

/// A path filter: the path itself, or a pattern where `*` stands for any run of characters.
/// There is no other syntax, so no pattern can take long to match (see [`wildcard_match`]).
#[derive(Debug, Clone)]
pub struct PathPattern {
    pattern: String,
    /// Whether the pattern names a query too, and so is matched against the path and query.
    with_query: bool,
}

/// The longest path pattern accepted.
pub const MAX_PATTERN_BYTES: usize = MAX_PATH_BYTES;

impl PathPattern {
    pub fn parse(text: &str) -> Option<PathPattern> {
        if text.is_empty() || text.len() > MAX_PATTERN_BYTES {
            return None;
        }
        Some(PathPattern { pattern: text.to_owned(), with_query: text.contains('?') })
    }

    fn matches(&self, entry: &Entry) -> bool {
        let subject = if self.with_query { &entry.path } else { entry.bare_path() };
        wildcard_match(self.pattern.as_bytes(), subject.as_bytes())
    }
}

/// Matches `*` wildcards in time proportional to the product of the lengths at worst, and
/// usually linear: on a mismatch it only retries from the last `*`, never from earlier ones.
fn wildcard_match(pattern: &[u8], subject: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while s < subject.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            retry = Some((p, s));
            p += 1;
        } else if p < pattern.len() && pattern[p] == subject[s] {
            p += 1;
            s += 1;
        } else if let Some((star, from)) = retry {
            p = star + 1;
            s = from + 1;
            retry = Some((star, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The ring and its byte count, behind one lock.
#[derive(Default)]
struct Ring {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    next_sequence: u64,
}

/// The journal: at most `capacity` entries, each body at most `body_bytes` (plus the marker).
pub struct Journal {
    ring: Mutex<Ring>,
    capacity: usize,
    body_bytes: usize,
}

/// What an entry is made of before the journal numbers it.
pub struct NewEntry {
    pub time: OffsetDateTime,
    pub identity: RequestIdentity,
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub duration_ms: f64,
    pub request_body: Option<Captured>,
    pub response_body: Option<Captured>,
    pub fault: Option<String>,
    pub nearest_route: Option<String>,
}

/// The first bytes of a body and how many it had in all.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub total: usize,
    /// The body's content type decides how it is redacted.
    pub kind: BodyKind,
}

/// How a body is redacted, by its content type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// JSON, or anything else: secret properties' string values are replaced.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: secret fields' values are replaced.
    Form,
    /// HTML: the `form_post` page carries the code and tokens in hidden inputs.
    Html,
}

impl Journal {
    pub fn new(capacity: usize, body_bytes: usize) -> Journal {
        Journal { ring: Mutex::new(Ring::default()), capacity, body_bytes }
    }

    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// The most bytes the journal's entries can hold together.
    pub fn max_bytes(&self) -> usize {
        let body = self.body_bytes + TRUNCATED.len();
        let entry = std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<usize>()
            + MAX_PATH_BYTES
            + TRUNCATED.len()
            + MAX_APP_ID_BYTES
            + 2 * body
            + MAX_APP_ID_BYTES
            + MAX_ROUTE_BYTES;
        self.capacity * entry
    }

    /// The bytes the entries hold now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while the lock was held leaves a ring that is still consistent.
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Redacts, bounds and keeps an entry, dropping the oldest when the ring is full.
    pub fn push(&self, new: NewEntry) {
        if self.capacity == 0 {
            return;
        }
        let limit = self.body_bytes;
        let body = |captured: Option<Captured>| captured.filter(|c| c.total > 0).map(|c| KeptBody::new(c, limit));
        let mut entry = Entry {
            sequence: 0,
            time: new.time,
            tenant_id: new.identity.tenant,
            app_id: new.identity.app.map(|a| cut(a, MAX_APP_ID_BYTES, false)),
            method: new.method,
            path: cut(redact_path(&new.path), MAX_PATH_BYTES, true),
            status: new.status,
            duration_ms: new.duration_ms,
            request_body: body(new.request_body),
            response_body: body(new.response_body),
            fault: new.fault.map(|f| cut(f, MAX_APP_ID_BYTES, false)),
            nearest_route: new.nearest_route.map(|r| cut(r, MAX_ROUTE_BYTES, false)),
        };
        let size = entry.bytes();
        let mut ring = self.lock();
        entry.sequence = ring.next_sequence;
        ring.next_sequence += 1;
        while ring.entries.len() >= self.capacity {
            match ring.entries.pop_front() {
                Some(old) => ring.bytes -= old.bytes(),
                None => break,
            }
        }
        ring.bytes += size;
        ring.entries.push_back(Arc::new(entry));
    }

    /// The entries that match, oldest first.
    pub fn select(&self, filter: &Filter) -> Vec<Arc<Entry>> {
        self.lock().entries.iter().filter(|e| filter.matches(e)).cloned().collect()
    }

    pub fn count(&self, filter: &Filter) -> usize {
        self.lock().entries.iter().filter(|e| filter.matches(e)).count()
    }

    pub fn clear(&self) {
        let mut ring = self.lock();
        ring.entries.clear();
        ring.bytes = 0;
    }
}

/// `text` cut to at most `limit` bytes on a character boundary, with the marker when cut.
fn cut(mut text: String, limit: usize, mark: bool) -> Box<str> {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        if mark {
            text.push_str(TRUNCATED);
        }
    }
    text.into_boxed_str()
}

/// A body as an entry keeps it: the bytes captured (at most the journal's limit), shown
/// redacted, cut to the limit and marked when the entry is read. Rendering on the way out
/// rather than on the way in keeps the request path's share of the journal to one copy of the
/// bytes: entries are written on every request and most are never read.
pub struct KeptBody {
    bytes: Box<[u8]>,
    total: usize,
    kind: BodyKind,
    limit: usize,
}

impl KeptBody {
    fn new(captured: Captured, limit: usize) -> KeptBody {
        let mut bytes = captured.bytes;
        bytes.truncate(limit);
        KeptBody { bytes: bytes.into_boxed_slice(), total: captured.total, kind: captured.kind, limit }
    }

    /// The bytes it holds, for the journal's accounting.
    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The body as shown: redacted, cut to the limit, marked when anything was left out.
    pub fn text(&self) -> Box<str> {
        bounded_body(&self.bytes, self.total, self.kind, self.limit)
    }
}

/// Shows the body as a reader sees it, redacted: the bytes kept are not for logs either.
impl std::fmt::Debug for KeptBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeptBody").field(&self.text()).finish()
    }
}

impl Serialize for KeptBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

/// A captured body as shown: redacted, then cut to the limit, marked when anything was left out.
fn bounded_body(bytes: &[u8], total: usize, kind: BodyKind, limit: usize) -> Box<str> {
    let text = String::from_utf8_lossy(bytes);
    let redacted = match kind {
        BodyKind::Json => redact_json(&text),
        BodyKind::Form => redact_form(&text),
        BodyKind::Html => redact_html(&text),
    };
    let truncated = total > bytes.len() || redacted.len() > limit;
    let mut kept = cut(redacted, limit, false).into_string();
    if truncated {
        kept.push_str(TRUNCATED);
    }
    kept.into_boxed_str()
}

/// The path with the secret fields of its query redacted (the authorize endpoint's redirect
/// carries a `code`, and a client may put anything in a query).
fn redact_path(path: &str) -> String {
    match path.split_once('?') {
        Some((bare, query)) => format!("{bare}?{}", redact_form(query)),
        None => path.to_owned(),
    }
}

/// A form body (or a query) with the values of its secret fields replaced.
pub fn redact_form(form: &str) -> String {
    let mut out = String::with_capacity(form.len());
    for (i, pair) in form.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if SECRET_FORM_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(name)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// A JSON text with the string values of its secret properties replaced. It works on the text,
/// not a parsed document, so a body cut at the limit (no longer valid JSON) is redacted too, and
/// no nesting can make it recurse: one pass, no allocation beyond the output.
pub fn redact_json(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A string starts here: find its end, honouring escapes.
        let start = i + 1;
        let end = string_end(bytes, start);
        let name = &text[start..end.min(bytes.len())];
        let mut next = (end + 1).min(bytes.len());
        // A property name is followed by a colon, then its value.
        let mut j = next;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b':' && SECRET_JSON_PROPERTIES.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            j += 1;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'"' {
                let value_end = string_end(bytes, j + 1);
                out.push_str(&text[copied..=j]);
                out.push_str(REDACTED);
                if value_end < bytes.len() {
                    out.push('"');
                }
                copied = (value_end + 1).min(bytes.len());
                next = copied;
            }
        }
        i = next;
    }
    out.push_str(&text[copied..]);
    out
}

/// The index of the quote that closes a JSON string whose content starts at `start`, or the
/// text's length when it is not closed.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut k = start;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' => k += 2,
            b'"' => return k,
            _ => k += 1,
        }
    }
    bytes.len()
}

/// How a body with these headers is redacted.
fn body_kind(headers: &HeaderMap) -> BodyKind {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if media.eq_ignore_ascii_case("text/html") {
        BodyKind::Html
    } else {
        BodyKind::Json
    }
}

/// An HTML page with the values of its secret inputs (`name="code" value="…"`, as dmsync's
/// `form_post` page writes them) replaced.
pub fn redact_html(html: &str) -> String {
    const NAME: &str = "name=\"";
    const VALUE: &str = "\" value=\"";
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find(NAME) {
        let after_name = at + NAME.len();
        out.push_str(&rest[..after_name]);
        rest = &rest[after_name..];
        let Some(end) = rest.find('"') else { break };
        let name = &rest[..end];
        let secret = SECRET_FORM_FIELDS.iter().chain(SECRET_JSON_PROPERTIES).any(|s| s.eq_ignore_ascii_case(name));
        if secret && rest[end..].starts_with(VALUE) {
            let value_start = end + VALUE.len();
            out.push_str(&rest[..value_start]);
            out.push_str(REDACTED);
            rest = &rest[value_start..];
            rest = rest.find('"').map_or("", |close| &rest[close..]);
        }
    }
    out.push_str(rest);
    out
}

/// A body's first bytes, shared by the body that fills it and the entry that reads it.
type Tee = Arc<Mutex<Captured>>;

fn take(tee: &Tee) -> Captured {
    std::mem::take(&mut *tee.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Where a teed body's copy goes: shared, for a request body (the entry is written by the
/// response's body), or held by the body itself, for a response's (no lock per frame).
enum Sink {
    Shared(Tee),
    Owned(Captured),
}

/// A body that keeps a copy of its first `limit` bytes as they pass.
struct TeeBody {
    inner: Body,
    sink: Sink,
    limit: usize,
    /// For a response: the entry to write when the body ends or is dropped.
    finish: Option<Box<dyn FnOnce(Captured) + Send>>,
}

impl Captured {
    fn observe(&mut self, data: &Bytes, limit: usize) {
        self.total += data.len();
        let keep = limit.saturating_sub(self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..keep]);
    }
}

impl TeeBody {
    fn observe(&mut self, data: &Bytes) {
        match &mut self.sink {
            Sink::Shared(tee) => tee.lock().unwrap_or_else(|p| p.into_inner()).observe(data, self.limit),
            Sink::Owned(captured) => captured.observe(data, self.limit),
        }
    }

    fn finish(&mut self) {
        if let Some(finish) = self.finish.take() {
            let captured = match &mut self.sink {
                Sink::Shared(tee) => take(tee),
                Sink::Owned(captured) => std::mem::take(captured),
            };
            finish(captured);
        }
    }
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.observe(data);
                }
                // Written as soon as the last frame is out, before the client can have read it,
                // so a test that reads the journal after its response finds the entry there.
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The journal's part in the request pipeline (`http::pipeline`): started before anything else
/// sees a controlled request, finished with the response as its client gets it. It times the
/// request, tees both bodies, and writes the entry when the response's body is done.
pub struct Recording {
    journal: Arc<Journal>,
    started: Instant,
    time: OffsetDateTime,
    method: Method,
    path: String,
    limit: usize,
    request_tee: Option<Tee>,
}

impl Recording {
    /// Starts the entry of `request`, which arrived at `time` on the Clock, and tees its body.
    pub fn start(state: &AppState, request: Request, time: OffsetDateTime) -> (Recording, Request) {
        let journal = state.journal().clone();
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
        let limit = journal.body_bytes();

        // A request with no body (most GETs) is not wrapped at all.
        let (parts, body) = request.into_parts();
        let request_tee = if body.is_end_stream() {
            None
        } else {
            let tee: Tee = Arc::new(Mutex::new(Captured { kind: body_kind(&parts.headers), ..Captured::default() }));
            Some(tee)
        };
        let body = match &request_tee {
            Some(tee) => Body::new(TeeBody { inner: body, sink: Sink::Shared(tee.clone()), limit, finish: None }),
            None => body,
        };
        let recording = Recording { journal, started, time, method, path, limit, request_tee };
        (recording, Request::from_parts(parts, body))
    }

    /// Finishes the entry with the response and who the control plane found the caller to be.
    pub fn finish(self, response: Response, identity: RequestIdentity) -> Response {
        let Recording { journal, started, time, method, path, limit, request_tee } = self;
        let (parts, body) = response.into_parts();
        let nearest_route = parts.extensions.get::<UnknownRoute>().and_then(|unknown| unknown.0.clone());
        let fault = parts.headers.get(&super::faults::FAULT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = parts.status.as_u16();
        let response_kind = body_kind(&parts.headers);
        let finish = move |response_body: Captured| {
            journal.push(NewEntry {
                time,
                identity,
                method,
                path,
                status,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                request_body: request_tee.as_ref().map(take),
                response_body: Some(response_body),
                fault,
                nearest_route,
            });
        };
        if body.is_end_stream() {
            // Nothing to tee (a 204): the entry is written now, not when hyper drops the body.
            finish(Captured { kind: response_kind, ..Captured::default() });
            return Response::from_parts(parts, body);
        }
        let sink = Sink::Owned(Captured { kind: response_kind, ..Captured::default() });
        let body = TeeBody { inner: body, sink, limit, finish: Some(Box::new(finish)) };
        Response::from_parts(parts, Body::new(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, body: &str) -> NewEntry {
        NewEntry {
            time: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64),
            identity: RequestIdentity { tenant: None, app: Some("a".repeat(i % 300)) },
            method: Method::POST,
            path: format!("/beta/deviceManagement/{}?x={}", "p".repeat(i % 5000), i),
            status: 200,
            duration_ms: 1.0,
            request_body: Some(Captured {
                bytes: body.as_bytes().to_vec(),
                total: body.len() * 2,
                kind: BodyKind::Json,
            }),
            response_body: Some(Captured { bytes: vec![0xff; body.len()], total: body.len(), kind: BodyKind::Json }),
            fault: None,
            nearest_route: Some("r".repeat(i % 1000)),
        }
    }

    #[test]
    fn a_hundred_thousand_entries_stay_within_the_bound() {
        let journal = Journal::new(1000, 256);
        let body = r#"{"password":"x","a":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}"#.repeat(4);
        let mut peak = 0;
        for i in 0..100_000 {
            // Invalid UTF-8 widens threefold when decoded; the cut happens after.
            journal.push(entry(i, &body[..(i * 7) % body.len()]));
            peak = peak.max(journal.bytes());
        }
        assert_eq!(journal.len(), 1000);
        assert!(peak <= journal.max_bytes(), "{peak} > {}", journal.max_bytes());
        // The count is exact: it is what the entries that are left hold.
        let recount: usize = journal.select(&Filter::default()).iter().map(|e| e.bytes()).sum();
        assert_eq!(recount, journal.bytes());
        assert_eq!(journal.select(&Filter::default())[0].sequence, 99_000);
        journal.clear();
        assert_eq!(journal.bytes(), 0);
    }

    #[test]
    fn an_empty_journal_keeps_nothing() {
        let journal = Journal::new(0, 256);
        journal.push(entry(1, "{}"));
        assert!(journal.is_empty());
        assert_eq!(journal.max_bytes(), 0);
    }

    #[test]
    fn secrets_are_redacted_in_forms_json_and_queries() {
        assert_eq!(
            redact_form("grant_type=password&username=u&password=p%40ss&client_secret=s&scope=x"),
            "grant_type=password&username=u&password=[REDACTED]&client_secret=[REDACTED]&scope=x"
        );
        assert_eq!(
            redact_json(r#"{"access_token": "eyJ.a.b","n":{"Password":"p\"w"},"code":"Conflict","clientSecret":1}"#),
            r#"{"access_token": "[REDACTED]","n":{"Password":"[REDACTED]"},"code":"Conflict","clientSecret":1}"#
        );
        // A body cut in the middle of a secret loses the rest of it.
        assert_eq!(redact_json(r#"{"refresh_token":"abc"#), r#"{"refresh_token":"[REDACTED]"#);
        assert_eq!(redact_json(r#"["password", "x"]"#), r#"["password", "x"]"#);
        assert_eq!(
            redact_path("/t/oauth2/v2.0/authorize?code=abc&state=1"),
            "/t/oauth2/v2.0/authorize?code=[REDACTED]&state=1"
        );
        assert_eq!(
            redact_html(
                r#"<input type="hidden" name="code" value="abc"><input name="state" value="s"><input name="id_token" value="x"#
            ),
            r#"<input type="hidden" name="code" value="[REDACTED]"><input name="state" value="s"><input name="id_token" value="[REDACTED]"#
        );
    }

    #[test]
    fn bodies_over_the_limit_are_cut_and_marked() {
        let journal = Journal::new(10, 8);
        let mut new = entry(0, "");
        new.request_body = Some(Captured { bytes: b"abcdefgh".to_vec(), total: 20, kind: BodyKind::Json });
        new.response_body = Some(Captured { bytes: b"short".to_vec(), total: 5, kind: BodyKind::Json });
        journal.push(new);
        let kept = &journal.select(&Filter::default())[0];
        assert_eq!(
            kept.request_body.as_ref().map(KeptBody::text).as_deref(),
            Some(format!("abcdefgh{TRUNCATED}").as_str())
        );
        assert_eq!(kept.response_body.as_ref().map(KeptBody::text).as_deref(), Some("short"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// Whatever a client sends, redaction does not panic and a kept body stays in its bound.
        #[test]
        fn any_body_is_redacted_without_panicking_and_stays_bounded(
            text in r#"(\PC|["\\:=&<>]|password|access_token|name="code" value=")*"#,
            limit in 0usize..64,
        ) {
            for kind in [BodyKind::Json, BodyKind::Form, BodyKind::Html] {
                let captured = Captured { bytes: text.as_bytes().to_vec(), total: text.len(), kind };
                let kept = bounded_body(&captured.bytes, captured.total, captured.kind, limit);
                proptest::prop_assert!(kept.len() <= limit + TRUNCATED.len());
            }
            let _ = redact_path(&text);
        }
    }

    #[test]
    fn filters_match_wildcards_statuses_and_times() {
        assert!(wildcard_match(b"/beta/*/sync", b"/beta/deviceManagement/windowsAutopilotSettings/sync"));
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"/a*b*c", b"/aXbYbZc"));
        assert!(!wildcard_match(b"/a*b*c", b"/aXbYbZ"));
        assert!(!wildcard_match(b"/beta", b"/beta/x"));
        // A pattern made to backtrack stays quick.
        let subject = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(1000));
        assert!(!wildcard_match(pattern.as_bytes(), subject.as_bytes()));
        assert_eq!(StatusFilter::parse("409"), Some(StatusFilter::Exact(409)));
        assert_eq!(StatusFilter::parse("4xx"), Some(StatusFilter::Class(4)));
        for bad in ["conflict", "40", "4000", "9xx", "", "+409"] {
            assert_eq!(StatusFilter::parse(bad), None, "{bad}");
        }
    }
}
