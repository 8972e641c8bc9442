//! The one error type of the Graph surface, and the one table that maps each variant to an
//! HTTP status, a Graph `code` and a message. The body itself (with `innerError`, the request
//! ids and, for Intune errors, the JSON-in-message) is built in one place,
//! [`crate::http::context`], because only it knows the request's ids and URL.

use std::borrow::Cow;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dmsync_core::StoreError;
use dmsync_core::permissions::Denial;

/// Why a bearer token was refused. Each has Graph's own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    /// Not in JWS compact form (no dots).
    NotAJwt,
    /// Has dots but the parts do not decode.
    Unparseable,
    Expired,
    NotYetValid,
    InvalidAudience,
    /// Bad signature, unknown key, wrong algorithm, wrong issuer, unknown tenant.
    ValidationFailure,
}

impl AuthFailure {
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => "Access token is empty.",
            AuthFailure::NotAJwt => {
                "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'."
            }
            AuthFailure::Unparseable => "CompactToken parsing failed with error code: 80049217",
            AuthFailure::Expired => "Lifetime validation failed, the token is expired.",
            AuthFailure::NotYetValid => "Access token has expired or is not yet valid.",
            AuthFailure::InvalidAudience => "Access token validation failure. Invalid audience.",
            AuthFailure::ValidationFailure => "Access token validation failure.",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unknown segment {0}")]
    UnknownSegment(String),
    #[error("invalid version {0}")]
    InvalidVersion(String),
    #[error("malformed JSON body")]
    MalformedJson,
    #[error("unauthenticated: {0:?}")]
    Unauthenticated(AuthFailure),
    #[error("admin API: missing or wrong admin token")]
    AdminUnauthorized,
    /// An HTTP/1.1 request without `Host`, with several, or with one that is not a host and port
    /// (RFC 9112, section 3.2).
    #[error("bad Host header: {0}")]
    BadHost(String),
    /// An absolute-form request target whose authority is not the `Host` the request names.
    #[error("request target names {target}, Host names {host}")]
    HostMismatch { target: String, host: String },
    /// The admin API addressed by a name it does not answer to (a DNS rebinding page), or called
    /// from a web page of another origin. `header` is `Host` or `Origin`.
    #[error("admin API refused {header}: {value}")]
    AdminHostRefused { header: &'static str, value: String },
    #[error("forbidden: {0:?}")]
    Forbidden(Denial),
    /// An Intune validation error: 400 with the JSON-in-message body.
    #[error("intune validation: {message}")]
    IntuneBadRequest { message: String, phrase: String },
    #[error("not found")]
    NotFound,
    /// A directory object (Entra ID) that does not exist, in Entra's own shape; the id as the
    /// client wrote it.
    #[error("directory object not found: {0}")]
    DirectoryObjectNotFound(String),
    /// A directory query Entra refuses, with Entra's own code (`Request_UnsupportedQuery`, …).
    #[error("directory query refused: {message}")]
    /// The message is made for the request where it must say what was wrong (a missing
    /// property, a membership rule and why it cannot be evaluated).
    DirectoryBadRequest { code: &'static str, message: Cow<'static, str> },
    /// A 404 outside Graph (the admin API), with a message that says what is missing.
    #[error("not found: {0}")]
    NotFoundPlain(String),
    #[error("method {0} not allowed")]
    MethodNotAllowed(Method),
    #[error("sync already in progress")]
    SyncInProgress,
    #[error("exchange connector sync already running")]
    ConnectorSyncRunning,
    /// Throttled by the control plane's buckets (`control::throttling`), Graph's 429 with
    /// `Retry-After`; not the Autopilot sync's cooldown, which is `SyncCoolingDown`.
    #[error("throttled for {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    #[error("sync cooling down")]
    SyncCoolingDown { remaining_seconds: u64, send_retry_after: bool },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The server is serving as many connections as it is allowed; this one is answered and
    /// closed.
    #[error("too many connections")]
    TooManyConnections,
    /// A plain-HTTP request sent to a port that serves HTTPS; answered in plain HTTP, then the
    /// connection is closed.
    #[error("plain HTTP on the TLS port")]
    PlainHttpOnTlsPort,
    /// The database could not be had in time; the client is told when to retry.
    #[error("database busy: {0}")]
    DatabaseBusy(String),
    /// Registration rows refused by the admin API; nothing was written.
    #[error("{} registration rows refused", .0.len())]
    RegistrationsRefused(Vec<dmsync_core::autopilot::RegistrationRejection>),
    /// A request in a `$batch` that was not run because a request it depends on failed.
    #[error("failed dependency")]
    FailedDependency,
    #[error("internal error: {0}")]
    Internal(String),
    /// An error answer a fault rule asked for (`control::faults`), in Graph's or Intune's shape.
    #[error("injected fault: HTTP {}", .0.status)]
    InjectedFault(crate::control::faults::InjectedStatus),
    /// An error response that did not come from an `ApiError` (a framework rejection, a
    /// layer's 408 or 431): only its status is known. See [`ApiError::for_status`].
    #[error("HTTP {0}")]
    Status(StatusCode),
}

impl ApiError {
    /// Entra's `Request_BadRequest` with a message made for the request.
    pub fn directory_bad_request(message: impl Into<String>) -> ApiError {
        ApiError::DirectoryBadRequest { code: "Request_BadRequest", message: Cow::Owned(message.into()) }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::AlreadyExists(what) => ApiError::Conflict(what),
            StoreError::Database(text) => ApiError::Internal(text),
            StoreError::Busy(text) => ApiError::DatabaseBusy(text),
            StoreError::Unstorable(text) => {
                tracing::debug!(error = %text, "a request carried text the database cannot store");
                ApiError::BadRequest("The request contains a character that cannot be stored (U+0000).".into())
            }
        }
    }
}

