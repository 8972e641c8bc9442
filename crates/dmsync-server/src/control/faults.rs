//! Faults on demand: rules a tester adds through the admin API (or `serve --faults FILE`) that
//! make chosen Graph requests fail, wait, or lose their connection, and domain faults that make
//! the state machines' next run end badly (a failed Autopilot sync, a failed import, a
//! disconnected connector, a failed profile assignment).
//!
//! The rules live in this process's memory. On PostgreSQL every replica holds its own set, so a
//! test that runs several replicas adds its rules to each (or sends its requests to one).
//!
//! A rule has three parts, each validated when the rule is added so that a malformed rule is a
//! 400 that says what is wrong and nothing is added:
//! - `match`: what a request must be for the rule to apply (every field given must agree);
//! - `effect`: what happens to it, or a `domain` fault for a state machine;
//! - how often: `times` (the next N matches), `probability` with a `seed` (a PRNG per rule, so
//!   a run reproduces), or neither (until removed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use dmsync_core::autopilot::ForcedImportError;
use dmsync_core::profile_assignment::{ForcedAssignmentFailures, ProfileAssignmentStats};
use dmsync_core::{ConnectorId, TenantId};

use crate::control::RequestIdentity;
use crate::error::ApiError;
use crate::http::routing::RouteTable;
use crate::serve::Connection;
use crate::state::AppState;

/// Rules held at once: enough for any test, few enough that matching every request stays cheap.
pub const MAX_RULES: usize = 256;
/// The longest delay a rule may ask for: long enough to trip any client's timeout.
pub const MAX_DELAY_MS: u64 = 60_000;
/// The largest `Retry-After` a rule may send, in seconds.
pub const MAX_RETRY_AFTER_SECONDS: u64 = 3_600;
/// The largest `times`.
pub const MAX_TIMES: u32 = 1_000_000;
/// Segments of a path or a pattern, so that matching a pattern is bounded.
const MAX_SEGMENTS: usize = 64;
const MAX_PATH_BYTES: usize = 2_048;
const MAX_TEXT_BYTES: usize = 4_096;
const MAX_NAME_BYTES: usize = 128;

/// The header that names the rule behind an injected response.
pub static FAULT_HEADER: HeaderName = HeaderName::from_static("x-dmsync-fault");

/// A rule's id, as the admin API hands it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(Uuid);

impl FaultId {
    fn new() -> FaultId {
        FaultId(Uuid::new_v4())
    }

    pub fn parse(text: &str) -> Option<FaultId> {
        Uuid::parse_str(text).ok().map(FaultId)
    }
}

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

// ---- The wire form of a rule, as the admin API and the file give it ----

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleInput {
    #[serde(rename = "match", default)]
    pub matcher: MatchInput,
    pub effect: EffectInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// Every field an effect may have; which combinations make sense is checked in [`validate`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyShape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<ConnectorId>,
}

/// Whose error body an injected status carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyShape {
    /// Graph's gateway body: the message as plain text.
    #[default]
    Graph,
    /// Intune's body: a JSON document inside `message`.
    Intune,
}

/// The state machine faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DomainKind {
    /// The tenant's next Autopilot sync ends with `syncStatus` `failed`.
    AutopilotSyncFailed,
    /// The next import of a serial number ends in a given `deviceErrorCode`.
    ImportFailed,
    /// The next sync of an Exchange connector (any of the tenant's, or the one named) ends
    /// with the connector `disconnected`.
    ConnectorDisconnected,
    /// The next assignment of a deployment profile to a device (the one with the serial
    /// number named, or, without one, every device the next pass would assign) ends `failed`.
    ProfileAssignmentFailed,
}

// ---- A validated rule ----

/// A rule as it is held: validated, with its id.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: FaultId,
    matcher: Matcher,
    pub effect: Effect,
    how_often: HowOften,
    /// What the client sent, echoed by the admin API.
    input: RuleInput,
}

#[derive(Clone, Debug, Default)]
struct Matcher {
    method: Option<Method>,
    path: Option<PathMatch>,
    tenant: Option<TenantId>,
    app: Option<String>,
    operation: Option<String>,
}

