//! The request journal page: what clients asked of the server and what it answered
//! (`GET /_dmsync/requests` with its filters), newest first, each entry's bodies in a
//! disclosure, and a button that clears the journal (`DELETE /_dmsync/requests`).
//!
//! The page is the server's, not a tenant's: the journal is one per process, holds requests of
//! every tenant and those without a tenant (a sign-in, a bad token), and filters by tenant itself.

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::client::{As, Failed, Origin};
use super::layout::{self, Notice, Section, Shell};
use super::layout::{failed_alert, graph_time};
use super::session::{NoFields, Posted, Session};
use super::{BASE, ConsoleState, see_other};

/// How often the table asks again.
const REFRESH_MS: u32 = 3000;

/// The most entries the page shows, newest first; the filters find older ones.
const SHOWN: usize = 200;

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    sequence: u64,
    time: String,
    tenant_id: Option<String>,
    app_id: Option<String>,
    method: String,
    path: String,
    status: u16,
    duration_ms: f64,
    request_body: Option<String>,
    response_body: Option<String>,
    fault: Option<String>,
    nearest_route: Option<String>,
}

#[derive(Deserialize)]
struct Entries {
    value: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantEntry {
    tenant_id: String,
    domain: String,
}

#[derive(Deserialize)]
struct TenantList {
    value: Vec<TenantEntry>,
}

/// The page's filters, as the form sends them; an empty field filters nothing.
#[derive(Default)]
struct Filters {
    method: String,
    path: String,
    tenant_id: String,
    status: String,
    since: String,
}

impl Filters {
    fn from_query(query: Option<&str>) -> Filters {
        let mut filters = Filters::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.trim().to_owned();
            match &*name {
                "method" => filters.method = value,
                "path" => filters.path = value,
                "tenantId" => filters.tenant_id = value,
                "status" => filters.status = value,
                "since" => filters.since = value,
                _ => {}
            }
        }
        filters
    }

    /// The admin API's query: only the filters that are set, so an empty field is no filter.
    fn admin_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("method", &self.method),
            ("path", &self.path),
            ("tenantId", &self.tenant_id),
            ("status", &self.status),
            ("since", &self.since),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=399 => "badge status-success",
        429 => "badge status-pending",
        _ => "badge status-failed",
    }
}

fn body_block(label: &str, body: Option<&str>) -> Markup {
    html! {
        div class="body" {
            h4 { (label) }
            @match body.filter(|b| !b.is_empty()) {
                Some(body) => pre { (body) },
                None => p class="muted" { "empty" },
            }
        }
    }
}

