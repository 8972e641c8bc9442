//! JSON batching: `POST /{v1.0|beta}/$batch` runs up to twenty Graph requests, each through the
//! same routing, token check, permission check and error rendering as a direct call, and answers
//! with each one's status, headers and body.
//!
//! The requests run one after another in the order given, a request with `dependsOn` after the
//! ones it names (Graph may run independent requests in parallel and answer in any order; one
//! at a time in request order is one of the orders it may choose, and keeps the writer free of
//! a batch's bursts). A request whose dependency did not succeed is not run and answers 424.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dmsync_graph::batch::{BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem, MAX_BATCH_REQUESTS};
use tower::ServiceExt;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::http::context::{RequestContext, render_error};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::routing::{BOTH, Endpoint, GraphRoute, RouteTable, canonicalize_request};
use crate::proxy::TunnelHost;
use crate::serve::Connection;
use crate::state::AppState;

pub fn routes() -> Vec<GraphRoute> {
    vec![GraphRoute::new(
        BOTH,
        "$batch",
        vec![Endpoint::post(
            batch,
            OperationDoc::new("batch", Answer::Document(schema::<BatchResponse>)).body(schema::<BatchRequest>),
        )],
    )]
}

/// What runs a batch's requests: the Graph routes (all but `$batch`, which does not nest)
/// behind the same layers as the server's own router.
#[derive(Clone)]
pub struct Dispatcher {
    router: axum::Router,
    table: Arc<RouteTable>,
}

impl Dispatcher {
    pub fn new(router: axum::Router, table: Arc<RouteTable>) -> Dispatcher {
        Dispatcher { router, table }
    }