#[derive(Clone, Debug)]
enum PathMatch {
    /// Segments compared one by one, ignoring case.
    Exact(Vec<String>),
    Pattern(Vec<PatternSegment>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternSegment {
    Literal(String),
    /// `*`: one segment.
    One,
    /// `**`: any number of segments, none included.
    Many,
}

/// What a matching request or job gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Http(HttpEffect),
    Domain(DomainEffect),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEffect {
    pub delay: Option<Duration>,
    pub outcome: HttpOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpOutcome {
    /// After the delay, the request goes through.
    PassThrough,
    /// The connection is closed without an answer.
    Drop,
    /// An error answer, rendered like every other error.
    Status(InjectedStatus),
}

/// An injected error answer, as `ApiError::InjectedFault` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedStatus {
    pub status: StatusCode,
    pub shape: BodyShape,
    pub code: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEffect {
    AutopilotSyncFailed,
    ImportFailed { serial_number: String, device_error_code: i64 },
    ConnectorDisconnected { connector: Option<ConnectorId> },
    ProfileAssignmentFailed { serial_number: Option<String> },
}

impl DomainEffect {
    fn kind(&self) -> DomainKind {
        match self {
            DomainEffect::AutopilotSyncFailed => DomainKind::AutopilotSyncFailed,
            DomainEffect::ImportFailed { .. } => DomainKind::ImportFailed,
            DomainEffect::ConnectorDisconnected { .. } => DomainKind::ConnectorDisconnected,
            DomainEffect::ProfileAssignmentFailed { .. } => DomainKind::ProfileAssignmentFailed,
        }
    }
}

#[derive(Clone, Debug)]
enum HowOften {
    Always,
    Times(u32),
    Probability { probability: f64, rng: SplitMix64 },
}

/// A small seeded PRNG (SplitMix64): the same seed draws the same sequence on every platform,
/// which is what makes a probabilistic rule reproduce.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1), from the top 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Why a rule was refused; the text is the 400's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleRefused(pub String);

fn refuse<T>(text: impl Into<String>) -> Result<T, RuleRefused> {
    Err(RuleRefused(text.into()))
}

/// Checks a rule in every part. `known_operation` tells whether an operation name exists; it
/// is `None` where the routes are not known yet (a file read before the server starts, which
/// is checked again when the rules are installed).
pub fn validate(input: RuleInput, known_operation: Option<&dyn Fn(&str) -> bool>) -> Result<Rule, RuleRefused> {
    let effect = validate_effect(&input.effect)?;
    let matcher = validate_match(&input.matcher, known_operation)?;
    if matches!(effect, Effect::Domain(_))
        && (matcher.method.is_some() || matcher.path.is_some() || matcher.app.is_some() || matcher.operation.is_some())
    {
        return refuse(
            "A domain fault is consumed by a background job, not by a request: its match may name only tenantId.",
        );
    }
    let how_often = match (input.times, input.probability) {
        (Some(_), Some(_)) => return refuse("Give either times or probability, not both."),
        (Some(times), None) => {
            if times == 0 || times > u64::from(MAX_TIMES) {
                return refuse(format!("times must be between 1 and {MAX_TIMES}."));
            }
            HowOften::Times(times as u32)
        }
        (None, Some(probability)) => {
            if !(0.0..=1.0).contains(&probability) {
                return refuse("probability must be between 0 and 1.");
            }
            HowOften::Probability { probability, rng: SplitMix64(input.seed.unwrap_or(0)) }
        }
        (None, None) => {
            if input.seed.is_some() {
                return refuse("seed is only meaningful with probability.");
            }
            HowOften::Always
        }
    };
    Ok(Rule { id: FaultId::new(), matcher, effect, how_often, input })
}

/// A domain fault's serial number, without the spaces around it, within bounds.
fn checked_serial(serial: &str) -> Result<String, RuleRefused> {
    let serial = serial.trim();
    if serial.is_empty() || serial.len() > MAX_NAME_BYTES {
        return refuse(format!("serialNumber must be 1 to {MAX_NAME_BYTES} bytes."));
    }
    Ok(serial.to_owned())
}

fn validate_effect(effect: &EffectInput) -> Result<Effect, RuleRefused> {
    if let Some(kind) = effect.domain {
        let http_fields = effect.status.is_some()
            || effect.body.is_some()
            || effect.code.is_some()
            || effect.message.is_some()
            || effect.delay_ms.is_some()
            || effect.drop.is_some()
            || effect.retry_after.is_some();
        if http_fields {
            return refuse("A domain effect takes no status, body, code, message, delayMs, drop or retryAfter.");
        }
        if kind != DomainKind::ConnectorDisconnected && effect.connector_id.is_some() {
            return refuse("connectorId belongs to the connectorDisconnected domain effect.");
        }
        let domain = match kind {
            DomainKind::ConnectorDisconnected => {
                if effect.serial_number.is_some() || effect.device_error_code.is_some() {
                    return refuse("connectorDisconnected takes no serialNumber or deviceErrorCode.");
                }
                DomainEffect::ConnectorDisconnected { connector: effect.connector_id }
            }
            DomainKind::AutopilotSyncFailed => {
                if effect.serial_number.is_some() || effect.device_error_code.is_some() {
                    return refuse("autopilotSyncFailed takes no serialNumber or deviceErrorCode.");
                }
                DomainEffect::AutopilotSyncFailed
            }
            DomainKind::ImportFailed => {
                let (Some(serial), Some(code)) = (&effect.serial_number, effect.device_error_code) else {
                    return refuse("importFailed needs serialNumber and deviceErrorCode.");
                };
                let serial = checked_serial(serial)?;
                if code == 0 || !(i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&code) {
                    return refuse("deviceErrorCode must be a non-zero 32-bit integer (0 means success).");
                }
                DomainEffect::ImportFailed { serial_number: serial, device_error_code: code }
            }
            DomainKind::ProfileAssignmentFailed => {
                if effect.device_error_code.is_some() {
                    return refuse("profileAssignmentFailed takes no deviceErrorCode (only an optional serialNumber).");
                }
                let serial_number = effect.serial_number.as_deref().map(checked_serial).transpose()?;
                DomainEffect::ProfileAssignmentFailed { serial_number }
            }
        };
        return Ok(Effect::Domain(domain));
    }
    if effect.serial_number.is_some() || effect.device_error_code.is_some() || effect.connector_id.is_some() {
        return refuse("serialNumber, deviceErrorCode and connectorId belong to domain effects.");
    }
    let delay = match effect.delay_ms {
        Some(ms) if ms > MAX_DELAY_MS => return refuse(format!("delayMs must be at most {MAX_DELAY_MS}.")),
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    };
    let drop = effect.drop.unwrap_or(false);
    let answers =
        effect.body.is_some() || effect.code.is_some() || effect.message.is_some() || effect.retry_after.is_some();
    let outcome = match effect.status {
        Some(_) if drop => return refuse("An effect either answers with a status or drops the connection, not both."),
        Some(status) => {
            let status = match StatusCode::from_u16(status) {
                Ok(s) if s.is_client_error() || s.is_server_error() => s,
                _ => return refuse(format!("status {status} is not a 4xx or 5xx status.")),
            };
            if let Some(code) = &effect.code
                && (code.is_empty()
                    || code.len() > MAX_NAME_BYTES
                    || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))
            {
                return refuse(format!(
                    "code must be 1 to {MAX_NAME_BYTES} letters, digits, '_' or '.', like Graph's codes."
                ));
            }
            if let Some(message) = &effect.message
                && (message.is_empty() || message.len() > MAX_TEXT_BYTES)
            {
                return refuse(format!("message must be 1 to {MAX_TEXT_BYTES} bytes."));
            }
            if effect.retry_after.is_some_and(|s| s > MAX_RETRY_AFTER_SECONDS) {
                return refuse(format!("retryAfter must be at most {MAX_RETRY_AFTER_SECONDS} seconds."));
            }
            HttpOutcome::Status(InjectedStatus {
                status,
                shape: effect.body.unwrap_or_default(),
                code: effect.code.clone(),
                message: effect.message.clone(),
                retry_after: effect.retry_after,
            })
        }
        None if answers => return refuse("body, code, message and retryAfter need a status."),
        None if drop => HttpOutcome::Drop,
        None if delay.is_some() => HttpOutcome::PassThrough,
        None => return refuse("The effect does nothing: give a status, delayMs, drop or domain."),
    };
    Ok(Effect::Http(HttpEffect { delay, outcome }))
}

fn validate_match(input: &MatchInput, known_operation: Option<&dyn Fn(&str) -> bool>) -> Result<Matcher, RuleRefused> {
    let method = match &input.method {
        None => None,
        Some(m) => {
            let upper = m.trim().to_ascii_uppercase();
            if upper.is_empty() || upper.len() > 16 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                return refuse(format!("method '{m}' is not an HTTP method."));
            }
            Some(
                Method::from_bytes(upper.as_bytes())
                    .map_err(|_| RuleRefused(format!("method '{m}' is not an HTTP method.")))?,
            )
        }
    };
    let path = match (&input.path, &input.path_pattern) {
        (Some(_), Some(_)) => return refuse("Give either path or pathPattern, not both."),
        (Some(path), None) => Some(PathMatch::Exact(
            segments_of(path, "path")?.into_iter().map(|s| without_namespace(s).to_owned()).collect(),
        )),
        (None, Some(pattern)) => Some(PathMatch::Pattern(parse_pattern(pattern)?)),
        (None, None) => None,
    };
    let app = match &input.app_id {
        Some(app) if app.trim().is_empty() || app.len() > MAX_NAME_BYTES => {
            return refuse(format!("appId must be 1 to {MAX_NAME_BYTES} bytes."));
        }
        app => app.as_ref().map(|a| a.trim().to_owned()),
    };
    let operation = match &input.operation {
        None => None,
        Some(op) => {
            if op.is_empty()
                || op.len() > MAX_NAME_BYTES
                || !op.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return refuse(format!(
                    "operation '{op}' is not an operation name (such as syncWindowsAutopilotSettings)."
                ));
            }
            if let Some(known) = known_operation
                && !known(op)
            {
                return refuse(format!(
                    "operation '{op}' is not one dmsync serves; the operation ids are those of /_dmsync/openapi documents."
                ));
            }
            Some(op.clone())
        }
    };
    Ok(Matcher { method, path, tenant: input.tenant_id, app, operation })
}

