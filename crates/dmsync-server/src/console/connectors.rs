//! The Exchange connectors page: each connector's status and last sync, its full and delta sync
//! buttons (`POST /beta/deviceManagement/exchangeConnectors/{id}/sync`), and the devices the
//! tenant's connectors discovered, counted by `exchangeAccessState` (`managedDevices`).

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use dmsync_core::TenantId;

use super::client::{Calls, Failed, Origin};
use super::client::{Collected, collect};
use super::layout::{self, Notice, Section, Shell, TenantNav, tenant_path};
use super::layout::{failed_alert, graph_time};
use super::session::{Posted, Session};
use super::tenants::ConsoleTenant;
use super::{ConsoleState, see_other};

const CONNECTORS: &str = "/beta/deviceManagement/exchangeConnectors";

/// How often the connectors region asks again: a sync runs as a job, and its end shows only in
/// the connector's status and last sync time.
const REFRESH_MS: u32 = 3000;

/// `deviceManagementExchangeAccessState`, every member the connector writes.
const ACCESS_STATES: &[&str] = &["allowed", "blocked", "quarantined", "none", "unknown"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connector {
    id: String,
    #[serde(default)]
    server_name: String,
    #[serde(default)]
    primary_smtp_address: String,
    #[serde(default)]
    exchange_connector_type: String,
    #[serde(default)]
    status: String,
    last_sync_date_time: Option<String>,
}

#[derive(Deserialize)]
struct Counted {
    #[serde(rename = "@odata.count")]
    count: u64,
}

/// The tenant's discovered devices by access state: one `$count` per state.
async fn access_counts(calls: &Calls<'_>, tenant: TenantId) -> Result<Vec<(&'static str, u64)>, Failed> {
    let mut counts = Vec::new();
    for state in ACCESS_STATES {
        let path = format!(
            "/v1.0/deviceManagement/managedDevices?$filter=exchangeAccessState%20eq%20'{state}'&$count=true&$top=1&$select=id"
        );
        let counted: Counted = calls.graph_get(tenant, &path).await?;
        counts.push((*state, counted.count));
    }
    Ok(counts)
}

fn render(
    session: &Session,
    tenant: &TenantNav,
    connectors: Result<Collected<Connector>, Failed>,
    counts: Result<Vec<(&'static str, u64)>, Failed>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let sync_button = |connector: &Connector, kind: &str, label: &str| -> Markup {
        html! {
            form method="post" action=(tenant_path(tenant.id, &format!("connectors/{}/sync", connector.id))) class="inline" {
                (layout::csrf_field(session))
                input type="hidden" name="syncType" value=(kind);
                button type="submit" class="secondary" aria-label={ (label) " of " (connector.server_name) } { (label) }
            }
        }
    };
    let content = html! {
        section class="card" id="connectors" aria-labelledby="connectors-heading" aria-live="polite" data-refresh=(REFRESH_MS) {
            h2 id="connectors-heading" { "Connectors" }
            @match &connectors {
                Err(failed) => (failed_alert(failed)),
                Ok(list) if list.items.is_empty() => (layout::empty(
                    "No Exchange connectors.",
                    html! {
                        "Create one with " code { "POST " (CONNECTORS) } ", and give it a source with "
                        code { "PUT /_dmsync/tenants/{tid}/exchangeConnectors/{id}/source" } "."
                    },
                )),
                Ok(list) => table class="data" {
                    thead { tr {
                        th scope="col" { "Server" } th scope="col" { "Type" } th scope="col" { "Mailbox" }
                        th scope="col" { "Status" } th scope="col" { "Last sync" } th scope="col" { "Sync" }
                    } }
                    tbody {
                        @for connector in &list.items {
                            tr data-connector=(connector.id) {
                                td { (connector.server_name) div class="mono muted" { (connector.id) } }
                                td { (connector.exchange_connector_type) }
                                td { (connector.primary_smtp_address) }
                                td { (layout::badge(&connector.status)) }
                                td class="last-sync" { (graph_time(connector.last_sync_date_time.as_deref())) }
                                td class="actions" {
                                    (sync_button(connector, "fullSync", "Full sync")) " "
                                    (sync_button(connector, "deltaSync", "Delta sync"))
                                }
                            }
                        }
                    }
                },
            }
            h2 { "Discovered devices" }
            @match &counts {
                Err(failed) => (failed_alert(failed)),
                Ok(counts) => {
                    dl class="counts" id="access-counts" {
                        @for (state, count) in counts {
                            div { dt { (layout::badge(state)) } dd { (count) } }
                        }
                    }
                    p class="hint" { "Every connector of the tenant, by " code { "exchangeAccessState" } " ("
                        code { "/deviceManagement/managedDevices" } ")." }
                }
            }
        }
    };
    let shell = Shell { title: "Exchange connectors", session, section: Section::Connectors, tenant: Some(tenant) };
    layout::page(status, shell, notice, content)
}

async fn load(
    calls: &Calls<'_>,
    tenant: TenantId,
) -> (Result<Collected<Connector>, Failed>, Result<Vec<(&'static str, u64)>, Failed>) {
    (collect(calls, tenant, CONNECTORS).await, access_counts(calls, tenant).await)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    synced: Option<String>,
}

/// `GET /_dmsync/console/tenants/{tenant}/connectors`.
pub async fn list_connectors(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    Query(query): Query<ListQuery>,
) -> Response {
    let calls = state.calls(&origin);
    let (connectors, counts) = load(&calls, tenant.id).await;
    let notice = query.synced.map(|kind| {
        let words = if kind == "deltaSync" { "A delta sync" } else { "A full sync" };
        Notice::Info(format!("{words} started; the table refreshes when it ends."))
    });
    render(&session, &tenant, connectors, counts, notice, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    sync_type: String,
}

/// `POST …/connectors/{id}/sync`: `POST …/exchangeConnectors/{id}/sync` with the sync type.
///
/// The call carries the console's application token. Under `--permission-profile original`
/// Graph refuses the action to application tokens, and the page shows that refusal.
pub async fn sync_connector(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    Path((_, id)): Path<(String, String)>,
    posted: Posted<Sync>,
) -> Response {
    let calls = state.calls(&origin);
    let Ok(id) = id.parse::<uuid::Uuid>() else { return layout::not_found() };
    let kind = if posted.form.sync_type == "deltaSync" { "deltaSync" } else { "fullSync" };
    let path = format!("{CONNECTORS}/{id}/sync");
    match calls.user_send(tenant.id, Method::POST, &path, &serde_json::json!({ "syncType": kind })).await {
        Ok(_) => see_other(&format!("{}?synced={kind}", tenant_path(tenant.id, "connectors"))),
        Err(failed) => {
            let (connectors, counts) = load(&calls, tenant.id).await;
            let status = StatusCode::from_u16(failed.status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
            render(&posted.session, &tenant, connectors, counts, Some(Notice::Error(failed.sentence())), status)
        }
    }
}
