//! The deployment profiles pages: a tenant's Windows Autopilot deployment profiles, a form to
//! create one, and a profile's page with its assignments and where its devices stand
//! (`/beta/deviceManagement/windowsAutopilotDeploymentProfiles`, its `assignments`, and the
//! devices' `deploymentProfileAssignmentStatus`), with a chart drawn on the server.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use dmsync_core::TenantId;
use dmsync_graph::deployment_profiles::{
    ACTIVE_DIRECTORY_PROFILE_TYPE, ALL_DEVICES_TARGET_TYPE, AZURE_AD_PROFILE_TYPE, EXCLUSION_GROUP_TARGET_TYPE,
    GROUP_TARGET_TYPE,
};

use super::client::{Calls, Collected, Failed, Origin, collect};
use super::layout::{self, Notice, Section, Shell, TenantNav, failed_alert, graph_time, tenant_path};
use super::session::{Posted, Session};
use super::tenants::ConsoleTenant;
use super::{ConsoleState, see_other};

const PROFILES: &str = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";

/// How often the devices' status region asks again while an assignment is being processed.
const PENDING_REFRESH_MS: u32 = 2000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    device_name_template: String,
    created_date_time: Option<String>,
    last_modified_date_time: Option<String>,
    #[serde(default)]
    assignments: Vec<Assignment>,
}

#[derive(Deserialize)]
struct Assignment {
    id: String,
    target: Target,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    group_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    id: String,
    display_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Device {
    id: String,
    #[serde(default)]
    serial_number: String,
    #[serde(default)]
    group_tag: String,
    #[serde(default)]
    display_name: String,
    deployment_profile_assignment_status: Option<String>,
    deployment_profile_assigned_date_time: Option<String>,
    intended_deployment_profile: Option<ProfileRef>,
}

#[derive(Deserialize)]
struct ProfileRef {
    id: String,
}

/// `windowsAutopilotProfileAssignmentStatus`, in Graph's spelling (typo included), in the order
/// the chart lists them.
const STATUSES: &[&str] =
    &["pending", "assignedUnkownSyncState", "assignedInSync", "assignedOutOfSync", "failed", "notAssigned", "unknown"];

fn profile_kind(odata_type: &str) -> &'static str {
    if odata_type.eq_ignore_ascii_case(ACTIVE_DIRECTORY_PROFILE_TYPE) {
        "Hybrid Microsoft Entra joined"
    } else {
        "Microsoft Entra joined"
    }
}

fn profile_path(tenant: TenantId, id: &str) -> String {
    tenant_path(tenant, &format!("profiles/{id}"))
}

/// A profile id as it may appear in a Graph path: a GUID.
fn checked_id(id: &str) -> Option<String> {
    id.parse::<uuid::Uuid>().ok().map(|u| u.to_string())
}

fn render_list(
    session: &Session,
    tenant: &TenantNav,
    profiles: Result<Collected<Profile>, Failed>,
    form: &NewProfile,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let content = html! {
        section class="card" aria-labelledby="profiles-heading" {
            h2 id="profiles-heading" { "All profiles" }
            @match &profiles {
                Err(failed) => (failed_alert(failed)),
                Ok(list) if list.items.is_empty() => (layout::empty(
                    &format!("No deployment profiles in {} yet.", tenant.domain),
                    html! { "Create one below, or with " code { "POST " (PROFILES) } "." },
                )),
                Ok(list) => {
                    table class="data" {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Join type" } th scope="col" { "Device name template" }
                            th scope="col" { "Assignments" } th scope="col" { "Created" }
                        } }
                        tbody {
                            @for profile in &list.items {
                                tr {
                                    td { a href=(profile_path(tenant.id, &profile.id)) { (profile.display_name) } }
                                    td { (profile_kind(&profile.odata_type)) }
                                    td class="mono" { (profile.device_name_template) }
                                    td { (profile.assignments.len()) }
                                    td { (graph_time(profile.created_date_time.as_deref())) }
                                }
                            }
                        }
                    }
                    @if list.truncated { p class="hint" { "Only the first pages are shown." } }
                }
            }
        }
        section class="card" aria-labelledby="create-heading" {
            h2 id="create-heading" { "Create a profile" }
            form method="post" class="stack" {
                (layout::csrf_field(session))
                label { "Name" input name="displayName" required maxlength="200" value=(form.display_name); }
                label { "Description" input name="description" value=(form.description); }
                label {
                    "Device name template (15 characters at most; %SERIAL%, %RAND:x%)"
                    input name="deviceNameTemplate" value=(form.device_name_template) placeholder="PC-%SERIAL%";
                }
                fieldset class="choices" {
                    legend { "Join type" }
                    label class="choice" {
                        input type="radio" name="kind" value="azureAD" checked[form.kind != "activeDirectory"];
                        " Microsoft Entra joined"
                    }
                    label class="choice" {
                        input type="radio" name="kind" value="activeDirectory" checked[form.kind == "activeDirectory"];
                        " Hybrid Microsoft Entra joined"
                    }
                }
                div { button type="submit" { "Create profile" } }
            }
        }
    };
    let shell = Shell { title: "Deployment profiles", session, section: Section::Profiles, tenant: Some(tenant) };
    layout::page(status, shell, notice, content)
}