/// A segment without the `microsoft.graph.` prefix of a bound action, which the request's path
/// has already lost to canonicalisation (`/microsoft.graph.sync` is routed as `/sync`).
fn without_namespace(segment: &str) -> &str {
    const NAMESPACE: &str = "microsoft.graph.";
    match segment.get(..NAMESPACE.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(NAMESPACE) && segment.len() > NAMESPACE.len() => {
            &segment[NAMESPACE.len()..]
        }
        _ => segment,
    }
}

/// The non-empty segments of a rule's path, checked: a path starts with `/`, has no query and
/// is bounded in length and segments.
fn segments_of<'a>(path: &'a str, field: &str) -> Result<Vec<&'a str>, RuleRefused> {
    if !path.starts_with('/') {
        return refuse(format!("{field} must start with '/', as in /beta/deviceManagement/windowsAutopilotSettings."));
    }
    if path.len() > MAX_PATH_BYTES || path.contains(['?', '#']) || path.chars().any(char::is_control) {
        return refuse(format!("{field} must be a path of at most {MAX_PATH_BYTES} bytes, without a query."));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() > MAX_SEGMENTS {
        return refuse(format!("{field} has more than {MAX_SEGMENTS} segments."));
    }
    Ok(segments)
}

fn parse_pattern(pattern: &str) -> Result<Vec<PatternSegment>, RuleRefused> {
    segments_of(pattern, "pathPattern")?
        .into_iter()
        .map(|segment| match segment {
            "*" => Ok(PatternSegment::One),
            "**" => Ok(PatternSegment::Many),
            s if s.contains('*') => refuse(format!(
                "pathPattern segment '{s}': '*' stands for a whole segment and '**' for any number of them; \
                 a '*' inside a segment is not supported (and there are no regular expressions)."
            )),
            // Graph's segments never hold these; a pattern that does was written as a regex.
            s if s.contains(['(', ')', '[', ']', '{', '}', '+', '|', '^', '\\']) => refuse(format!(
                "pathPattern segment '{s}' looks like a regular expression; pathPattern is a glob \
                 ('*' for one segment, '**' for any number), and regular expressions are not supported."
            )),
            s => Ok(PatternSegment::Literal(without_namespace(s).to_owned())),
        })
        .collect()
}