/// How the `message` of an error body is made.
#[derive(Debug, Clone)]
pub enum MessageSpec {
    /// Graph gateway style: the text as is.
    Plain(String),
    /// Intune style: a JSON document in the string. `lead` is followed by the operation id,
    /// activity id and URL when the body is rendered.
    Intune { lead: String, phrase: String, retry_after: Option<u64> },
}

/// Everything the renderer needs; travels in the response's extensions.
#[derive(Debug, Clone)]
pub struct ErrorSpec {
    pub code: String,
    pub message: MessageSpec,
    pub details: Vec<dmsync_graph::ErrorDetail>,
}

/// Graph's challenge on 401. No `claims=`: it would make kiota clients retry once (CAE).
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

fn intune(lead: impl Into<String>) -> MessageSpec {
    MessageSpec::Intune { lead: lead.into(), phrase: String::new(), retry_after: None }
}

/// What a 503 for a busy database asks the client to wait: long enough for a bounded write
/// (an upload's commit) to finish, short enough that SDK retry policies keep trying.
pub const DATABASE_BUSY_RETRY_AFTER_SECONDS: u64 = 5;

const INTUNE_LEAD: &str = "An error has occurred";

impl ApiError {
    /// The error for a bare status, so that a response rendered without an `ApiError` gets its
    /// code and message from the same table as every other error.
    pub fn for_status(status: StatusCode) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            status => ApiError::Status(status),
        }
    }

    /// What the renderer needs to write this error's body.
    pub fn error_spec(&self) -> ErrorSpec {
        let (_, code, message) = self.spec();
        ErrorSpec { code: self.code_or(code), message, details: Vec::new() }
    }

    /// The table's code, unless the error names its own (a fault rule's `code`).
    fn code_or(&self, table_code: &'static str) -> String {
        match self {
            ApiError::InjectedFault(fault) => fault.code.clone().unwrap_or_else(|| table_code.to_owned()),
            _ => table_code.to_owned(),
        }
    }

    /// The table: status, code and message of every variant.
    fn spec(&self) -> (StatusCode, &'static str, MessageSpec) {
        use ApiError::*;
        match self {
            BadRequest(m) => (StatusCode::BAD_REQUEST, "BadRequest", MessageSpec::Plain(m.clone())),
            UnknownSegment(s) => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Plain(format!("Resource not found for the segment '{s}'.")),
            ),
            InvalidVersion(v) => {
                (StatusCode::BAD_REQUEST, "BadRequest", MessageSpec::Plain(format!("Invalid version: {v}")))
            }
            MalformedJson => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Plain(
                    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
                        .into(),
                ),
            ),
            Unauthenticated(f) => {
                (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", MessageSpec::Plain(f.message().into()))
            }
            AdminUnauthorized => (
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                MessageSpec::Plain("The dmsync admin token is missing or wrong.".into()),
            ),
            BadHost(why) => (StatusCode::BAD_REQUEST, "BadRequest", MessageSpec::Plain(why.clone())),
            HostMismatch { target, host } => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Plain(format!(
                    "The request target names the host '{target}', but the Host header names '{host}'."
                )),
            ),
            AdminHostRefused { header, value } => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                MessageSpec::Plain(format!(
                    "The dmsync admin API does not answer to the {header} '{value}'. It answers to loopback names, the listen address, the host of --public-url, the names given with --tls-name and those given with --admin-allow-host."
                )),
            ),
            Forbidden(denial) => {
                let lead = match denial {
                    Denial::MissingPermission { accepted } => format!(
                        "Application is not authorized to perform this operation. Application must have one of the following scopes: {}",
                        accepted.join(", ")
                    ),
                    Denial::KindNotSupported(_) => "Application is not authorized to perform this operation".into(),
                    Denial::PersonalAccount => {
                        "Personal Microsoft accounts are not supported for this operation".into()
                    }
                };
                (StatusCode::FORBIDDEN, "Forbidden", intune(lead))
            }
            IntuneBadRequest { message, phrase } => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Intune { lead: message.clone(), phrase: phrase.clone(), retry_after: None },
            ),
            NotFound => (StatusCode::NOT_FOUND, "ResourceNotFound", intune(INTUNE_LEAD)),
            DirectoryObjectNotFound(id) => (
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                MessageSpec::Plain(format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                )),
            ),
            DirectoryBadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, code, MessageSpec::Plain(message.clone().into_owned()))
            }
            NotFoundPlain(m) => (StatusCode::NOT_FOUND, "NotFound", MessageSpec::Plain(m.clone())),
            MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                MessageSpec::Plain(format!("The requested resource does not support http method '{m}'.")),
            ),
            SyncInProgress => (
                StatusCode::CONFLICT,
                "Conflict",
                intune("A sync of Windows Autopilot devices is already in progress"),
            ),
            ConnectorSyncRunning => (
                StatusCode::CONFLICT,
                "Conflict",
                intune("A sync of this Exchange connector is already in progress"),
            ),
            SyncCoolingDown { remaining_seconds, send_retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                MessageSpec::Intune {
                    lead: "Windows Autopilot devices were synced less than 10 minutes ago".into(),
                    phrase: String::new(),
                    retry_after: send_retry_after.then_some(*remaining_seconds),
                },
            ),
            Throttled { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", MessageSpec::Plain("Please retry again later.".into()))
            }
            FailedDependency => (
                StatusCode::FAILED_DEPENDENCY,
                "FailedDependency",
                MessageSpec::Plain("The request was not run because a request it depends on in the batch failed.".into()),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                MessageSpec::Plain("The request body is larger than the server accepts.".into()),
            ),
            Conflict(what) => (StatusCode::CONFLICT, "Conflict", MessageSpec::Plain(format!("Already exists: {what}"))),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                MessageSpec::Plain("The service is temporarily unavailable.".into()),
            ),
            TooManyConnections => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                MessageSpec::Plain("The server is serving as many connections as it allows. Retry shortly.".into()),
            ),
            PlainHttpOnTlsPort => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Plain(
                    "This port serves HTTPS (dmsync serve --tls): send the request to https:// instead of http://."
                        .into(),
                ),
            ),
            DatabaseBusy(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                MessageSpec::Plain(format!(
                    "The service is busy. Retry the request after {DATABASE_BUSY_RETRY_AFTER_SECONDS} seconds."
                )),
            ),
            RegistrationsRefused(rows) => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                MessageSpec::Plain(format!(
                    "{} registration row(s) were refused; nothing was written. See details.",
                    rows.len()
                )),
            ),
            // The internal text is logged by the renderer and never sent.
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", intune(INTUNE_LEAD)),
            InjectedFault(fault) => {
                // By default the code and message Graph gives for the status.
                let (code, text) = match fault.status {
                    StatusCode::BAD_REQUEST => ("BadRequest", "The request is not valid."),
                    StatusCode::UNAUTHORIZED => ("Unauthorized", "The request is not authorized."),
                    StatusCode::FORBIDDEN => ("Forbidden", "The request is forbidden."),
                    StatusCode::NOT_FOUND => ("ResourceNotFound", "The requested resource was not found."),
                    StatusCode::CONFLICT => ("Conflict", "The request conflicts with the resource's state."),
                    StatusCode::TOO_MANY_REQUESTS => ("TooManyRequests", "Too many requests."),
                    StatusCode::BAD_GATEWAY => ("BadGateway", "The service received a bad answer from upstream."),
                    StatusCode::SERVICE_UNAVAILABLE => ("ServiceUnavailable", "The service is temporarily unavailable."),
                    StatusCode::GATEWAY_TIMEOUT => ("GatewayTimeout", "The service did not answer in time."),
                    s if s.is_server_error() => ("InternalServerError", "An internal server error occurred."),
                    _ => ("BadRequest", "The request is not valid."),
                };
                let text = fault.message.clone().unwrap_or_else(|| text.to_owned());
                let message = match fault.shape {
                    crate::control::faults::BodyShape::Graph => MessageSpec::Plain(text),
                    crate::control::faults::BodyShape::Intune => {
                        MessageSpec::Intune { lead: text, phrase: String::new(), retry_after: fault.retry_after }
                    }
                };
                (fault.status, code, message)
            }
            Status(status) => {
                let (code, text) = match *status {
                    StatusCode::METHOD_NOT_ALLOWED => {
                        ("MethodNotAllowed", "The requested resource does not support this http method.")
                    }
                    StatusCode::NOT_FOUND => ("NotFound", "The requested resource was not found."),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => ("BadRequest", "The request's content type is not supported."),
                    StatusCode::REQUEST_TIMEOUT => ("RequestTimeout", "The request timed out."),
                    StatusCode::URI_TOO_LONG => {
                        ("RequestUriTooLong", "The request URI is longer than the server accepts.")
                    }
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                        ("RequestHeaderFieldsTooLarge", "The request's headers are larger than the server accepts.")
                    }
                    s if s.is_server_error() => ("InternalServerError", "An internal server error occurred."),
                    _ => ("BadRequest", "The request is not valid."),
                };
                (*status, code, MessageSpec::Plain(text.into()))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.spec();
        if let ApiError::Internal(text) = &self {
            // Logged once, here, where it is turned into a response.
            tracing::error!(error = %text, "internal error");
        }
        if let ApiError::DatabaseBusy(text) = &self {
            tracing::warn!(error = %text, "database busy; answered 503");
        }
        let mut response = status.into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated(_) | ApiError::AdminUnauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
            }
            ApiError::SyncCoolingDown { remaining_seconds, send_retry_after: true } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*remaining_seconds));
            }
            ApiError::Throttled { retry_after_seconds } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::TooManyConnections => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::DatabaseBusy(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(DATABASE_BUSY_RETRY_AFTER_SECONDS));
            }
            ApiError::InjectedFault(fault) => {
                if let Some(seconds) = fault.retry_after {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
            }
            _ => {}
        }
        let details = match &self {
            ApiError::RegistrationsRefused(rows) => rows
                .iter()
                .map(|r| dmsync_graph::ErrorDetail {
                    code: r.reason.code().to_owned(),
                    message: r.reason.message().to_owned(),
                    target: Some(format!("line {} (serialNumber '{}')", r.line, r.serial_number)),
                })
                .collect(),
            _ => Vec::new(),
        };
        response.extensions_mut().insert(ErrorSpec { code: self.code_or(code), message, details });
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_a_503_with_retry_after() {
        let response = ApiError::from(StoreError::Busy("pool timed out".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], DATABASE_BUSY_RETRY_AFTER_SECONDS.to_string().as_str());
        assert_eq!(response.extensions().get::<ErrorSpec>().unwrap().code, "ServiceUnavailable");
    }

    #[test]
    fn a_bare_status_gets_its_code_from_the_table() {
        assert_eq!(ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE).error_spec().code, "RequestEntityTooLarge");
        assert_eq!(ApiError::for_status(StatusCode::REQUEST_TIMEOUT).error_spec().code, "RequestTimeout");
        assert_eq!(ApiError::for_status(StatusCode::BAD_GATEWAY).error_spec().code, "InternalServerError");
        assert_eq!(ApiError::for_status(StatusCode::IM_A_TEAPOT).error_spec().code, "BadRequest");
    }
}
