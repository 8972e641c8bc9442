//! The tenants page: every tenant, a way into each, and a form to create one
//! (`GET` and `POST /_dmsync/tenants`).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use dmsync_core::TenantId;

use super::client::{Failed, Origin};
use super::layout::{self, Notice, Section, Shell, TenantNav, tenant_path};
use super::session::{Posted, Session};
use super::{ConsoleState, see_other};

#[derive(Deserialize)]
struct TenantList {
    value: Vec<TenantEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantEntry {
    tenant_id: TenantId,
    domain: String,
}

/// The tenant of a console path (`/tenants/{tenant}/…`), which the admin API knows: a page
/// about a tenant takes this instead of the bare id.
pub struct ConsoleTenant(pub TenantNav);

impl FromRequestParts<ConsoleState> for ConsoleTenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<ConsoleTenant, Response> {
        // `/tenants/{tenant}/…` below the console's prefix, which nesting has taken off.
        let path = parts.uri.path();
        let segment = path.strip_prefix(super::BASE).unwrap_or(path).split('/').nth(2).unwrap_or("");
        let Ok(id) = segment.parse::<TenantId>() else {
            return Err(layout::not_found());
        };
        let origin = Origin::from_request_parts(parts, state).await.unwrap_or_else(|never| match never {});
        let tenants: TenantList =
            state.calls(&origin).admin_get("/_dmsync/tenants").await.map_err(|failed| failed_page(&failed))?;
        let all: Vec<(TenantId, String)> = tenants.value.into_iter().map(|t| (t.tenant_id, t.domain)).collect();
        match all.iter().find(|(tenant, _)| *tenant == id) {
            Some((_, domain)) => Ok(ConsoleTenant(TenantNav { id, domain: domain.clone(), all })),
            None => Err(layout::not_found()),
        }
    }
}

/// A page that could not be drawn because a call failed: the failure, as Graph worded it.
pub fn failed_page(failed: &Failed) -> Response {
    let status = StatusCode::from_u16(failed.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    layout::bare_page(status, "Something failed", Notice::Error(failed.sentence()))
}

fn render(
    session: &Session,
    tenants: Result<TenantList, Failed>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let content = html! {
        section class="card" aria-labelledby="tenants-heading" {
            h2 id="tenants-heading" { "Tenants" }
            @match &tenants {
                Err(failed) => div class="notice error" role="alert" { (failed.sentence()) },
                Ok(list) if list.value.is_empty() => (layout::empty("No tenants yet.", html! { "Create one below." })),
                Ok(list) => table class="data" {
                    thead { tr { th scope="col" { "Domain" } th scope="col" { "Tenant id" } th scope="col" { "Open" } } }
                    tbody {
                        @for tenant in &list.value {
                            tr {
                                td { (tenant.domain) }
                                td class="mono" { (tenant.tenant_id) }
                                td {
                                    a href=(tenant_path(tenant.tenant_id, "autopilot/devices")) { "Devices" } " · "
                                    a href=(tenant_path(tenant.tenant_id, "profiles")) { "Profiles" } " · "
                                    a href=(tenant_path(tenant.tenant_id, "connectors")) { "Connectors" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="create-heading" {
            h2 id="create-heading" { "Create a tenant" }
            form method="post" class="stack" {
                (layout::csrf_field(session))
                label { "Domain" input name="domain" required placeholder="contoso.onmicrosoft.com"; }
                label { "Tenant id (a GUID; empty for a new one)" input name="tenantId" pattern="[0-9a-fA-F-]{36}"; }
                div { button type="submit" { "Create tenant" } }
            }
        }
    };
    let shell = Shell { title: "Tenants", session, section: Section::Tenants, tenant: None };
    layout::page(status, shell, notice, content)
}

#[derive(Deserialize)]
pub struct Created {
    created: Option<String>,
}

/// `GET /_dmsync/console/tenants`.
pub async fn list_tenants(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    query: axum::extract::Query<Created>,
) -> Response {
    let tenants = state.calls(&origin).admin_get("/_dmsync/tenants").await;
    let notice = query.created.as_ref().map(|domain| Notice::Success(format!("Created {domain}.")));
    render(&session, tenants, notice, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTenant {
    domain: String,
    #[serde(default)]
    tenant_id: String,
}

/// `POST /_dmsync/console/tenants`: `POST /_dmsync/tenants`, then the list again.
pub async fn create_tenant(State(state): State<ConsoleState>, origin: Origin, posted: Posted<NewTenant>) -> Response {
    let calls = state.calls(&origin);
    let id = match posted.form.tenant_id.trim() {
        "" => Ok(uuid::Uuid::new_v4().to_string()),
        given => given.parse::<uuid::Uuid>().map(|u| u.to_string()).map_err(|_| "The tenant id must be a GUID."),
    };
    let result = match id {
        Ok(id) => calls
            .admin_send(
                Method::POST,
                "/_dmsync/tenants",
                &serde_json::json!({ "tenantId": id, "domain": posted.form.domain }),
            )
            .await
            .map_err(|failed| failed.sentence()),
        Err(message) => Err(message.to_owned()),
    };
    match result {
        Ok(_) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("created", posted.form.domain.trim())
                .finish();
            see_other(&format!("{}/tenants?{query}", super::BASE))
        }
        Err(message) => {
            let tenants = calls.admin_get("/_dmsync/tenants").await;
            render(&posted.session, tenants, Some(Notice::Error(message)), StatusCode::BAD_REQUEST).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct Switch {
    tenant: TenantId,
    to: String,
}

/// `GET /_dmsync/console/switch?tenant=&to=`: the tenant switcher's answer, the same section of
/// the tenant chosen.
pub async fn switch_tenant(_: Session, axum::extract::Query(switch): axum::extract::Query<Switch>) -> Response {
    let section = match switch.to.as_str() {
        to @ ("autopilot/devices" | "autopilot/import" | "profiles" | "connectors") => to,
        _ => "autopilot/devices",
    };
    see_other(&tenant_path(switch.tenant, section))
}