/// Whether `path`'s segments match the pattern, ignoring case. Dynamic programming over the
/// segments, so the time is bounded by their product whatever the pattern: nothing backtracks.
fn pattern_matches(pattern: &[PatternSegment], path: &[&str]) -> bool {
    // reachable[j]: the pattern so far can consume exactly the first j segments of the path.
    let mut reachable = vec![false; path.len() + 1];
    reachable[0] = true;
    for segment in pattern {
        let mut next = vec![false; path.len() + 1];
        match segment {
            PatternSegment::Many => {
                let mut any = false;
                for j in 0..=path.len() {
                    any |= reachable[j];
                    next[j] = any;
                }
            }
            PatternSegment::One => {
                next[1..].copy_from_slice(&reachable[..path.len()]);
            }
            PatternSegment::Literal(literal) => {
                for j in 1..=path.len() {
                    next[j] = reachable[j - 1] && path[j - 1].eq_ignore_ascii_case(literal);
                }
            }
        }
        reachable = next;
    }
    reachable[path.len()]
}

// ---- Matching ----

/// What the gate knows of a request.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The canonical path (after `canonicalize_request`).
    pub path: &'a str,
    pub identity: &'a RequestIdentity,
}

impl Matcher {
    fn matches(&self, request: &RequestFacts<'_>, operation: &mut dyn FnMut() -> Option<&'static str>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != request.method) {
            return false;
        }
        if let Some(tenant) = self.tenant
            && request.identity.tenant != Some(tenant)
        {
            return false;
        }
        if let Some(app) = &self.app
            && !request.identity.app.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(app))
        {
            return false;
        }
        if let Some(path) = &self.path {
            let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
            let matched = match path {
                PathMatch::Exact(want) => {
                    want.len() == segments.len() && want.iter().zip(&segments).all(|(w, s)| w.eq_ignore_ascii_case(s))
                }
                PathMatch::Pattern(pattern) => {
                    segments.len() <= 4 * MAX_SEGMENTS && pattern_matches(pattern, &segments)
                }
            };
            if !matched {
                return false;
            }
        }
        if let Some(want) = &self.operation
            && operation() != Some(want.as_str())
        {
            return false;
        }
        true
    }
}

impl Rule {
    /// Whether this match fires, counting it: `times` goes down, the PRNG draws.
    fn fire(&mut self) -> bool {
        match &mut self.how_often {
            HowOften::Always => true,
            HowOften::Times(0) => false,
            HowOften::Times(n) => {
                *n -= 1;
                true
            }
            HowOften::Probability { probability, rng } => rng.next_unit() < *probability,
        }
    }

    fn exhausted(&self) -> bool {
        matches!(self.how_often, HowOften::Times(0))
    }
}

/// A rule that fired: which, and what it does.
#[derive(Clone, Debug)]
pub struct Firing {
    pub id: FaultId,
    pub effect: HttpEffect,
}