fn entries_region(entries: &Result<Entries, Failed>, tenants: &[TenantEntry]) -> Markup {
    fn domain<'a>(tenants: &'a [TenantEntry], id: &'a str) -> &'a str {
        tenants.iter().find(|t| t.tenant_id == id).map_or(id, |t| t.domain.as_str())
    }
    html! {
        section class="card" id="journal" aria-labelledby="journal-heading" aria-live="polite" data-refresh=(REFRESH_MS) {
            h2 id="journal-heading" { "Requests" }
            @match entries {
                Err(failed) => (failed_alert(failed)),
                Ok(entries) if entries.value.is_empty() => (layout::empty(
                    "No requests match.",
                    html! {
                        "Graph and sign-in requests from clients show here as they arrive. The console's own calls are not journalled."
                    },
                )),
                Ok(entries) => {
                    p class="hint" {
                        (entries.value.len()) " matching; "
                        @if entries.value.len() > SHOWN { "the newest " (SHOWN) " shown, " }
                        "newest first."
                    }
                    table class="data journal" {
                        thead { tr {
                            th scope="col" { "Time" } th scope="col" { "Method" } th scope="col" { "Path and bodies" }
                            th scope="col" { "Status" } th scope="col" { "Tenant" } th scope="col" { "ms" }
                        } }
                        tbody {
                            @for entry in entries.value.iter().rev().take(SHOWN) {
                                tr data-sequence=(entry.sequence) {
                                    td { (graph_time(Some(&entry.time))) }
                                    td class="mono" { (entry.method) }
                                    td {
                                        details {
                                            summary class="mono" { (entry.path) }
                                            @if let Some(fault) = &entry.fault { p { "Answered by fault rule " span class="mono" { (fault) } } }
                                            @if let Some(route) = &entry.nearest_route { p { "No such route; the nearest is " span class="mono" { (route) } } }
                                            @if let Some(app) = &entry.app_id { p class="hint" { "App " span class="mono" { (app) } } }
                                            div class="bodies" {
                                                (body_block("Request body", entry.request_body.as_deref()))
                                                (body_block("Response body", entry.response_body.as_deref()))
                                            }
                                        }
                                    }
                                    td {
                                        span class=(status_class(entry.status)) { (entry.status) }
                                        @if entry.fault.is_some() { " " span class="badge status-fault" { "fault" } }
                                    }
                                    td { @match &entry.tenant_id { Some(t) => (domain(tenants, t)), None => span class="muted" { "none" } } }
                                    td { (format!("{:.1}", entry.duration_ms)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn render(
    session: &Session,
    filters: &Filters,
    entries: Result<Entries, Failed>,
    tenants: Result<TenantList, Failed>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let tenants = tenants.map(|t| t.value).unwrap_or_default();
    let content = html! {
        form method="get" class="toolbar card filters" aria-label="Filters" {
            label {
                "Method"
                select name="method" {
                    option value="" { "Any" }
                    @for method in METHODS { option value=(method) selected[filters.method.eq_ignore_ascii_case(method)] { (method) } }
                }
            }
            label { "Path (* for any text)" input name="path" value=(filters.path) placeholder="/beta/deviceManagement/*" size="44"; }
            label {
                "Tenant"
                select name="tenantId" {
                    option value="" { "Any" }
                    @for tenant in &tenants { option value=(tenant.tenant_id) selected[filters.tenant_id == tenant.tenant_id] { (tenant.domain) } }
                }
            }
            label { "Status" input name="status" value=(filters.status) placeholder="4xx" size="5"; }
            label { "Since (RFC 3339)" input name="since" value=(filters.since) placeholder="2026-12-03T10:00:00Z" size="22"; }
            button type="submit" { "Filter" }
            a class="button secondary" href={ (BASE) "/requests" } { "Reset" }
        }
        (entries_region(&entries, &tenants))
        form method="post" action={ (BASE) "/requests/clear" } class="toolbar" data-confirm="Clear the whole journal?" {
            (layout::csrf_field(session))
            button type="submit" class="danger" { "Clear the journal" }
        }
    };
    let shell = Shell { title: "Request journal", session, section: Section::Requests, tenant: None };
    layout::page(status, shell, notice, content)
}

/// `GET /_dmsync/console/requests?method=&path=&tenantId=&status=&since=`. A filter the admin API
/// refuses shows its 400 message.
pub async fn show_requests(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    RawQuery(query): RawQuery,
) -> Response {
    let calls = state.calls(&origin);
    let filters = Filters::from_query(query.as_deref());
    let entries = calls.admin_get(&format!("/_dmsync/requests?{}", filters.admin_query())).await;
    let tenants = calls.admin_get("/_dmsync/tenants").await;
    let cleared = query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "cleared=1"));
    let notice = cleared.then(|| Notice::Success("Cleared the journal.".into()));
    render(&session, &filters, entries, tenants, notice, StatusCode::OK)
}

/// `POST /_dmsync/console/requests/clear`: `DELETE /_dmsync/requests`.
pub async fn clear_requests(State(state): State<ConsoleState>, origin: Origin, posted: Posted<NoFields>) -> Response {
    let calls = state.calls(&origin);
    match calls.send_empty(Method::DELETE, "/_dmsync/requests", As::Admin).await {
        Ok(_) => see_other(&format!("{BASE}/requests?cleared=1")),
        Err(failed) => {
            let entries = calls.admin_get("/_dmsync/requests").await;
            let tenants = calls.admin_get("/_dmsync/tenants").await;
            let notice = Some(Notice::Error(failed.sentence()));
            render(&posted.session, &Filters::default(), entries, tenants, notice, StatusCode::BAD_GATEWAY)
        }
    }
}