    async fn run(&self, request: Request) -> Response {
        let request = canonicalize_request(self.table.clone())(request);
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The headers of the batch request that every request in it carries: the token, and what
/// decides the host absolute links name.
const INHERITED_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::HOST,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// What every request of a batch takes from the batch request: its token, and what decides the
/// origin of absolute links (the `Host` and forwarding headers, the connection's scheme, and the
/// host of the proxy's tunnel).
struct Inherited {
    headers: Vec<(HeaderName, HeaderValue)>,
    connection: Option<Connection>,
    tunnel: Option<TunnelHost>,
}

impl Inherited {
    fn apply(&self, request: &mut Request) {
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(connection) = &self.connection {
            request.extensions_mut().insert(connection.clone());
        }
        if let Some(tunnel) = &self.tunnel {
            request.extensions_mut().insert(tunnel.clone());
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Inherited {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = INHERITED_HEADERS
            .iter()
            .flat_map(|name| parts.headers.get_all(name).iter().map(|value| (name.clone(), value.clone())))
            .collect();
        Ok(Inherited {
            headers,
            connection: parts.extensions.get::<Connection>().map(|c| Connection::in_process(c.scheme().clone())),
            tunnel: parts.extensions.get::<TunnelHost>().cloned(),
        })
    }
}

/// Headers a request in a batch may not set itself: they belong to the batch request, or to
/// the framing of the body dmsync makes.
fn is_reserved(name: &HeaderName) -> bool {
    INHERITED_HEADERS.contains(name)
        || [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION, header::EXPECT].contains(name)
}

/// The response headers a batch repeats inside each answer. The ones that describe the batch
/// response as a whole (its date and request ids) stay on the outer response.
fn is_forwarded(name: &HeaderName) -> bool {
    ![header::CONTENT_LENGTH, header::DATE, header::TRANSFER_ENCODING, header::CONNECTION].contains(name)
        && !["request-id", "client-request-id", "x-ms-ags-diagnostic"].contains(&name.as_str())
}

/// One request of the batch, checked and ready to run.
struct Prepared {
    id: String,
    depends_on: Vec<usize>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn batch(
    Version(version): Version,
    // The batch itself needs a valid token, as Graph's gateway checks one before it reads the
    // batch; each request in it is then checked for its own permission.
    _caller: Caller,
    Extension(dispatcher): Extension<Dispatcher>,
    Extension(ctx): Extension<RequestContext>,
    State(state): State<AppState>,
    inherited: Inherited,
    GraphJson(batch): GraphJson<BatchRequest>,
) -> ApiResult<Response> {
    let prepared = prepare(version, &batch.requests)?;
    let order = run_order(&prepared)?;
    let mut statuses: Vec<Option<StatusCode>> = vec![None; prepared.len()];
    let mut answers: Vec<Option<BatchResponseItem>> = vec![None; prepared.len()];
    for index in order {
        let item = &prepared[index];
        let failed_dependency = item.depends_on.iter().any(|&d| statuses[d].is_none_or(|status| !status.is_success()));
        let response = if failed_dependency {
            // Dated with the Clock like every other error body.
            render_error(&ctx, ApiError::FailedDependency.into_response(), state.now())
        } else {
            let mut request = Request::new(Body::from(item.body.clone()));
            *request.method_mut() = item.method.clone();
            *request.uri_mut() = item.uri.clone();
            *request.headers_mut() = item.headers.clone();
            inherited.apply(&mut request);
            dispatcher.run(request).await
        };
        statuses[index] = Some(response.status());
        answers[index] = Some(answer(item.id.clone(), response).await?);
    }
    let body = BatchResponse { responses: answers.into_iter().flatten().collect() };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response())
}

/// Checks the whole batch before any request in it runs: Graph answers a batch it cannot read
/// with one 400, and runs nothing.
fn prepare(version: dmsync_graph::ApiVersion, requests: &[BatchRequestItem]) -> ApiResult<Vec<Prepared>> {
    if requests.is_empty() {
        return Err(ApiError::BadRequest("The batch request has no requests.".into()));
    }
    if requests.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::BadRequest("Number of requests inside batch exceeds the limit.".into()));
    }
    // Ids are compared without regard to case, as Graph documents.
    let mut positions: HashMap<String, usize> = HashMap::with_capacity(requests.len());
    for (index, item) in requests.iter().enumerate() {
        if item.id.trim().is_empty() {
            return Err(ApiError::BadRequest(format!("Request {} of the batch has no id.", index + 1)));
        }
        if positions.insert(item.id.to_lowercase(), index).is_some() {
            return Err(ApiError::BadRequest(format!(
                "The batch has more than one request with the id '{}'.",
                item.id
            )));
        }
    }
    requests.iter().map(|item| prepare_one(version, item, &positions)).collect()
}

fn prepare_one(
    version: dmsync_graph::ApiVersion,
    item: &BatchRequestItem,
    positions: &HashMap<String, usize>,
) -> ApiResult<Prepared> {
    let bad = |why: String| ApiError::BadRequest(format!("Request '{}' of the batch: {why}", item.id));
    let method = match item.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PATCH" => Method::PATCH,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        other => return Err(bad(format!("'{other}' is not a method a batch can carry."))),
    };
    let relative = relative_url(version, item.url.trim()).map_err(bad)?;
    let uri: Uri = format!("/{}/{relative}", version.segment())
        .parse()
        .map_err(|_| bad(format!("'{}' is not a valid relative URL.", item.url)))?;
    if uri.path().split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(bad(format!("'{}' is not a valid relative URL.", item.url)));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in item.headers.iter().flatten() {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(format!("'{name}' is not a header name.")))?;
        let value = HeaderValue::from_str(&value.joined())
            .map_err(|_| bad(format!("the value of the header '{name}' is not valid.")))?;
        if !is_reserved(&name) {
            headers.append(name, value);
        }
    }
    let body = match &item.body {
        None => Vec::new(),
        Some(body) => {
            let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
                return Err(bad("a request with a body must name its Content-Type in its headers.".into()));
            };
            let is_json = content_type.to_str().is_ok_and(|t| t.to_ascii_lowercase().contains("json"));
            match body {
                serde_json::Value::String(encoded) if !is_json => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(encoded))
                    .map_err(|_| bad("a body that is not JSON must be base64.".into()))?,
                json => serde_json::to_vec(json).map_err(|e| ApiError::Internal(e.to_string()))?,
            }
        }
    };
    let depends_on =
        item.depends_on
            .iter()
            .flatten()
            .map(|id| {
                positions.get(&id.to_lowercase()).copied().ok_or_else(|| {
                    bad(format!("it depends on '{id}', which is not the id of a request in this batch."))
                })
            })
            .collect::<ApiResult<Vec<usize>>>()?;
    Ok(Prepared { id: item.id.clone(), depends_on, method, uri, headers, body })
}