/// A rule as the admin API lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    id: FaultId,
    /// The rule as given, but with `times` counting what is left of it.
    #[serde(flatten)]
    input: RuleInput,
    /// How many requests or job runs it has acted on.
    fired: u64,
}

struct Held {
    rule: Rule,
    fired: u64,
}

/// The rules of this process.
#[derive(Default)]
pub struct FaultRules {
    rules: Mutex<Vec<Held>>,
    /// Whether any rule answers requests, so that a server without one takes no lock per request.
    any_http: AtomicBool,
    /// The Graph routes, to find a request's operation name; set once the router is built.
    routes: OnceLock<Arc<RouteTable>>,
}

impl FaultRules {
    fn lock(&self) -> MutexGuard<'_, Vec<Held>> {
        // A panic while holding the lock leaves the rules consistent (each step is one edit).
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refresh_flag(&self, rules: &[Held]) {
        self.any_http.store(rules.iter().any(|h| matches!(h.rule.effect, Effect::Http(_))), Ordering::Release);
    }

    /// Tells the rules which routes exist, for `operation` matches and checks.
    pub fn set_routes(&self, routes: Arc<RouteTable>) {
        let _ = self.routes.set(routes);
    }

    fn known_operation(&self) -> Option<impl Fn(&str) -> bool + '_> {
        self.routes.get().map(|routes| move |op: &str| routes.has_operation(op))
    }

    /// Validates and adds a rule; its view is what the admin API answers.
    pub fn add(&self, input: RuleInput) -> Result<RuleView, RuleRefused> {
        let known = self.known_operation();
        let rule = validate(input, known.as_ref().map(|k| k as &dyn Fn(&str) -> bool))?;
        self.install(rule)
    }

    /// Adds an already validated rule (from `--faults`), checking its operation now that the
    /// routes are known.
    pub fn install(&self, rule: Rule) -> Result<RuleView, RuleRefused> {
        if let (Some(op), Some(known)) = (&rule.matcher.operation, self.known_operation())
            && !known(op)
        {
            return refuse(format!("operation '{op}' is not one dmsync serves."));
        }
        let mut rules = self.lock();
        if rules.len() >= MAX_RULES {
            return refuse(format!("There are already {MAX_RULES} rules; delete some first."));
        }
        let held = Held { rule, fired: 0 };
        let view = held.view();
        rules.push(held);
        self.refresh_flag(&rules);
        Ok(view)
    }

    pub fn list(&self) -> Vec<RuleView> {
        self.lock().iter().map(Held::view).collect()
    }

    /// Removes one rule; false when there is none with that id.
    pub fn remove(&self, id: FaultId) -> bool {
        let mut rules = self.lock();
        let before = rules.len();
        rules.retain(|h| h.rule.id != id);
        self.refresh_flag(&rules);
        rules.len() != before
    }

    pub fn clear(&self) {
        let mut rules = self.lock();
        rules.clear();
        self.refresh_flag(&rules);
    }

    /// The first rule, in the order they were added, that matches the request and fires.
    pub fn take_http(&self, request: &RequestFacts<'_>) -> Option<Firing> {
        if !self.any_http.load(Ordering::Acquire) {
            return None;
        }
        let routes = self.routes.get();
        let mut operation_cache: Option<Option<&'static str>> = None;
        let mut operation = || {
            *operation_cache.get_or_insert_with(|| routes.and_then(|r| r.operation_id(request.method, request.path)))
        };
        let mut rules = self.lock();
        for held in rules.iter_mut() {
            let Effect::Http(effect) = &held.rule.effect else { continue };
            if held.rule.exhausted() || !held.rule.matcher.matches(request, &mut operation) {
                continue;
            }
            let effect = effect.clone();
            if held.rule.fire() {
                held.fired += 1;
                return Some(Firing { id: held.rule.id, effect });
            }
        }
        None
    }

    /// Consumes a domain fault of `kind` for `tenant` whose effect `accept` takes (an import
    /// fault names its serial): the first such rule that fires, counting the job run.
    pub fn take_domain(
        &self,
        tenant: TenantId,
        kind: DomainKind,
        accept: impl Fn(&DomainEffect) -> bool,
    ) -> Option<(FaultId, DomainEffect)> {
        let mut rules = self.lock();
        for held in rules.iter_mut() {
            let Effect::Domain(effect) = &held.rule.effect else { continue };
            if effect.kind() != kind
                || held.rule.exhausted()
                || held.rule.matcher.tenant.is_some_and(|t| t != tenant)
                || !accept(effect)
            {
                continue;
            }
            let effect = effect.clone();
            if held.rule.fire() {
                held.fired += 1;
                return Some((held.rule.id, effect));
            }
        }
        None
    }
}

