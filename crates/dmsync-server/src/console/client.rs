//! How the console calls its own server: a request built as a network client would build it,
//! sent through the application's router in process (tower's `oneshot`), and its answer read
//! back. Graph calls carry a token minted for the tenant to an app named "dmsync console" (an
//! application token, or for actions Graph allows only to a signed-in user, a delegated token
//! of a "console user"); admin calls carry the admin token in force.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::{Uuid, uuid};

use dmsync_core::TenantId;
use dmsync_core::permissions::{ALL_PERMISSIONS, APPLICATION_PERMISSIONS, PrincipalKind};

use crate::auth::idp::MintRequest;
use crate::serve::Connection;
use crate::state::AppState;

/// The app id of the console's tokens, so that a request it makes is recognisable as its own.
pub const CONSOLE_APP_ID: Uuid = uuid!("d3a5c0de-0000-4000-8000-00000000c0de");

/// The object id of the console's user, the principal of its delegated tokens.
pub const CONSOLE_USER_ID: Uuid = uuid!("d3a5c0de-0000-4000-8000-0000000005e5");

/// The largest answer the console reads: a page of a list is far smaller.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// How long before its expiry on dmsync's Clock a cached token is replaced.
const TOKEN_MARGIN: time::Duration = time::Duration::minutes(5);

/// A request extension on every request the console makes in process. The control plane lets
/// such a request pass untouched (no journal entry, no throttling, no faults): the console
/// watches the system a test drives and must not change what the test sees.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleOrigin;

/// The browser's `Host` and connection scheme, carried into the console's own calls so that
/// the absolute links Graph answers (`@odata.nextLink`) name the address the browser used.
#[derive(Clone, Debug)]
pub struct Origin {
    host: Option<HeaderValue>,
    connection: Option<Connection>,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Origin, Self::Rejection> {
        // HTTP/2 names the host in the request's authority rather than in a `Host` header.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
        let host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        let connection = parts.extensions.get::<Connection>().map(|c| Connection::in_process(c.scheme().clone()));
        Ok(Origin { host, connection })
    }
}

/// Whose authority a call carries.
#[derive(Clone, Copy, Debug)]
pub enum As {
    /// The admin token, for `/_dmsync/` routes.
    Admin,
    /// An application token of the tenant with every application permission dmsync knows.
    Tenant(TenantId),
    /// A delegated token of the tenant's "console user" with every permission dmsync knows, for
    /// the actions the permission profile refuses to applications (the Autopilot sync).
    User(TenantId),
}

/// A call that did not succeed: Graph's (or the admin API's) error, as its body says it.
#[derive(Debug, Clone)]
pub struct Failed {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// `Retry-After`, in seconds, when the answer had one.
    pub retry_after: Option<u64>,
}