/// A request's URL relative to the version. Graph documents relative URLs (`/users`), but the
/// SDKs send more: msgraph-core for Python sends the absolute URL
/// (`https://graph.microsoft.com/v1.0/users`), and the JavaScript client's `BatchRequestContent`
/// the path with its version (`/v1.0/users`). Both are taken, when their version is the batch's.
fn relative_url(version: dmsync_graph::ApiVersion, url: &str) -> Result<&str, String> {
    let path = match url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) {
        Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => url,
    };
    let path = path.trim_start_matches('/');
    let first = path.split(['/', '?']).next().unwrap_or("");
    match dmsync_graph::ApiVersion::from_segment(first) {
        Some(named) if named == version => Ok(path[first.len()..].trim_start_matches('/')),
        Some(named) => Err(format!(
            "its url names the version '{}', but the batch was sent to '{}'.",
            named.segment(),
            version.segment()
        )),
        None if url.contains("://") => Err(format!("'{url}' is not a Graph URL of this version.")),
        None => Ok(path),
    }
}

/// The order to run the requests in: the order given, each request after the ones it depends
/// on. A request that depends on itself, or a cycle, is refused.
fn run_order(prepared: &[Prepared]) -> ApiResult<Vec<usize>> {
    let mut order = Vec::with_capacity(prepared.len());
    let mut done = vec![false; prepared.len()];
    while order.len() < prepared.len() {
        let ready = (0..prepared.len()).find(|&i| !done[i] && prepared[i].depends_on.iter().all(|&d| done[d]));
        let Some(next) = ready else {
            let stuck = (0..prepared.len()).find(|&i| !done[i]).map_or("", |i| prepared[i].id.as_str());
            return Err(ApiError::BadRequest(format!(
                "The dependsOn of the batch's requests form a cycle, through the request '{stuck}'."
            )));
        };
        done[next] = true;
        order.push(next);
    }
    Ok(order)
}

/// One answer of the batch: the status, the headers and the body, which is the answer's own
/// JSON when it is JSON and its bytes in base64 otherwise.
async fn answer(id: String, response: Response) -> ApiResult<BatchResponseItem> {
    let (parts, body) = response.into_parts();
    // The answers are dmsync's own, bounded by its page sizes; no client bytes are read here.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("reading a batch answer: {e}")))?;
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        if is_forwarded(name)
            && let Ok(value) = value.to_str()
        {
            headers.insert(canonical_header_name(name), value.to_owned());
        }
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    let body = if bytes.is_empty() {
        None
    } else if is_json {
        Some(serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(format!("a batch answer: {e}")))?)
    } else {
        Some(serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)))
    };
    Ok(BatchResponseItem { id, status: parts.status.as_u16(), headers, body })
}