impl FaultRules {
    /// The import faults that apply to `tenant`'s import job now, one per serial: a rule with
    /// a probability draws here. Each is counted only once the store reports that it met a
    /// pending import of its serial ([`Self::confirm_import_faults`]), so that an import of
    /// other serials leaves the rule waiting for its own.
    pub fn import_fault_candidates(&self, tenant: TenantId) -> Vec<(FaultId, ForcedImportError)> {
        let mut rules = self.lock();
        let mut candidates: Vec<(FaultId, ForcedImportError)> = Vec::new();
        for held in rules.iter_mut() {
            let Effect::Domain(DomainEffect::ImportFailed { serial_number, device_error_code }) = &held.rule.effect
            else {
                continue;
            };
            if held.rule.exhausted()
                || held.rule.matcher.tenant.is_some_and(|t| t != tenant)
                || candidates.iter().any(|(_, c)| c.serial_number.eq_ignore_ascii_case(serial_number))
            {
                continue;
            }
            let (serial_number, code) = (serial_number.clone(), *device_error_code as i32);
            let draws = match &mut held.rule.how_often {
                HowOften::Probability { probability, rng } => rng.next_unit() < *probability,
                _ => true,
            };
            if draws {
                candidates.push((held.rule.id, ForcedImportError { serial_number, code }));
            }
        }
        candidates
    }

    /// Counts the import faults whose serials the store reports it forced.
    pub fn confirm_import_faults(&self, candidates: &[(FaultId, ForcedImportError)], forced: &[String]) {
        let mut rules = self.lock();
        for (id, error) in candidates {
            if !forced.contains(&error.serial_number) {
                continue;
            }
            if let Some(held) = rules.iter_mut().find(|h| h.rule.id == *id) {
                if let HowOften::Times(n) = &mut held.rule.how_often {
                    *n = n.saturating_sub(1);
                }
                held.fired += 1;
            }
        }
    }
}

/// The profile assignment faults that apply to one pass of the engine, as
/// [`FaultRules::assignment_fault_candidates`] drew them.
#[derive(Debug, Default)]
pub struct AssignmentFaults {
    /// The rules, each with the serial it names (`None`: every device).
    candidates: Vec<(FaultId, Option<String>)>,
}

impl AssignmentFaults {
    /// What the store is to fail.
    pub fn forced(&self) -> ForcedAssignmentFailures {
        if self.candidates.is_empty() {
            ForcedAssignmentFailures::Nothing
        } else if self.candidates.iter().any(|(_, serial)| serial.is_none()) {
            ForcedAssignmentFailures::Every
        } else {
            ForcedAssignmentFailures::Serials(self.candidates.iter().filter_map(|(_, s)| s.clone()).collect())
        }
    }
}

impl FaultRules {
    /// The profile assignment faults that apply to `tenant`'s next pass: a rule with a
    /// probability draws here. A rule without a serial fails every device the pass would
    /// assign, so when one draws it alone applies (the first added), and the rules that name a
    /// serial are not drawn and keep waiting; otherwise the first rule drawn for each serial
    /// applies. Each is counted only once the store reports that it failed a device
    /// ([`Self::confirm_assignment_faults`]), so that a pass that assigns nothing, or not that
    /// serial, leaves the rule waiting.
    pub fn assignment_fault_candidates(&self, tenant: TenantId) -> AssignmentFaults {
        let mut rules = self.lock();
        let applies = |held: &Held| !held.rule.exhausted() && held.rule.matcher.tenant.is_none_or(|t| t == tenant);
        let draws = |held: &mut Held| match &mut held.rule.how_often {
            HowOften::Probability { probability, rng } => rng.next_unit() < *probability,
            _ => true,
        };
        for held in rules.iter_mut() {
            let Effect::Domain(DomainEffect::ProfileAssignmentFailed { serial_number: None }) = &held.rule.effect
            else {
                continue;
            };
            if applies(held) && draws(held) {
                return AssignmentFaults { candidates: vec![(held.rule.id, None)] };
            }
        }
        let mut candidates: Vec<(FaultId, Option<String>)> = Vec::new();
        for held in rules.iter_mut() {
            let Effect::Domain(DomainEffect::ProfileAssignmentFailed { serial_number: Some(serial) }) =
                &held.rule.effect
            else {
                continue;
            };
            let serial = serial.clone();
            if !applies(held) || candidates.iter().any(|(_, s)| s.as_deref() == Some(serial.as_str())) {
                continue;
            }
            if draws(held) {
                candidates.push((held.rule.id, Some(serial)));
            }
        }
        AssignmentFaults { candidates }
    }

    /// Counts the profile assignment faults whose devices the pass failed: a rule without a
    /// serial when it failed any, a rule with one when it failed that serial's device.
    pub fn confirm_assignment_faults(&self, faults: &AssignmentFaults, stats: &ProfileAssignmentStats) {
        let mut rules = self.lock();
        for (id, serial) in &faults.candidates {
            let met = match serial {
                None => stats.failed > 0,
                Some(serial) => stats.failed_serials.contains(serial),
            };
            if !met {
                continue;
            }
            if let Some(held) = rules.iter_mut().find(|h| h.rule.id == *id) {
                if let HowOften::Times(n) = &mut held.rule.how_often {
                    *n = n.saturating_sub(1);
                }
                held.fired += 1;
            }
        }
    }
}

