//! The Autopilot devices pages, as the Intune admin center shows them: the device list with its
//! filters and keyset pages (`GET …/windowsAutopilotDeviceIdentities`), one device with its
//! Entra device object (`GET /devices?$filter=deviceId eq …`), and the sync panel
//! (`GET …/windowsAutopilotSettings`, `POST …/windowsAutopilotSettings/sync`).

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use dmsync_core::TenantId;
use dmsync_core::groups::DYNAMIC_MEMBERSHIP;

use super::client::{As, Failed, Origin};
use super::layout::{self, Notice, Section, Shell, tenant_path};
use super::session::{NoFields, Posted, Session};
use super::tenants::ConsoleTenant;
use super::{ConsoleState, see_other};

/// The devices one page of the list shows.
const PAGE_SIZE: u32 = 50;

/// How often the sync panel asks again while a sync runs.
const SYNC_REFRESH_MS: u32 = 1500;

const DEVICES: &str = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";

/// The fields of a device the pages show, as Graph's beta names them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceEntry {
    id: String,
    serial_number: String,
    model: String,
    manufacturer: String,
    group_tag: String,
    deployment_profile_assignment_status: String,
    deployment_profile_assignment_detailed_status: String,
    deployment_profile_assigned_date_time: Option<String>,
    last_contacted_date_time: Option<String>,
    enrollment_state: String,
    azure_active_directory_device_id: String,
    managed_device_id: String,
    display_name: String,
    user_principal_name: String,
    purchase_order_identifier: String,
    product_key: String,
    system_family: String,
    sku_number: String,
    deployment_profile: Option<ProfileEntry>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ProfileEntry {
    display_name: String,
}

#[derive(Deserialize)]
struct DevicePage {
    value: Vec<DeviceEntry>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    count: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SyncSettings {
    sync_status: String,
    last_sync_date_time: Option<String>,
    last_manual_sync_trigger_date_time: Option<String>,
}

/// A string literal of `$filter`, its quotes doubled as OData escapes them.
fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `$skiptoken` of a nextLink: the opaque cursor the console's own page links carry.
fn skiptoken_of(next_link: &str) -> Option<String> {
    let query = next_link.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "$skiptoken").map(|(_, v)| v.into_owned())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    group_tag: String,
    skiptoken: Option<String>,
    /// The answer of the last Sync press: `started`, `inProgress`, `cooldown`.
    sync: Option<String>,
    retry: Option<u64>,
}