/// `content-type` as Graph writes header names in a batch answer: `Content-Type`, `OData-Version`.
fn canonical_header_name(name: &HeaderName) -> String {
    if name.as_str() == "odata-version" {
        return "OData-Version".to_owned();
    }
    name.as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_graph::ApiVersion;

    fn item(id: &str, depends_on: &[&str]) -> BatchRequestItem {
        BatchRequestItem {
            id: id.into(),
            method: "GET".into(),
            url: "/deviceManagement/windowsAutopilotSettings".into(),
            headers: None,
            body: None,
            depends_on: Some(depends_on.iter().map(|d| (*d).to_owned()).collect()),
        }
    }

    fn refusal(requests: &[BatchRequestItem]) -> String {
        match prepare(ApiVersion::Beta, requests).and_then(|p| run_order(&p)) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn dependencies_run_first_and_the_rest_keep_their_order() {
        let prepared = prepare(ApiVersion::Beta, &[item("1", &["3"]), item("2", &[]), item("3", &[])]).unwrap();
        assert_eq!(run_order(&prepared).unwrap(), vec![1, 2, 0]);
        assert_eq!(prepared[0].uri, "/beta/deviceManagement/windowsAutopilotSettings");
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        assert!(refusal(&[]).contains("no requests"));
        let many: Vec<_> = (0..=MAX_BATCH_REQUESTS).map(|i| item(&i.to_string(), &[])).collect();
        assert_eq!(refusal(&many), "Number of requests inside batch exceeds the limit.");
        assert!(refusal(&[item("a", &[]), item("A", &[])]).contains("more than one request with the id 'A'"));
        assert!(refusal(&[item("1", &["9"])]).contains("depends on '9'"));
        assert!(refusal(&[item("1", &["2"]), item("2", &["1"])]).contains("cycle"));
        assert!(refusal(&[item("1", &["1"])]).contains("cycle"));
        let mut other_version = item("1", &[]);
        other_version.url = "https://graph.microsoft.com/v1.0/deviceManagement/windowsAutopilotSettings".into();
        assert!(refusal(&[other_version]).contains("names the version 'v1.0'"));
        let mut escape = item("1", &[]);
        escape.url = "/../_dmsync/tokens".into();
        assert!(refusal(&[escape]).contains("not a valid relative URL"));
        let mut untyped = item("1", &[]);
        untyped.method = "POST".into();
        untyped.body = Some(serde_json::json!({}));
        assert!(refusal(&[untyped]).contains("Content-Type"));
        let mut verb = item("1", &[]);
        verb.method = "TRACE".into();
        assert!(refusal(&[verb]).contains("'TRACE'"));
    }

    #[test]
    fn urls_are_taken_relative_with_or_without_their_version() {
        for url in [
            "/deviceManagement/x?$top=1",
            "deviceManagement/x?$top=1",
            "/beta/deviceManagement/x?$top=1",
            "https://graph.microsoft.com/beta/deviceManagement/x?$top=1",
            "http://127.0.0.1:8080/BETA/deviceManagement/x?$top=1",
        ] {
            assert_eq!(relative_url(ApiVersion::Beta, url).as_deref(), Ok("deviceManagement/x?$top=1"), "{url}");
        }
        assert!(relative_url(ApiVersion::Beta, "/v1.0/deviceManagement/x").is_err());
        assert!(relative_url(ApiVersion::Beta, "https://example.com/users").is_err());
    }

    #[test]
    fn the_batch_request_keeps_its_own_token_and_host() {
        let mut sneaky = item("1", &[]);
        let one = |v: &str| dmsync_graph::batch::BatchHeaderValue::One(v.into());
        sneaky.headers =
            Some([("Authorization".into(), one("Bearer other")), ("ConsistencyLevel".into(), one("eventual"))].into());
        let prepared = prepare(ApiVersion::V1, &[sneaky]).unwrap();
        assert!(prepared[0].headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(prepared[0].headers["consistencylevel"], "eventual");
    }

    #[test]
    fn header_names_are_written_as_graph_writes_them() {
        assert_eq!(canonical_header_name(&header::CONTENT_TYPE), "Content-Type");
        assert_eq!(canonical_header_name(&HeaderName::from_static("retry-after")), "Retry-After");
        assert_eq!(canonical_header_name(&HeaderName::from_static("odata-version")), "OData-Version");
    }
}
