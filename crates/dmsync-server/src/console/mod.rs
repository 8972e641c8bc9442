//! The web console under `/_dmsync/console/`: dmsync's state shown the way the Intune admin
//! center shows a tenant, and the buttons tests push (import, sync, assign, advance the Clock,
//! faults and throttling).
//!
//! The console is a client of its own server. Its pages never read the store: each one calls
//! the Graph and admin routes in process, through the same router a network client reaches
//! (`client::InProcess`), with the admin token or a token minted for the tenant, and renders
//! what they answer. So every button runs the code path the API runs, and the console shows
//! Graph's own errors when a call fails.
//!
//! Pages are rendered on the server (maud, which escapes every value) and work without script;
//! one small script (`assets/console.js`) adds live refresh, countdowns and drag and drop. The
//! page loads nothing from elsewhere, and its Content-Security-Policy allows only its own
//! stylesheet and script.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower::ServiceExt;

use crate::state::AppState;

mod assets;
mod autopilot;
mod client;
mod clock;
mod connectors;
mod control;
mod import;
mod layout;
mod profiles;
mod requests;
mod session;
mod tenants;

pub use client::ConsoleOrigin;

/// Where the console lives; every link it renders starts here.
pub const BASE: &str = "/_dmsync/console";

/// The largest form a page posts (every form but the CSV upload).
const FORM_LIMIT_BYTES: usize = 64 * 1024;

/// What the console's handlers share: the application, and the router they call in process.
#[derive(Clone)]
pub struct ConsoleState {
    app: AppState,
    graph: client::InProcess,
}

impl ConsoleState {
    /// The calls a handler makes for the browser request `origin` came from.
    fn calls<'a>(&'a self, origin: &'a client::Origin) -> client::Calls<'a> {
        client::Calls::new(&self.app, &self.graph, origin)
    }
}

/// Puts the console in front of the application's router: its own paths are answered here,
/// everything else goes to `inner` untouched.
pub fn mount(inner: Router, app: &AppState) -> Front {
    let state = ConsoleState { app: app.clone(), graph: client::InProcess::new(inner.clone()) };
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to(&format!("{BASE}/tenants")) }))
        .route("/login", get(session::login_page).post(session::sign_in))
        .route("/logout", post(session::sign_out))
        .route("/assets/{name}", get(assets::serve_asset))
        .route("/tenants", get(tenants::list_tenants).post(tenants::create_tenant))
        .route("/switch", get(tenants::switch_tenant))
        .route("/clock", get(clock::show_clock).post(clock::advance_clock))
        // Deployment profiles, Exchange connectors, the request journal, faults and throttling.
        .route("/tenants/{tenant}/profiles", get(profiles::list_profiles).post(profiles::create_profile))
        .route("/tenants/{tenant}/profiles/{id}", get(profiles::show_profile))
        .route("/tenants/{tenant}/profiles/{id}/assignments", post(profiles::assign_profile))
        .route("/tenants/{tenant}/profiles/{id}/assignments/remove", post(profiles::remove_assignment))
        .route("/tenants/{tenant}/connectors", get(connectors::list_connectors))
        .route("/tenants/{tenant}/connectors/{id}/sync", post(connectors::sync_connector))
        .route("/requests", get(requests::show_requests))
        .route("/requests/clear", post(requests::clear_requests))
        .route("/control", get(control::show_control))
        .route("/control/faults", post(control::add_fault))
        .route("/control/faults/clear", post(control::clear_faults))
        .route("/control/faults/{id}/delete", post(control::delete_fault))
        .route("/control/throttling", post(control::switch_throttling))
        .fallback(|| async { layout::not_found() })
        .layer(DefaultBodyLimit::max(FORM_LIMIT_BYTES))
        .merge(autopilot_routes());
    let console = Router::new()
        .route("/", axum::routing::any(root))
        .route(&format!("{BASE}/"), get(|| async { Redirect::to(&format!("{BASE}/tenants")) }))
        .nest(BASE, pages)
        .with_state(state.clone())
        .fallback_service(inner.clone());
    Front { console, inner }
}

/// The console's router in front of the application's. A request for the console's paths (`/`
/// and those under [`BASE`]) goes to the console's router; any other goes straight to the
/// routes behind it, not through the console router's lookup and fallback, which were a share
/// of every Graph request's cost. The console's router falls back to the same routes, so the
/// split decides only which way is shorter, never what answers.
#[derive(Clone)]
pub struct Front {
    console: Router,
    inner: Router,
}

impl Front {
    fn is_console(path: &str) -> bool {
        path == "/" || path.strip_prefix(BASE).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // A router is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if Front::is_console(request.uri().path()) { self.console.call(request) } else { self.inner.call(request) }
    }
}

/// The Autopilot pages: devices, one device, the sync, and the CSV import. The upload takes a
/// body a little above the CSV bound, so that a file just over it is refused in words.
fn autopilot_routes() -> Router<ConsoleState> {
    let upload_limit = DefaultBodyLimit::max(import::MAX_CSV_BYTES + 1024 * 1024);
    // A pasted file is URL-encoded, which can triple it.
    let paste_limit = DefaultBodyLimit::max(3 * import::MAX_CSV_BYTES);
    Router::new()
        .route("/tenants/{tenant}/autopilot/devices", get(autopilot::list_devices))
        .route("/tenants/{tenant}/autopilot/devices/{id}", get(autopilot::show_device))
        .route("/tenants/{tenant}/autopilot/sync", post(autopilot::sync_devices))
        .route(
            "/tenants/{tenant}/autopilot/import",
            get(import::show_import).post(import::upload_csv).layer(upload_limit),
        )
        .route("/tenants/{tenant}/autopilot/import/paste", post(import::paste_csv).layer(paste_limit))
        .route("/tenants/{tenant}/autopilot/import/progress", get(import::show_progress))
        .layer(DefaultBodyLimit::max(FORM_LIMIT_BYTES))
}

/// `/`: a browser that asks for a page is sent to the console; anything else (an SDK probing
/// the root) gets what Graph's root answers, from the routes behind.
async fn root(State(state): State<ConsoleState>, request: Request) -> Response {
    let wants_page = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if wants_page {
        return Redirect::to(&format!("{BASE}/tenants")).into_response();
    }
    match state.graph.router().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The headers every console response carries: nothing from elsewhere runs or loads, the page
/// cannot be framed, and nothing is cached (pages show live state and a CSRF token).
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An HTML response with the console's headers.
fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = Response::new(Body::from(markup.into_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(response)
}

/// After a form's change: back to a page with GET (post/redirect/get), so a reload repeats
/// nothing.
fn see_other(location: &str) -> Response {
    secure(Redirect::to(location).into_response())
}

#[cfg(test)]
mod tests {
    use super::Front;

    #[test]
    fn only_the_consoles_own_paths_take_the_consoles_way() {
        for console in ["/", "/_dmsync/console", "/_dmsync/console/", "/_dmsync/console/tenants"] {
            assert!(Front::is_console(console), "{console}");
        }
        for other in ["/beta/deviceManagement/windowsAutopilotSettings", "/_dmsync/consoles", "/_dmsync/requests", "//"]
        {
            assert!(!Front::is_console(other), "{other}");
        }
    }
}