impl ListQuery {
    /// The Graph list request of this page: the filters as the admin center sends them
    /// (`serialNumber eq '…'`, `groupTag eq '…'`), and a count on the first page only.
    fn graph_path(&self) -> String {
        let mut clauses = Vec::new();
        if !self.serial.trim().is_empty() {
            clauses.push(format!("serialNumber eq {}", odata_string(self.serial.trim())));
        }
        if !self.group_tag.trim().is_empty() {
            clauses.push(format!("groupTag eq {}", odata_string(self.group_tag.trim())));
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("$top", &PAGE_SIZE.to_string());
        query.append_pair("$expand", "deploymentProfile");
        if !clauses.is_empty() {
            query.append_pair("$filter", &clauses.join(" and "));
        }
        match &self.skiptoken {
            Some(token) => query.append_pair("$skiptoken", token),
            None => query.append_pair("$count", "true"),
        };
        format!("{DEVICES}?{}", query.finish())
    }

    /// The console's link to this list with the same filters, from `skiptoken` on.
    fn link(&self, tenant: TenantId, skiptoken: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.serial.trim().is_empty() {
            query.append_pair("serial", self.serial.trim());
        }
        if !self.group_tag.trim().is_empty() {
            query.append_pair("groupTag", self.group_tag.trim());
        }
        if let Some(token) = skiptoken {
            query.append_pair("skiptoken", token);
        }
        let query = query.finish();
        let path = tenant_path(tenant, "autopilot/devices");
        if query.is_empty() { path } else { format!("{path}?{query}") }
    }
}

/// The sync panel: Graph's syncStatus, the last sync and the last press, and while the
/// cooldown lasts, when the next press is allowed. It refreshes itself while a sync runs.
fn sync_panel(
    state: &ConsoleState,
    session: &Session,
    tenant: TenantId,
    settings: &Result<SyncSettings, Failed>,
) -> Markup {
    let settings = match settings {
        Err(failed) => {
            return html! {
                section class="card" id="sync-panel" aria-labelledby="sync-heading" {
                    h2 id="sync-heading" { "Sync with Windows Autopilot" }
                    div class="notice error" role="alert" { (failed.sentence()) }
                }
            };
        }
        Ok(settings) => settings,
    };
    let in_progress = settings.sync_status == "inProgress";
    let last_press = layout::parse_graph_time(settings.last_manual_sync_trigger_date_time.as_deref());
    let now = state.app.now();
    let cooldown = state.app.config().sync_cooldown;
    let next_allowed = last_press.map(|t| t + cooldown).filter(|t| *t > now);
    let refresh = in_progress.then_some(SYNC_REFRESH_MS);
    html! {
        section class="card" id="sync-panel" data-refresh=[refresh] aria-live="polite" aria-labelledby="sync-heading" {
            h2 id="sync-heading" { "Sync with Windows Autopilot" }
            dl class="props" {
                dt { "Sync status" } dd id="sync-status" { (layout::badge(if settings.sync_status.is_empty() { "unknown" } else { &settings.sync_status })) }
                dt { "Last sync" } dd id="last-sync" { (layout::graph_time(settings.last_sync_date_time.as_deref())) }
                dt { "Last sync requested" } dd id="last-press" { (layout::when(last_press)) }
                @if let Some(next) = next_allowed {
                    dt { "Next sync allowed" }
                    dd id="next-sync" {
                        (layout::when(Some(next))) " (in "
                        span data-countdown=((next - now).whole_seconds().max(0)) data-countdown-done="reload" {
                            ((next - now).whole_seconds().max(0)) " s"
                        }
                        ")"
                    }
                }
            }
            form method="post" action=(tenant_path(tenant, "autopilot/sync")) class="toolbar" {
                (layout::csrf_field(session))
                button type="submit" id="sync-button" disabled[in_progress] { "Sync" }
                span class="hint" {
                    "Fetches the devices registered with Windows Autopilot. One sync at a time; at most one every "
                    (cooldown.whole_minutes()) " minutes."
                }
            }
        }
    }
}

/// The notice the page shows after a Sync press, from the redirect's query.
fn sync_notice(query: &ListQuery) -> Option<Notice> {
    match query.sync.as_deref()? {
        "started" => Some(Notice::Success("Sync started (204 No Content). The status follows below.".into())),
        "inProgress" => {
            Some(Notice::Info("A sync is already in progress (409 Conflict); wait for it to finish.".into()))
        }
        "cooldown" => Some(Notice::Error(format!(
            "Synced less than 10 minutes ago (429 Too Many Requests){}.",
            query.retry.map(|s| format!("; try again in {s} s")).unwrap_or_default()
        ))),
        _ => None,
    }
}

/// "60 devices", or with filters "1 device matches" and "3 devices match".
fn count_words(count: u64, filtered: bool) -> String {
    match (count == 1, filtered) {
        (true, false) => "1 device".into(),
        (true, true) => "1 device matches".into(),
        (false, false) => format!("{count} devices"),
        (false, true) => format!("{count} devices match"),
    }
}

fn device_table(tenant: TenantId, devices: &[DeviceEntry]) -> Markup {
    html! {
        div class="scroll" {
            table class="data" id="devices" {
                thead { tr {
                    th scope="col" { "Serial number" }
                    th scope="col" { "Model" }
                    th scope="col" { "Group tag" }
                    th scope="col" { "Profile status" }
                    th scope="col" { "Assigned profile" }
                    th scope="col" { "Last contact" }
                } }
                tbody {
                    @for device in devices {
                        tr {
                            td class="mono" {
                                a href=(tenant_path(tenant, &format!("autopilot/devices/{}", device.id))) { (device.serial_number) }
                            }
                            td { (device.model) @if !device.manufacturer.is_empty() { span class="muted" { " (" (device.manufacturer) ")" } } }
                            td { (device.group_tag) }
                            td { (layout::badge(&device.deployment_profile_assignment_status)) }
                            td {
                                @match &device.deployment_profile {
                                    Some(profile) => (profile.display_name),
                                    None => span class="muted" { "none" },
                                }
                            }
                            td { (layout::graph_time(device.last_contacted_date_time.as_deref())) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /_dmsync/console/tenants/{tenant}/autopilot/devices`.
pub async fn list_devices(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    Query(query): Query<ListQuery>,
) -> Response {
    let calls = state.calls(&origin);
    let page: Result<DevicePage, Failed> = calls.graph_get(nav.id, &query.graph_path()).await;
    let settings: Result<SyncSettings, Failed> = calls.graph_get(nav.id, SETTINGS).await;
    let filtered = !query.serial.trim().is_empty() || !query.group_tag.trim().is_empty();
    let content = html! {
        (sync_panel(&state, &session, nav.id, &settings))
        section class="card" aria-labelledby="devices-heading" {
            h2 id="devices-heading" { "Windows Autopilot devices" }
            form method="get" class="toolbar" role="search" {
                label { "Serial number" input name="serial" value=(query.serial) autocomplete="off"; }
                label { "Group tag" input name="groupTag" value=(query.group_tag) autocomplete="off"; }
                button type="submit" { "Filter" }
                @if filtered { a href=(tenant_path(nav.id, "autopilot/devices")) { "Clear filters" } }
            }
            @match &page {
                Err(failed) => div class="notice error" role="alert" { (failed.sentence()) },
                Ok(page) if page.value.is_empty() && filtered => (layout::empty(
                    "No device matches these filters.",
                    html! { "Serial number and group tag match exactly (ignoring case)." },
                )),
                Ok(page) if page.value.is_empty() && query.skiptoken.is_none() => (layout::empty(
                    &format!("No Autopilot devices in {} yet.", nav.domain),
                    html! { a href=(tenant_path(nav.id, "autopilot/import")) { "Import a CSV" } " and sync, or register devices through Graph." },
                )),
                Ok(page) if page.value.is_empty() => (layout::empty("No more devices.", html! { a href=(query.link(nav.id, None)) { "Back to the first page" } })),
                Ok(page) => {
                    @if let Some(count) = page.count {
                        p class="hint" id="device-count" { (count_words(count, filtered)) }
                    }
                    (device_table(nav.id, &page.value))
                    nav class="pager" aria-label="Pages" {
                        @if query.skiptoken.is_some() { a href=(query.link(nav.id, None)) { "First page" } }
                        @if let Some(token) = page.next_link.as_deref().and_then(skiptoken_of) {
                            a href=(query.link(nav.id, Some(&token))) rel="next" id="next-page" { "Next page" }
                        }
                    }
                },
            }
        }
    };
    let shell = Shell { title: "Autopilot devices", session: &session, section: Section::Devices, tenant: Some(&nav) };
    layout::page(StatusCode::OK, shell, sync_notice(&query), content)
}

/// `POST /_dmsync/console/tenants/{tenant}/autopilot/sync`: Graph's sync as the console user
/// (the permission profile refuses it to applications), then the list again with its answer.
pub async fn sync_devices(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    _posted: Posted<NoFields>,
) -> Response {
    let answer = state.calls(&origin).send_empty(Method::POST, &format!("{SETTINGS}/sync"), As::User(nav.id)).await;
    let outcome = match answer {
        Ok(_) => "sync=started".to_owned(),
        Err(failed) if failed.status == StatusCode::CONFLICT => "sync=inProgress".to_owned(),
        Err(failed) if failed.status == StatusCode::TOO_MANY_REQUESTS => match failed.retry_after {
            Some(seconds) => format!("sync=cooldown&retry={seconds}"),
            None => "sync=cooldown".to_owned(),
        },
        Err(failed) => {
            let shell_notice = Notice::Error(format!("The sync was refused: {}", failed.sentence()));
            return layout::bare_page(failed.status, "Sync failed", shell_notice);
        }
    };
    see_other(&format!("{}?{outcome}", tenant_path(nav.id, "autopilot/devices")))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EntraDevice {
    id: String,
    device_id: String,
    display_name: String,
    operating_system: String,
    operating_system_version: Option<String>,
    account_enabled: bool,
    trust_type: Option<String>,
    created_date_time: Option<String>,
}

#[derive(Deserialize)]
struct EntraPage {
    value: Vec<EntraDevice>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GroupEntry {
    display_name: String,
    group_types: Vec<String>,
}

/// A page of `devices/{id}/memberOf`: the device's groups.
#[derive(Deserialize)]
struct GroupPage {
    value: Vec<GroupEntry>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// The most groups the detail page asks for, Graph's largest page.
const GROUPS_SHOWN: usize = 999;

/// The device's groups, or why they cannot be shown.
fn device_groups(groups: Option<&Result<GroupPage, Failed>>) -> Markup {
    html! {
        div id="device-groups" {
            @match groups {
                None => p class="hint" { "A device's groups are those of its Entra device object, which it does not have yet." },
                Some(Err(failed)) => div class="notice error" role="alert" { (failed.sentence()) },
                Some(Ok(page)) if page.value.is_empty() => (layout::empty(
                    "This device is in no group.",
                    html! { "GET /devices/{id}/memberOf answered none: add it to an assigned group, or write a dynamic group's rule that selects it." },
                )),
                Some(Ok(page)) => {
                    div class="scroll" {
                        table class="data" {
                            thead { tr {
                                th scope="col" { "Group" }
                                th scope="col" { "Membership" }
                            } }
                            tbody {
                                @for group in &page.value {
                                    tr {
                                        td { (group.display_name) }
                                        td {
                                            @if group.group_types.iter().any(|t| t == DYNAMIC_MEMBERSHIP) { "Dynamic" } @else { "Assigned" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if page.next_link.is_some() {
                        p class="hint" { "The first " (GROUPS_SHOWN) " groups are shown; the device is in more." }
                    }
                },
            }
        }
    }
}

fn prop(name: &str, value: &str) -> Markup {
    html! {
        dt { (name) }
        dd { @if value.is_empty() { span class="muted" { "none" } } @else { (value) } }
    }
}

/// `GET /_dmsync/console/tenants/{tenant}/autopilot/devices/{id}`.
pub async fn show_device(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let calls = state.calls(&origin);
    if id.parse::<uuid::Uuid>().is_err() {
        return layout::not_found();
    }
    let device: Result<DeviceEntry, Failed> =
        calls.graph_get(nav.id, &format!("{DEVICES}/{id}?$expand=deploymentProfile")).await;
    let device = match device {
        Ok(device) => device,
        Err(failed) => return super::tenants::failed_page(&failed),
    };
    let entra_id = device.azure_active_directory_device_id.parse::<uuid::Uuid>().ok().filter(|u| !u.is_nil());
    let entra: Option<Result<EntraPage, Failed>> = match entra_id {
        Some(device_id) => {
            let filter = form_urlencoded::Serializer::new(String::new())
                .append_pair("$filter", &format!("deviceId eq '{device_id}'"))
                .finish();
            Some(calls.graph_get(nav.id, &format!("/v1.0/devices?{filter}")).await)
        }
        None => None,
    };
    // The groups of the one Entra object that has this device id (its object `id`).
    let object_id = match &entra {
        Some(Ok(page)) => page.value.first().map(|object| object.id.clone()),
        _ => None,
    };
    let groups: Option<Result<GroupPage, Failed>> = match object_id {
        Some(object) => {
            let path = format!("/v1.0/devices/{object}/memberOf?$top={GROUPS_SHOWN}&$select=id,displayName,groupTypes");
            Some(calls.graph_get(nav.id, &path).await)
        }
        None => None,
    };
    let content = html! {
        p { a href=(tenant_path(nav.id, "autopilot/devices")) { "← All Autopilot devices" } }
        section class="card" aria-labelledby="device-heading" {
            h2 id="device-heading" { "Windows Autopilot device" }
            dl class="props" id="device-props" {
                (prop("Serial number", &device.serial_number))
                (prop("Manufacturer", &device.manufacturer))
                (prop("Model", &device.model))
                (prop("Group tag", &device.group_tag))
                (prop("Purchase order", &device.purchase_order_identifier))
                (prop("Product key", &device.product_key))
                (prop("System family", &device.system_family))
                (prop("SKU number", &device.sku_number))
                (prop("Enrollment state", &device.enrollment_state))
                dt { "Profile status" } dd { (layout::badge(&device.deployment_profile_assignment_status)) }
                (prop("Profile status detail", &device.deployment_profile_assignment_detailed_status))
                (prop("Assigned profile", device.deployment_profile.as_ref().map_or("", |p| p.display_name.as_str())))
                dt { "Profile assigned" } dd { (layout::graph_time(device.deployment_profile_assigned_date_time.as_deref())) }
                (prop("Device name", &device.display_name))
                (prop("User", &device.user_principal_name))
                dt { "Last contact" } dd { (layout::graph_time(device.last_contacted_date_time.as_deref())) }
                (prop("Intune device id", &device.managed_device_id))
                (prop("Entra device id", &device.azure_active_directory_device_id))
                (prop("Autopilot id", &device.id))
            }
        }
        section class="card" aria-labelledby="entra-heading" {
            h2 id="entra-heading" { "Entra device object" }
            @match &entra {
                None => (layout::empty("No Entra device yet.", html! { "The device gets one when a sync registers it." })),
                Some(Err(failed)) => div class="notice error" role="alert" { (failed.sentence()) },
                Some(Ok(page)) if page.value.is_empty() => (layout::empty(
                    "No Entra device has this device id.",
                    html! { "GET /devices?$filter=deviceId eq '" (device.azure_active_directory_device_id) "' answered none." },
                )),
                Some(Ok(page)) => @for entra in &page.value {
                    dl class="props" id="entra-props" {
                        (prop("Display name", &entra.display_name))
                        (prop("Device id", &entra.device_id))
                        (prop("Object id", &entra.id))
                        (prop("Operating system", format!("{} {}", entra.operating_system, entra.operating_system_version.as_deref().unwrap_or("")).trim()))
                        (prop("Trust type", entra.trust_type.as_deref().unwrap_or("")))
                        (prop("Enabled", if entra.account_enabled { "yes" } else { "no" }))
                        dt { "Created" } dd { (layout::graph_time(entra.created_date_time.as_deref())) }
                    }
                },
            }
            h3 { "Groups" }
            (device_groups(groups.as_ref()))
        }
    };
    let title = format!("Device {}", device.serial_number);
    let shell = Shell { title: &title, session: &session, section: Section::Devices, tenant: Some(&nav) };
    layout::page(StatusCode::OK, shell, None, content)
}