impl Failed {
    fn internal(message: impl Into<String>) -> Failed {
        Failed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "consoleError".into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// One line for the page: the status, Graph's code and its message.
    pub fn sentence(&self) -> String {
        format!("{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

/// The router the console calls, and the tokens it minted.
#[derive(Clone)]
pub struct InProcess {
    router: Router,
    tokens: Arc<Mutex<TokenCache>>,
}

/// The tokens minted so far, by tenant and kind, each with its expiry on dmsync's Clock.
type TokenCache = HashMap<(TenantId, PrincipalKind), (String, OffsetDateTime)>;

impl InProcess {
    pub fn new(router: Router) -> InProcess {
        InProcess { router, tokens: Arc::default() }
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    async fn token(&self, app: &AppState, tenant: TenantId, kind: PrincipalKind) -> Result<String, Failed> {
        let now = app.now();
        if let Some((token, expires)) = self.tokens.lock().expect("token cache lock").get(&(tenant, kind))
            && *expires - TOKEN_MARGIN > now
        {
            return Ok(token.clone());
        }
        let lifetime = crate::auth::idp::TOKEN_LIFETIME_SECONDS;
        let (permissions, object_id, user_principal_name, name) = match kind {
            PrincipalKind::Application => (APPLICATION_PERMISSIONS, CONSOLE_APP_ID, None, None),
            PrincipalKind::Delegated => (
                ALL_PERMISSIONS,
                CONSOLE_USER_ID,
                Some("console@dmsync.invalid".to_owned()),
                Some("dmsync console user".to_owned()),
            ),
        };
        let token = app
            .issuer()
            .mint(MintRequest {
                tenant_id: tenant,
                kind,
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                app_id: CONSOLE_APP_ID,
                app_display_name: "dmsync console".into(),
                object_id,
                user_principal_name,
                name,
                lifetime_seconds: lifetime,
            })
            .await
            .map_err(|e| Failed::internal(format!("could not mint the console's token: {e}")))?;
        let expires = now + time::Duration::seconds(lifetime);
        self.tokens.lock().expect("token cache lock").insert((tenant, kind), (token.clone(), expires));
        Ok(token)
    }

    /// Sends one request and returns the answer's body when its status is a success.
    pub async fn send(
        &self,
        app: &AppState,
        origin: &Origin,
        method: Method,
        path: &str,
        who: As,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Bytes, Failed> {
        let bearer = match who {
            As::Admin => {
                app.config().effective_admin_token().ok_or_else(|| Failed::internal("the admin API is off"))?
            }
            As::Tenant(tenant) => self.token(app, tenant, PrincipalKind::Application).await?,
            As::User(tenant) => self.token(app, tenant, PrincipalKind::Delegated).await?,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::ACCEPT, "application/json");
        if let Some(host) = &origin.host {
            request = request.header(header::HOST, host);
        }
        let (bytes, content_type) = body.unwrap_or((Bytes::new(), ""));
        if !content_type.is_empty() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let mut request = request.body(Body::from(bytes)).map_err(|e| Failed::internal(format!("bad request: {e}")))?;
        request.extensions_mut().insert(ConsoleOrigin);
        if let Some(connection) = &origin.connection {
            request.extensions_mut().insert(connection.clone());
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Failed::internal(format!("the answer could not be read: {e}")))?;
        if parts.status.is_success() {
            return Ok(bytes);
        }
        let retry_after =
            parts.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let error: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let field = |name: &str| {
            error
                .as_ref()
                .and_then(|e| e.pointer(&format!("/error/{name}")))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Err(Failed {
            status: parts.status,
            code: field("code").unwrap_or_else(|| parts.status.canonical_reason().unwrap_or("error").to_owned()),
            message: field("message").unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect()),
            retry_after,
        })
    }

    /// A GET whose JSON answer is read into `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        app: &AppState,
        origin: &Origin,
        path: &str,
        who: As,
    ) -> Result<T, Failed> {
        let bytes = self.send(app, origin, Method::GET, path, who, None).await?;
        read(&bytes)
    }

    /// A request with a JSON body; the answer's body (often empty) is returned as it came.
    pub async fn send_json(
        &self,
        app: &AppState,
        origin: &Origin,
        method: Method,
        path: &str,
        who: As,
        body: &serde_json::Value,
    ) -> Result<Bytes, Failed> {
        let bytes = Bytes::from(serde_json::to_vec(body).expect("a JSON value serialises"));
        self.send(app, origin, method, path, who, Some((bytes, "application/json"))).await
    }
}

/// Reads an answer's JSON into `T`.
pub fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failed> {
    serde_json::from_slice(bytes)
        .map_err(|e| Failed::internal(format!("the answer was not what the console expected: {e}")))
}

/// The console's calls on behalf of one browser request.
pub struct Calls<'a> {
    app: &'a AppState,
    graph: &'a InProcess,
    origin: &'a Origin,
}

impl<'a> Calls<'a> {
    pub fn new(app: &'a AppState, graph: &'a InProcess, origin: &'a Origin) -> Calls<'a> {
        Calls { app, graph, origin }
    }

    /// A Graph GET as the tenant, its JSON answer read into `T`.
    pub async fn graph_get<T: DeserializeOwned>(&self, tenant: TenantId, path: &str) -> Result<T, Failed> {
        self.graph.get(self.app, self.origin, path, As::Tenant(tenant)).await
    }

    /// A Graph request with a JSON body as the tenant; the answer's body as it came.
    pub async fn graph_send(
        &self,
        tenant: TenantId,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Bytes, Failed> {
        self.graph.send_json(self.app, self.origin, method, path, As::Tenant(tenant), body).await
    }

    /// A Graph request with a JSON body as the tenant's delegated console user, for the actions
    /// the permission profile refuses to application tokens (the Exchange connector's sync).
    pub async fn user_send(
        &self,
        tenant: TenantId,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Bytes, Failed> {
        self.graph.send_json(self.app, self.origin, method, path, As::User(tenant), body).await
    }

    /// An admin GET, its JSON answer read into `T`.
    pub async fn admin_get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failed> {
        self.graph.get(self.app, self.origin, path, As::Admin).await
    }

    /// An admin request with a JSON body; the answer's body as it came.
    pub async fn admin_send(&self, method: Method, path: &str, body: &serde_json::Value) -> Result<Bytes, Failed> {
        self.graph.send_json(self.app, self.origin, method, path, As::Admin, body).await
    }

    /// A request without a body (a DELETE, an action that takes none).
    pub async fn send_empty(&self, method: Method, path: &str, who: As) -> Result<Bytes, Failed> {
        self.graph.send(self.app, self.origin, method, path, who, None).await
    }
}

/// How many pages of a list a page follows before it says the rest is not shown: a tenant holds
/// at most 350 profiles, but devices and groups may be many more than a page should read.
const MAX_PAGES: usize = 10;

/// One page of a Graph collection.
#[derive(Deserialize)]
pub struct GraphPage<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// A collection read to its end or to `MAX_PAGES` pages, whichever comes first.
pub struct Collected<T> {
    pub items: Vec<T>,
    /// Whether pages were left unread.
    pub truncated: bool,
}

/// The path and query of an absolute `@odata.nextLink`, which the console calls in process.
pub fn next_link_path(link: &str) -> &str {
    match link.find("://") {
        Some(scheme_end) => {
            let rest = &link[scheme_end + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => link,
    }
}

/// Reads a Graph collection as the tenant, following `@odata.nextLink` up to `MAX_PAGES`.
pub async fn collect<T: DeserializeOwned>(
    calls: &Calls<'_>,
    tenant: TenantId,
    first: &str,
) -> Result<Collected<T>, Failed> {
    let mut items = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..MAX_PAGES {
        let page: GraphPage<T> = calls.graph_get(tenant, &path).await?;
        items.extend(page.value);
        match page.next_link {
            Some(link) => path = next_link_path(&link).to_owned(),
            None => return Ok(Collected { items, truncated: false }),
        }
    }
    Ok(Collected { items, truncated: true })
}

#[cfg(test)]
mod tests {
    use super::next_link_path;

    #[test]
    fn a_next_link_is_called_by_its_path_and_query() {
        assert_eq!(next_link_path("https://localhost:8443/beta/x?$skiptoken=a"), "/beta/x?$skiptoken=a");
        assert_eq!(next_link_path("/beta/x?$top=1"), "/beta/x?$top=1");
        assert_eq!(next_link_path("https://host"), "/");
    }
}