/// `GET /_dmsync/console/tenants/{tenant}/profiles`.
pub async fn list_profiles(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
) -> Response {
    let calls = state.calls(&origin);
    let profiles = collect(&calls, tenant.id, &format!("{PROFILES}?$expand=assignments")).await;
    render_list(&session, &tenant, profiles, &NewProfile::default(), None, StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NewProfile {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    device_name_template: String,
    #[serde(default)]
    kind: String,
}

/// `POST /_dmsync/console/tenants/{tenant}/profiles`: `POST …/windowsAutopilotDeploymentProfiles`,
/// then the new profile's page. A refusal shows Graph's message above the form as it was filled.
pub async fn create_profile(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    posted: Posted<NewProfile>,
) -> Response {
    let calls = state.calls(&origin);
    let form = &posted.form;
    let odata_type = if form.kind == "activeDirectory" { ACTIVE_DIRECTORY_PROFILE_TYPE } else { AZURE_AD_PROFILE_TYPE };
    let mut body = serde_json::json!({
        "@odata.type": odata_type,
        "displayName": form.display_name.trim(),
        "description": form.description.trim(),
    });
    if !form.device_name_template.trim().is_empty() {
        body["deviceNameTemplate"] = form.device_name_template.trim().into();
    }
    let created = calls
        .graph_send(tenant.id, Method::POST, PROFILES, &body)
        .await
        .and_then(|bytes| super::client::read::<Profile>(&bytes));
    match created {
        Ok(profile) => see_other(&format!("{}?created=1", profile_path(tenant.id, &profile.id))),
        Err(failed) => {
            let profiles = collect(&calls, tenant.id, &format!("{PROFILES}?$expand=assignments")).await;
            let notice = Some(Notice::Error(failed.sentence()));
            render_list(&posted.session, &tenant, profiles, form, notice, StatusCode::BAD_REQUEST)
        }
    }
}

/// What a profile's page shows about its devices.
struct DeviceStatus {
    devices: Vec<Device>,
    truncated: bool,
}

impl DeviceStatus {
    fn count(&self, status: &str) -> usize {
        self.devices.iter().filter(|d| d.deployment_profile_assignment_status.as_deref() == Some(status)).count()
    }
}

/// The devices the profile is intended for (pending, assigned or failed), read from the device
/// list with `intendedDeploymentProfile` expanded: `assignedDevices` alone would miss the pending
/// and failed ones.
async fn device_status(calls: &Calls<'_>, tenant: TenantId, profile: &str) -> Result<DeviceStatus, Failed> {
    let first = "/beta/deviceManagement/windowsAutopilotDeviceIdentities\
                 ?$filter=deploymentProfileAssignmentStatus%20ne%20'notAssigned'\
                 &$select=id,serialNumber,groupTag,displayName,deploymentProfileAssignmentStatus,deploymentProfileAssignedDateTime\
                 &$expand=intendedDeploymentProfile&$top=1000";
    let collected: Collected<Device> = collect(calls, tenant, first).await?;
    let devices = collected
        .items
        .into_iter()
        .filter(|d| d.intended_deployment_profile.as_ref().is_some_and(|p| p.id == profile))
        .collect();
    Ok(DeviceStatus { devices, truncated: collected.truncated })
}

/// Devices by status as horizontal bars, drawn on the server. The bars take their colour from
/// the stylesheet (`.chart .status-…`), the same hue as each status's badge.
fn status_chart(status: &DeviceStatus) -> Markup {
    let rows: Vec<(&str, usize)> = STATUSES.iter().map(|s| (*s, status.count(s))).filter(|(_, n)| *n > 0).collect();
    let most = rows.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let (label_width, bar_width, row_height) = (190usize, 300usize, 28usize);
    let height = rows.len() * row_height + 4;
    let width = label_width + bar_width + 60;
    let summary: Vec<String> = rows.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    html! {
        svg class="chart" id="status-chart" role="img" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } aria-labelledby="status-chart-title" {
            title id="status-chart-title" { "Devices by assignment status: " (summary.join(", ")) }
            @for (index, (name, count)) in rows.iter().enumerate() {
                @let y = index * row_height + 2;
                @let length = (count * bar_width).div_ceil(most).max(2);
                text x=(label_width - 8) y=(y + 18) text-anchor="end" { (name) }
                rect class={ "bar status-" (name) } x=(label_width) y=(y + 4) width=(length) height="18" rx="2" {}
                text x=(label_width + length + 6) y=(y + 18) class="count" { (count) }
            }
        }
    }
}

fn status_region(profile: &Profile, status: &Result<DeviceStatus, Failed>) -> Markup {
    // Refreshes while the engine has work to show: a device pending, or assignments it may not
    // have taken up yet (none of the profile's devices known).
    let refresh = match status {
        Ok(status) => status.count("pending") > 0 || (!profile.assignments.is_empty() && status.devices.is_empty()),
        Err(_) => false,
    };
    html! {
        section class="card" id="profile-status" aria-labelledby="status-heading" aria-live="polite"
            data-refresh=[refresh.then_some(PENDING_REFRESH_MS)] {
            h2 id="status-heading" { "Devices" }
            @match status {
                Err(failed) => (failed_alert(failed)),
                Ok(status) if status.devices.is_empty() => (layout::empty(
                    "No device is under this profile.",
                    if profile.assignments.is_empty() {
                        html! { "Assign the profile to a group with devices, or to all devices." }
                    } else {
                        html! { "Devices in the assigned groups show here once the assignment engine takes them up." }
                    },
                )),
                Ok(status) => {
                    div class="chart-box" { (status_chart(status)) }
                    table class="data" id="profile-devices" {
                        thead { tr {
                            th scope="col" { "Serial number" } th scope="col" { "Group tag" } th scope="col" { "Device name" }
                            th scope="col" { "Profile status" } th scope="col" { "Assigned" }
                        } }
                        tbody {
                            @for device in &status.devices {
                                tr data-device=(device.id) {
                                    td class="mono" { (device.serial_number) }
                                    td { (device.group_tag) }
                                    td { (device.display_name) }
                                    td { (layout::badge(device.deployment_profile_assignment_status.as_deref().unwrap_or("unknown"))) }
                                    td { (graph_time(device.deployment_profile_assigned_date_time.as_deref())) }
                                }
                            }
                        }
                    }
                    @if status.truncated { p class="hint" { "Only the first devices are shown." } }
                }
            }
            @if refresh { p class="hint" { "Assignment in progress; this list refreshes itself. Advance the " a href={ (super::BASE) "/clock" } { "Clock" } " to bring it forward." } }
        }
    }
}

fn target_words(target: &Target, groups: &[Group]) -> (String, String) {
    let group_name = || {
        let id = target.group_id.clone().unwrap_or_default();
        groups.iter().find(|g| g.id == id).map_or_else(|| format!("group {id} (not found)"), |g| g.display_name.clone())
    };
    let kind = target.odata_type.as_str();
    if kind.eq_ignore_ascii_case(ALL_DEVICES_TARGET_TYPE) {
        ("Included".into(), "All devices".into())
    } else if kind.eq_ignore_ascii_case(EXCLUSION_GROUP_TARGET_TYPE) {
        ("Excluded".into(), group_name())
    } else if kind.eq_ignore_ascii_case(GROUP_TARGET_TYPE) {
        ("Included".into(), group_name())
    } else {
        ("Other".into(), kind.to_owned())
    }
}

struct Detail {
    profile: Profile,
    groups: Result<Collected<Group>, Failed>,
    status: Result<DeviceStatus, Failed>,
}

async fn load_detail(calls: &Calls<'_>, tenant: TenantId, id: &str) -> Result<Detail, Failed> {
    let profile: Profile = calls.graph_get(tenant, &format!("{PROFILES}/{id}?$expand=assignments")).await?;
    let groups = collect(calls, tenant, "/v1.0/groups?$select=id,displayName&$orderby=displayName&$top=999").await;
    let status = device_status(calls, tenant, &profile.id).await;
    Ok(Detail { profile, groups, status })
}

fn render_detail(
    session: &Session,
    tenant: &TenantNav,
    detail: Result<Detail, Failed>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let Ok(detail) = detail else {
        let failed = detail.err().expect("an error");
        let shell = Shell { title: "Deployment profile", session, section: Section::Profiles, tenant: Some(tenant) };
        let code = if failed.status == StatusCode::NOT_FOUND { StatusCode::NOT_FOUND } else { status };
        return layout::page(
            code,
            shell,
            Some(Notice::Error(failed.sentence())),
            html! {
                p { a href=(tenant_path(tenant.id, "profiles")) { "Back to the profiles" } }
            },
        );
    };
    let profile = &detail.profile;
    let no_groups = Vec::new();
    let groups = detail.groups.as_ref().map_or(&no_groups, |g| &g.items);
    let action = |rest: &str| format!("{}/{rest}", profile_path(tenant.id, &profile.id));
    let content = html! {
        p class="crumbs" { a href=(tenant_path(tenant.id, "profiles")) { "Deployment profiles" } " › " (profile.display_name) }
        div class="grid2" {
            section class="card" aria-labelledby="props-heading" {
                h2 id="props-heading" { "Properties" }
                dl class="props" {
                    dt { "Join type" } dd { (profile_kind(&profile.odata_type)) }
                    dt { "Description" } dd { @if profile.description.is_empty() { span class="muted" { "none" } } @else { (profile.description) } }
                    dt { "Device name template" } dd class="mono" { @if profile.device_name_template.is_empty() { span class="muted" { "none" } } @else { (profile.device_name_template) } }
                    dt { "Id" } dd class="mono" { (profile.id) }
                    dt { "Created" } dd { (graph_time(profile.created_date_time.as_deref())) }
                    dt { "Last modified" } dd { (graph_time(profile.last_modified_date_time.as_deref())) }
                }
            }
            section class="card" aria-labelledby="assignments-heading" {
                h2 id="assignments-heading" { "Assignments" }
                @if profile.assignments.is_empty() {
                    (layout::empty("Not assigned.", html! { "Assign it to a group or to all devices below." }))
                } @else {
                    table class="data" id="assignments" {
                        thead { tr { th scope="col" { "Mode" } th scope="col" { "Target" } th scope="col" { span class="visually-hidden" { "Remove" } } } }
                        tbody {
                            @for assignment in &profile.assignments {
                                @let (mode, target) = target_words(&assignment.target, groups);
                                tr {
                                    td { (mode) }
                                    td { (target) }
                                    td {
                                        form method="post" action=(action("assignments/remove")) class="inline"
                                            data-confirm={ "Remove the assignment to " (target) "?" } {
                                            (layout::csrf_field(session))
                                            input type="hidden" name="assignmentId" value=(assignment.id);
                                            button type="submit" class="secondary" aria-label={ "Remove the assignment to " (target) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                h3 { "Assign" }
                @if let Err(failed) = &detail.groups { (failed_alert(failed)) }
                form method="post" action=(action("assignments")) class="toolbar" {
                    (layout::csrf_field(session))
                    label {
                        "Target"
                        select name="target" id="assign-target" required {
                            option value="allDevices" { "All devices" }
                            @for group in groups { option value=(group.id) { (group.display_name) } }
                        }
                    }
                    label {
                        "Mode"
                        select name="mode" {
                            option value="include" { "Include" }
                            option value="exclude" { "Exclude (groups only)" }
                        }
                    }
                    button type="submit" { "Assign" }
                }
                @if groups.is_empty() && detail.groups.is_ok() {
                    p class="hint" { "The tenant has no groups yet; create one with " code { "POST /v1.0/groups" } "." }
                }
            }
        }
        (status_region(profile, &detail.status))
    };
    let shell = Shell { title: &profile.display_name, session, section: Section::Profiles, tenant: Some(tenant) };
    layout::page(status, shell, notice, content)
}

#[derive(Deserialize)]
pub struct DetailQuery {
    created: Option<String>,
    assigned: Option<String>,
    removed: Option<String>,
}

/// `GET /_dmsync/console/tenants/{tenant}/profiles/{id}`.
pub async fn show_profile(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<DetailQuery>,
) -> Response {
    let Some(id) = checked_id(&id) else { return layout::not_found() };
    let calls = state.calls(&origin);
    let detail = load_detail(&calls, tenant.id, &id).await;
    let notice = if query.created.is_some() {
        Some(Notice::Success("Created the profile.".into()))
    } else if query.assigned.is_some() {
        Some(Notice::Info("Assigned. Devices show as pending until the assignment engine assigns them.".into()))
    } else if query.removed.is_some() {
        Some(Notice::Success("Removed the assignment.".into()))
    } else {
        None
    };
    render_detail(&session, &tenant, detail, notice, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct Assign {
    target: String,
    #[serde(default)]
    mode: String,
}

/// `POST …/profiles/{id}/assignments`: `POST …/windowsAutopilotDeploymentProfiles/{id}/assignments`
/// with a group (included or excluded) or All Devices as the target.
pub async fn assign_profile(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    Path((_, id)): Path<(String, String)>,
    posted: Posted<Assign>,
) -> Response {
    let Some(id) = checked_id(&id) else { return layout::not_found() };
    let calls = state.calls(&origin);
    let form = &posted.form;
    let target = match (form.target.as_str(), form.mode.as_str()) {
        ("allDevices", "exclude") => Err("All devices can only be included; exclude a group instead.".to_owned()),
        ("allDevices", _) => Ok(serde_json::json!({ "@odata.type": ALL_DEVICES_TARGET_TYPE })),
        (group, mode) => {
            let kind = if mode == "exclude" { EXCLUSION_GROUP_TARGET_TYPE } else { GROUP_TARGET_TYPE };
            Ok(serde_json::json!({ "@odata.type": kind, "groupId": group }))
        }
    };
    let result = match target {
        Ok(target) => calls
            .graph_send(
                tenant.id,
                Method::POST,
                &format!("{PROFILES}/{id}/assignments"),
                &serde_json::json!({
                    "target": target
                }),
            )
            .await
            .map_err(|failed| failed.sentence()),
        Err(message) => Err(message),
    };
    match result {
        Ok(_) => see_other(&format!("{}?assigned=1", profile_path(tenant.id, &id))),
        Err(message) => {
            let detail = load_detail(&calls, tenant.id, &id).await;
            render_detail(&posted.session, &tenant, detail, Some(Notice::Error(message)), StatusCode::BAD_REQUEST)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unassign {
    assignment_id: String,
}

/// `POST …/profiles/{id}/assignments/remove`: `DELETE …/assignments/{assignmentId}`.
pub async fn remove_assignment(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(tenant): ConsoleTenant,
    Path((_, id)): Path<(String, String)>,
    posted: Posted<Unassign>,
) -> Response {
    let Some(id) = checked_id(&id) else { return layout::not_found() };
    let calls = state.calls(&origin);
    let assignment: String =
        form_urlencoded::byte_serialize(posted.form.assignment_id.trim().as_bytes()).collect::<String>();
    let path = format!("{PROFILES}/{id}/assignments/{assignment}");
    match calls.send_empty(Method::DELETE, &path, super::client::As::Tenant(tenant.id)).await {
        Ok(_) => see_other(&format!("{}?removed=1", profile_path(tenant.id, &id))),
        Err(failed) => {
            let detail = load_detail(&calls, tenant.id, &id).await;
            let notice = Some(Notice::Error(failed.sentence()));
            render_detail(&posted.session, &tenant, detail, notice, StatusCode::BAD_REQUEST)
        }
    }
}