impl Held {
    fn view(&self) -> RuleView {
        let mut input = self.rule.input.clone();
        if let HowOften::Times(left) = self.rule.how_often {
            input.times = Some(u64::from(left));
        }
        RuleView { id: self.rule.id, input, fired: self.fired }
    }
}

// ---- Acting on a request ----

/// How long a dropped request's task waits for its connection to close before giving up on it.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// Does what a fired rule says to the request: wait, then answer with the error, drop the
/// connection, or let the request through to `pass`, what runs the route. Every answer carries
/// [`FAULT_HEADER`].
pub async fn inject<F, Passed>(state: &AppState, firing: Firing, request: Request, pass: F) -> Response
where
    F: FnOnce(Request) -> Passed,
    Passed: Future<Output = Response>,
{
    tracing::debug!(fault.id = %firing.id, path = %request.uri().path(), "a fault rule fired");
    if let Some(delay) = firing.effect.delay {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = state.shutdown().cancelled() => {}
        }
    }
    let mut response = match firing.effect.outcome {
        HttpOutcome::PassThrough => pass(request).await,
        HttpOutcome::Status(status) => ApiError::InjectedFault(status).into_response(),
        HttpOutcome::Drop => {
            if request.extensions().get::<Connection>().is_some_and(Connection::drop_now) {
                // The connection's task drops this future with the connection; the wait is
                // bounded in case it does not (a stream of HTTP/2 runs in a task of its own).
                tokio::time::sleep(DROP_GRACE).await;
            }
            // Without a connection of its own (a request inside `$batch`), the answer's body
            // fails, which aborts whatever carries it.
            let failing =
                futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("dropped")) });
            Response::new(Body::from_stream(failing))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&firing.id.to_string()) {
        response.headers_mut().insert(FAULT_HEADER.clone(), value);
    }
    response
}

// ---- The file of `serve --faults` ----

/// `serve --faults FILE`: an array of rules, or an object `{"rules": [...]}`, each checked as
/// the admin API checks it; YAML when the name ends in `.yaml` or `.yml` (as seed files are
/// told apart), JSON otherwise. Read once, when the flags are parsed. Both parsers bound the
/// nesting depth, and the YAML parser's default budget also refuses alias expansion bombs.
pub fn load_file(path: &str) -> Result<Vec<Rule>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    if bytes.len() > 1024 * 1024 {
        return Err(format!("{path} is larger than 1 MiB"));
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum FaultFile {
        List(Vec<serde_json::Value>),
        Object { rules: Vec<serde_json::Value> },
    }
    let extension = std::path::Path::new(path).extension().and_then(|e| e.to_str()).unwrap_or("");
    let file: FaultFile = if extension.eq_ignore_ascii_case("yaml") || extension.eq_ignore_ascii_case("yml") {
        let text = std::str::from_utf8(&bytes).map_err(|_| format!("{path} is not UTF-8"))?;
        serde_saphyr::from_str(text)
            .map_err(|e| format!("{path} is not a YAML list of fault rules (nor rules: [...]): {e}"))?
    } else {
        dmsync_graph::bounded::from_slice(&bytes)
            .map_err(|e| format!("{path} is not a JSON array of fault rules (nor {{\"rules\": [...]}}): {e:?}"))?
    };
    let (FaultFile::List(values) | FaultFile::Object { rules: values }) = file;
    if values.len() > MAX_RULES {
        return Err(format!("{path} has more than {MAX_RULES} rules"));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let input: RuleInput = serde_json::from_value(value).map_err(|e| format!("{path}, rule {}: {e}", i + 1))?;
            validate(input, None).map_err(|e| format!("{path}, rule {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> Vec<PatternSegment> {
        parse_pattern(p).unwrap()
    }

    fn matches(p: &str, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        pattern_matches(&pattern(p), &segments)
    }

    #[test]
    fn globs_match_whole_segments_ignoring_case() {
        assert!(matches("/beta/deviceManagement/*", "/beta/devicemanagement/windowsAutopilotSettings"));
        assert!(!matches("/beta/deviceManagement/*", "/beta/deviceManagement/a/b"));
        assert!(matches("/beta/**", "/beta"));
        assert!(matches("/beta/**/sync", "/beta/deviceManagement/windowsAutopilotSettings/sync"));
        assert!(matches("/**/sync", "/beta/sync"));
        assert!(!matches("/**/sync", "/beta/sync/x"));
        assert!(matches("/*/deviceManagement/**", "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/x"));
        assert!(matches("/beta/**/Microsoft.Graph.sync", "/beta/deviceManagement/windowsAutopilotSettings/sync"));
        assert!(parse_pattern("/beta/device*").is_err());
        assert!(parse_pattern("beta").is_err());
    }

    #[test]
    fn many_double_stars_stay_cheap() {
        let p = format!("{}/x", "/**".repeat(60));
        let path = "/a".repeat(200);
        // Exponential backtracking would not finish; the table does at once.
        assert!(!matches(&p, &path));
    }

    #[test]
    fn the_seeded_prng_reproduces() {
        let draws = |seed| {
            let mut rng = SplitMix64(seed);
            (0..8).map(|_| rng.next_unit() < 0.5).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    fn assignment_rule(serial: Option<&str>, times: u64) -> RuleInput {
        let effect = EffectInput {
            domain: Some(DomainKind::ProfileAssignmentFailed),
            serial_number: serial.map(str::to_owned),
            ..EffectInput::default()
        };
        RuleInput { matcher: MatchInput::default(), effect, times: Some(times), probability: None, seed: None }
    }

    #[test]
    fn an_assignment_fault_without_a_serial_applies_alone_and_counts_only_what_failed() {
        let rules = FaultRules::default();
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let serial = rules.add(assignment_rule(Some("S-1"), 1)).unwrap();
        let faults = rules.assignment_fault_candidates(tenant);
        assert_eq!(faults.forced(), ForcedAssignmentFailures::Serials(vec!["S-1".into()]));
        // A pass that failed another serial's device, or none, leaves the rule waiting.
        let other = ProfileAssignmentStats { failed: 1, failed_serials: vec!["S-2".into()], ..Default::default() };
        rules.confirm_assignment_faults(&faults, &other);
        assert_eq!(rules.list()[0].fired, 0);

        rules.add(assignment_rule(None, 1)).unwrap();
        let faults = rules.assignment_fault_candidates(tenant);
        assert_eq!(faults.forced(), ForcedAssignmentFailures::Every);
        rules.confirm_assignment_faults(&faults, &ProfileAssignmentStats { failed: 3, ..Default::default() });
        let listed = rules.list();
        assert_eq!((listed[0].id, listed[0].fired), (serial.id, 0), "the serial's rule did not apply");
        assert_eq!((listed[1].fired, listed[1].input.times), (1, Some(0)), "one pass, one of its times");
        let spent = rules.assignment_fault_candidates(tenant);
        assert_eq!(spent.forced(), ForcedAssignmentFailures::Serials(vec!["S-1".into()]), "the spent rule is skipped");
    }

    #[test]
    fn an_assignment_fault_is_refused_with_another_kinds_fields() {
        let mut code = assignment_rule(Some("S-1"), 1);
        code.effect.device_error_code = Some(808);
        assert!(validate(code, None).unwrap_err().0.contains("takes no deviceErrorCode"));
        let blank = assignment_rule(Some(" "), 1);
        assert!(validate(blank, None).unwrap_err().0.contains("serialNumber must be"));
        let rule = validate(assignment_rule(Some(" S-1 "), 1), None).unwrap();
        let trimmed = DomainEffect::ProfileAssignmentFailed { serial_number: Some("S-1".into()) };
        assert_eq!(rule.effect, Effect::Domain(trimmed));
    }

    #[test]
    fn a_faults_file_is_read_and_checked_rule_by_rule() {
        let dir = std::env::temp_dir().join(format!("dmsync-faults-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, r#"[{"match":{"pathPattern":"/beta/**"},"effect":{"status":503},"times":2}]"#).unwrap();
        let rules = load_file(good.to_str().unwrap()).unwrap();
        assert_eq!(rules.len(), 1);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"rules":[{"effect":{"delayMs":1}},{"effect":{"status":302}}]}"#).unwrap();
        let refused = load_file(bad.to_str().unwrap()).unwrap_err();
        assert!(refused.contains("rule 2") && refused.contains("302"), "{refused}");
        let yaml = dir.join("rules.yaml");
        std::fs::write(
            &yaml,
            "rules:\n  - match: {method: GET, pathPattern: /beta/**}\n    effect:\n      status: 503\n      retryAfter: 2\n    times: 1\n",
        )
        .unwrap();
        assert_eq!(load_file(yaml.to_str().unwrap()).unwrap().len(), 1);
        // The example in docs/TESTING-WITH-DMSYNC.md loads as written.
        let guide = include_str!("../../../../docs/TESTING-WITH-DMSYNC.md");
        let example = guide
            .split("```yaml\n")
            .find(|block| block.starts_with("# faults.yaml"))
            .and_then(|block| block.split("```").next())
            .unwrap();
        let documented = dir.join("faults.yaml");
        std::fs::write(&documented, example).unwrap();
        assert_eq!(load_file(documented.to_str().unwrap()).unwrap().len(), 2);
        // A billion-node alias expansion beside an empty list: refused by the parser's budget
        // rather than expanded.
        let bomb = dir.join("bomb.yml");
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in
            ["b", "c", "d", "e", "f", "g", "h", "i"].into_iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let aliases = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        }
        text.push_str("rules: []\n");
        std::fs::write(&bomb, text).unwrap();
        assert!(load_file(bomb.to_str().unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
