//! `deviceManagement/windowsAutopilotDeploymentProfiles` (beta only, as in Graph): the two
//! profile types, their assignments, the devices a profile is assigned to, and a device's
//! `deploymentProfile` and `intendedDeploymentProfile`. The rules clients code around (one All
//! Devices profile, no delete while assigned, the device name template, 350 profiles) answer
//! in Intune's error shape; docs/GRAPH-COMPAT.md, "Deployment profiles", lists their messages.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dmsync_core::deployment_profiles::{
    AssignmentTarget, DeploymentProfile, EnrollmentStatusScreen, MAX_DESCRIPTION_CHARS, MAX_DISPLAY_NAME_CHARS,
    MAX_PROFILES_PER_TENANT, ProfileAssignment, ProfileContent, ProfileField, ProfileKind, ProfileRefusal,
    ProfileSettings, check_device_name_template,
};
use dmsync_core::permissions::Operation;
use dmsync_core::{AutopilotDeviceId, DeploymentProfileId, GroupId, RoleScopeTagId, TenantId};
use dmsync_graph::ApiVersion;
use dmsync_graph::deployment_profiles::{
    ACTIVE_DIRECTORY_PROFILE_TYPE, ALL_DEVICES_TARGET_TYPE, AZURE_AD_PROFILE_TYPE, AssignmentTarget as WireTarget,
    EXCLUSION_GROUP_TARGET_TYPE, GROUP_TARGET_TYPE, OutOfBoxExperienceSetting, OutOfBoxExperienceSettings,
    WindowsAutopilotDeploymentProfile as WireProfile, WindowsAutopilotDeploymentProfileAssignment as WireAssignment,
    WindowsAutopilotDeploymentProfileAssignmentInput as AssignmentInput,
    WindowsAutopilotDeploymentProfileInput as ProfileInput, WindowsEnrollmentStatusScreenSettings,
};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::{PageWriter, Select};

use super::Version;
use super::autopilot_devices;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BETA, Endpoint, GraphRoute};
use crate::state::AppState;

const SET: &str = "deviceManagement/windowsAutopilotDeploymentProfiles";
const TYPE_NAME: &str = "windowsAutopilotDeploymentProfile";
const PROPERTIES: &[&str] = &[
    "@odata.type",
    "id",
    "displayName",
    "description",
    "language",
    "locale",
    "createdDateTime",
    "lastModifiedDateTime",
    "outOfBoxExperienceSettings",
    "outOfBoxExperienceSetting",
    "enrollmentStatusScreenSettings",
    "extractHardwareHash",
    "hardwareHashExtractionEnabled",
    "deviceNameTemplate",
    "deviceType",
    "enableWhiteGlove",
    "preprovisioningAllowed",
    "roleScopeTagIds",
    "managementServiceAppId",
    "hybridAzureADJoinSkipConnectivityCheck",
];
/// What the list honours: the options of every collection, and `$expand=assignments`, which
/// CIPP sends with `$top=999`.
const LIST_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count", "$expand"];
const GET_OPTIONS: &[&str] = &["$select", "$expand"];
const ASSIGNED_DEVICE_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken"];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BETA,
            SET,
            vec![
                Endpoint::get(
                    list_windows_autopilot_deployment_profiles,
                    OperationDoc::new("listWindowsAutopilotDeploymentProfiles", Answer::Page(schema::<WireProfile>))
                        .query(LIST_OPTIONS),
                ),
                Endpoint::post(
                    create_windows_autopilot_deployment_profile,
                    OperationDoc::new(
                        "createWindowsAutopilotDeploymentProfile",
                        Answer::Created(schema::<WireProfile>),
                    )
                    .body(schema::<ProfileInput>),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeploymentProfiles/{id}",
            vec![
                Endpoint::get(
                    get_windows_autopilot_deployment_profile,
                    OperationDoc::new("getWindowsAutopilotDeploymentProfile", Answer::Entity(schema::<WireProfile>))
                        .query(GET_OPTIONS),
                ),
                Endpoint::patch(
                    update_windows_autopilot_deployment_profile,
                    OperationDoc::new("updateWindowsAutopilotDeploymentProfile", Answer::Entity(schema::<WireProfile>))
                        .body(schema::<ProfileInput>),
                ),
                Endpoint::delete(
                    delete_windows_autopilot_deployment_profile,
                    OperationDoc::new("deleteWindowsAutopilotDeploymentProfile", Answer::NoContent),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeploymentProfiles/{id}/assignments",
            vec![
                Endpoint::get(
                    list_windows_autopilot_deployment_profile_assignments,
                    OperationDoc::new(
                        "listWindowsAutopilotDeploymentProfileAssignments",
                        Answer::Page(schema::<WireAssignment>),
                    ),
                ),
                Endpoint::post(
                    create_windows_autopilot_deployment_profile_assignment,
                    OperationDoc::new(
                        "createWindowsAutopilotDeploymentProfileAssignment",
                        Answer::Created(schema::<WireAssignment>),
                    )
                    .body(schema::<AssignmentInput>),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeploymentProfiles/{id}/assignments/{assignmentId}",
            vec![
                Endpoint::get(
                    get_windows_autopilot_deployment_profile_assignment,
                    OperationDoc::new(
                        "getWindowsAutopilotDeploymentProfileAssignment",
                        Answer::Entity(schema::<WireAssignment>),
                    ),
                ),
                Endpoint::delete(
                    delete_windows_autopilot_deployment_profile_assignment,
                    OperationDoc::new("deleteWindowsAutopilotDeploymentProfileAssignment", Answer::NoContent),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeploymentProfiles/{id}/assignedDevices",
            vec![Endpoint::get(
                list_windows_autopilot_deployment_profile_assigned_devices,
                OperationDoc::new(
                    "listWindowsAutopilotDeploymentProfileAssignedDevices",
                    Answer::Page(autopilot_devices::device_schema),
                )
                .query(ASSIGNED_DEVICE_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/deploymentProfile",
            vec![Endpoint::get(
                get_device_deployment_profile,
                OperationDoc::new(
                    "getWindowsAutopilotDeviceIdentityDeploymentProfile",
                    Answer::Entity(schema::<WireProfile>),
                )
                .query(list::ENTITY_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/intendedDeploymentProfile",
            vec![Endpoint::get(
                get_device_intended_deployment_profile,
                OperationDoc::new(
                    "getWindowsAutopilotDeviceIdentityIntendedDeploymentProfile",
                    Answer::Entity(schema::<WireProfile>),
                )
                .query(list::ENTITY_OPTIONS),
            )],
        ),
    ]
}

/// The one place the assignment engine hears that what targets devices may have changed: called
/// after an assignment is created or deleted and after a profile is deleted, once the change is
/// committed: the engine's pass for the tenant is enqueued (coalesced).
pub(crate) async fn assignments_changed(state: &AppState, tenant: TenantId) -> ApiResult<()> {
    crate::jobs::assign_deployment_profiles::schedule_profile_assignment(state, tenant).await?;
    Ok(())
}

fn field(name: &str) -> Option<ProfileField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => ProfileField::Id,
        "displayname" => ProfileField::DisplayName,
        _ => return None,
    })
}

fn sort_value(profile: &DeploymentProfile, field: ProfileField) -> String {
    match field {
        ProfileField::Id => profile.id.to_string(),
        ProfileField::DisplayName => profile.display_name.clone(),
    }
}

fn odata_type(kind: ProfileKind) -> &'static str {
    match kind {
        ProfileKind::AzureAd => AZURE_AD_PROFILE_TYPE,
        ProfileKind::ActiveDirectory => ACTIVE_DIRECTORY_PROFILE_TYPE,
    }
}

/// A profile on the wire: each renamed property under both names, with one value.
pub fn to_wire(profile: &DeploymentProfile) -> WireProfile {
    let s = &profile.settings;
    let oobe = &s.out_of_box_experience;
    WireProfile {
        odata_type: odata_type(profile.kind),
        id: profile.id.to_string(),
        display_name: profile.display_name.clone(),
        description: s.description.clone(),
        language: s.locale.clone(),
        locale: s.locale.clone(),
        created_date_time: profile.created_at.into(),
        last_modified_date_time: profile.updated_at.into(),
        out_of_box_experience_settings: OutOfBoxExperienceSettings {
            hide_privacy_settings: oobe.privacy_settings_hidden,
            hide_eula: oobe.eula_hidden,
            user_type: oobe.user_type.clone(),
            device_usage_type: oobe.device_usage_type.clone(),
            skip_keyboard_selection_page: oobe.keyboard_selection_page_skipped,
            hide_escape_link: oobe.escape_link_hidden,
        },
        out_of_box_experience_setting: OutOfBoxExperienceSetting {
            privacy_settings_hidden: oobe.privacy_settings_hidden,
            eula_hidden: oobe.eula_hidden,
            user_type: oobe.user_type.clone(),
            device_usage_type: oobe.device_usage_type.clone(),
            keyboard_selection_page_skipped: oobe.keyboard_selection_page_skipped,
            escape_link_hidden: oobe.escape_link_hidden,
        },
        enrollment_status_screen_settings: s.enrollment_status_screen.as_ref().map(|e| {
            WindowsEnrollmentStatusScreenSettings {
                odata_type: None,
                hide_installation_progress: e.hide_installation_progress,
                allow_device_use_before_profile_and_app_install_complete: e
                    .allow_device_use_before_profile_and_app_install_complete,
                block_device_setup_retry_by_user: e.block_device_setup_retry_by_user,
                allow_log_collection_on_install_failure: e.allow_log_collection_on_install_failure,
                custom_error_message: e.custom_error_message.clone(),
                install_progress_timeout_in_minutes: e.install_progress_timeout_in_minutes,
                allow_device_use_on_install_failure: e.allow_device_use_on_install_failure,
            }
        }),
        extract_hardware_hash: s.hardware_hash_extraction_enabled,
        hardware_hash_extraction_enabled: s.hardware_hash_extraction_enabled,
        device_name_template: s.device_name_template.clone(),
        device_type: s.device_type.clone(),
        enable_white_glove: s.preprovisioning_allowed,
        preprovisioning_allowed: s.preprovisioning_allowed,
        role_scope_tag_ids: s.role_scope_tag_ids.iter().map(ToString::to_string).collect(),
        management_service_app_id: s.management_service_app_id.clone(),
        hybrid_azure_ad_join_skip_connectivity_check: (profile.kind == ProfileKind::ActiveDirectory)
            .then_some(s.hybrid_azure_ad_join_skip_connectivity_check),
    }
}

/// A profile as JSON, as `$expand` puts it inside another entity (keys sorted, as everywhere).
pub fn expanded_json(profile: &DeploymentProfile) -> ApiResult<String> {
    serde_json::to_value(to_wire(profile))
        .map(|value| value.to_string())
        .map_err(|e| ApiError::Internal(format!("profile serialisation: {e}")))
}

fn assignment_to_wire(assignment: &ProfileAssignment) -> WireAssignment {
    let (odata_type, group_id) = match assignment.target {
        AssignmentTarget::Group(group) => (GROUP_TARGET_TYPE, Some(group.to_string())),
        AssignmentTarget::ExclusionGroup(group) => (EXCLUSION_GROUP_TARGET_TYPE, Some(group.to_string())),
        AssignmentTarget::AllDevices => (ALL_DEVICES_TARGET_TYPE, None),
    };
    WireAssignment {
        id: assignment.id.clone(),
        target: WireTarget {
            odata_type,
            device_and_app_management_assignment_filter_id: None,
            device_and_app_management_assignment_filter_type: "none",
            group_id,
        },
        source: "direct",
        source_id: None,
    }
}

/// The `$expand` of a profile: `assignments` only.
fn profile_expand(query: &ODataQuery) -> ApiResult<bool> {
    let Some(names) = &query.expand else { return Ok(false) };
    for name in names {
        if !name.eq_ignore_ascii_case("assignments") {
            return Err(ApiError::BadRequest(format!("Could not find a property named '{name}' to expand.")));
        }
    }
    Ok(true)
}

/// The `@odata.type` every profile carries, whatever `$select` keeps (it names the derived
/// type), and its expanded assignments.
fn profile_extras(
    profile: &DeploymentProfile,
    assignments: Option<&[ProfileAssignment]>,
) -> ApiResult<Vec<(String, String)>> {
    let mut extras = vec![("@odata.type".to_owned(), format!("\"{}\"", odata_type(profile.kind)))];
    if let Some(assignments) = assignments {
        let mine: Vec<WireAssignment> =
            assignments.iter().filter(|a| a.profile_id == profile.id).map(assignment_to_wire).collect();
        let json = serde_json::to_value(&mine)
            .map(|v| v.to_string())
            .map_err(|e| ApiError::Internal(format!("assignment serialisation: {e}")))?;
        extras.push(("assignments".to_owned(), json));
    }
    Ok(extras)
}

fn borrowed(extras: &[(String, String)]) -> Vec<(&str, &str)> {
    extras.iter().map(|(name, json)| (name.as_str(), json.as_str())).collect()
}

fn profile_id(id: &str) -> ApiResult<DeploymentProfileId> {
    id.parse().map_err(|_| ApiError::NotFound)
}

fn intune_bad_request(message: String) -> ApiError {
    ApiError::IntuneBadRequest { message, phrase: String::new() }
}

/// The errors of a refused write, in Intune's shape.
fn refused(refusal: ProfileRefusal) -> ApiError {
    match refusal {
        ProfileRefusal::NotFound => ApiError::NotFound,
        ProfileRefusal::TooManyProfiles => intune_bad_request(format!(
            "The maximum number of Windows Autopilot deployment profiles ({MAX_PROFILES_PER_TENANT}) has been reached for this tenant"
        )),
        ProfileRefusal::HasAssignments => intune_bad_request(
            "The Windows Autopilot deployment profile is assigned to groups. Remove its assignments before deleting it"
                .into(),
        ),
        ProfileRefusal::AllDevicesTaken(name) => {
            intune_bad_request(format!("Another Profile '{name}' is already assigned to All Devices"))
        }
        ProfileRefusal::DuplicateAssignment => {
            intune_bad_request("The Windows Autopilot deployment profile already has this assignment".into())
        }
    }
}

/// The derived type an `@odata.type` names, with or without the leading `#`, ignoring case.
fn profile_kind(odata_type: &str) -> Option<ProfileKind> {
    let name = odata_type.trim_start_matches('#');
    if name.eq_ignore_ascii_case(&AZURE_AD_PROFILE_TYPE[1..]) {
        Some(ProfileKind::AzureAd)
    } else if name.eq_ignore_ascii_case(&ACTIVE_DIRECTORY_PROFILE_TYPE[1..]) {
        Some(ProfileKind::ActiveDirectory)
    } else {
        None
    }
}

fn unknown_profile_type(odata_type: Option<&str>) -> ApiError {
    intune_bad_request(format!(
        "'{}' is not a type of Windows Autopilot deployment profile that can be created; use {AZURE_AD_PROFILE_TYPE} or {ACTIVE_DIRECTORY_PROFILE_TYPE}",
        odata_type.unwrap_or("")
    ))
}

/// One value of a property that has a deprecated and a current name. Either name alone sets it.
/// When a client sends both (a GET body sent back, as Set-AutopilotProfile does) and they differ,
/// the one that differs from the stored value is the one the client changed; when both differ,
/// the current name wins.
fn pick<T: PartialEq>(stored: T, deprecated: Option<T>, current: Option<T>) -> T {
    match (deprecated, current) {
        (None, None) => stored,
        (Some(value), None) | (None, Some(value)) => value,
        (Some(old), Some(new)) if old != new && new == stored => old,
        (Some(_), Some(new)) => new,
    }
}

/// Applies a client's body to `base` (the defaults on create, the stored profile on PATCH).
fn merge(base: &ProfileContent, input: &ProfileInput) -> ApiResult<ProfileContent> {
    let mut settings = base.settings.clone();
    let mut display_name = base.display_name.clone();
    if let Some(name) = &input.display_name {
        display_name = name.clone();
    }
    if let Some(description) = &input.description {
        settings.description = description.clone();
    }
    settings.locale = pick(settings.locale, input.language.clone(), input.locale.clone());
    settings.hardware_hash_extraction_enabled = pick(
        settings.hardware_hash_extraction_enabled,
        input.extract_hardware_hash,
        input.hardware_hash_extraction_enabled,
    );
    settings.preprovisioning_allowed =
        pick(settings.preprovisioning_allowed, input.enable_white_glove, input.preprovisioning_allowed);
    let old = input.out_of_box_experience_settings.clone().unwrap_or_default();
    let new = input.out_of_box_experience_setting.clone().unwrap_or_default();
    let oobe = &mut settings.out_of_box_experience;
    oobe.privacy_settings_hidden =
        pick(oobe.privacy_settings_hidden, old.hide_privacy_settings, new.privacy_settings_hidden);
    oobe.eula_hidden = pick(oobe.eula_hidden, old.hide_eula, new.eula_hidden);
    oobe.user_type = pick(
        oobe.user_type.clone(),
        old.user_type.map(|t| t.as_str().to_owned()),
        new.user_type.map(|t| t.as_str().to_owned()),
    );
    oobe.device_usage_type = pick(
        oobe.device_usage_type.clone(),
        old.device_usage_type.map(|t| t.as_str().to_owned()),
        new.device_usage_type.map(|t| t.as_str().to_owned()),
    );
    oobe.keyboard_selection_page_skipped = pick(
        oobe.keyboard_selection_page_skipped,
        old.skip_keyboard_selection_page,
        new.keyboard_selection_page_skipped,
    );
    oobe.escape_link_hidden = pick(oobe.escape_link_hidden, old.hide_escape_link, new.escape_link_hidden);
    if let Some(esp) = &input.enrollment_status_screen_settings {
        settings.enrollment_status_screen = Some(EnrollmentStatusScreen {
            hide_installation_progress: esp.hide_installation_progress,
            allow_device_use_before_profile_and_app_install_complete: esp
                .allow_device_use_before_profile_and_app_install_complete,
            block_device_setup_retry_by_user: esp.block_device_setup_retry_by_user,
            allow_log_collection_on_install_failure: esp.allow_log_collection_on_install_failure,
            custom_error_message: esp.custom_error_message.clone(),
            install_progress_timeout_in_minutes: esp.install_progress_timeout_in_minutes,
            allow_device_use_on_install_failure: esp.allow_device_use_on_install_failure,
        });
    }
    if let Some(template) = &input.device_name_template {
        settings.device_name_template = template.clone();
    }
    if let Some(device_type) = input.device_type {
        settings.device_type = device_type.as_str().to_owned();
    }
    if let Some(ids) = &input.role_scope_tag_ids {
        let parsed: Result<Vec<RoleScopeTagId>, _> = ids.iter().map(|id| id.parse()).collect();
        settings.role_scope_tag_ids =
            parsed.map_err(|_| intune_bad_request("roleScopeTagIds must name role scope tags by their ids".into()))?;
        // An empty list, which the PowerShell module and the Graph examples send, means the
        // Default tag, as in Intune, where every object has at least one tag.
        if settings.role_scope_tag_ids.is_empty() {
            settings.role_scope_tag_ids.push(RoleScopeTagId::DEFAULT);
        }
        settings.role_scope_tag_ids.dedup();
    }
    if let Some(app) = &input.management_service_app_id {
        settings.management_service_app_id = app.clone();
    }
    if let Some(skip) = input.hybrid_azure_ad_join_skip_connectivity_check {
        settings.hybrid_azure_ad_join_skip_connectivity_check = skip;
    }
    Ok(ProfileContent { kind: base.kind, display_name, settings })
}

/// The checks every profile's content passes, on create and on update.
async fn validate(state: &AppState, tenant: TenantId, content: &ProfileContent) -> ApiResult<()> {
    let name = content.display_name.trim();
    if name.is_empty() {
        return Err(intune_bad_request("The Windows Autopilot deployment profile's displayName is required".into()));
    }
    if content.display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(intune_bad_request(format!(
            "The Windows Autopilot deployment profile's displayName can be at most {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    if content.settings.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(intune_bad_request(format!(
            "The Windows Autopilot deployment profile's description can be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let template = &content.settings.device_name_template;
    check_device_name_template(template).map_err(|problem| {
        intune_bad_request(format!("The device name template '{template}' is not valid: {}", problem.reason()))
    })?;
    for tag in &content.settings.role_scope_tag_ids {
        if state.store().role_scope_tag(tenant, *tag).await?.is_none() {
            return Err(intune_bad_request(format!("The role scope tag '{tag}' does not exist")));
        }
    }
    Ok(())
}

/// Reads a body as JSON, or the lenient JSON the PowerShell module writes, bounded.
fn read_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::BadRequest("The request body is empty; a JSON object is required.".into()));
    }
    dmsync_graph::bounded::from_lenient_slice(body).map_err(ApiError::from)
}

fn profile_context(version: ApiVersion, select: Option<&[String]>) -> String {
    context_url(version, &list::entity_fragment(SET, select))
}

fn profile_body(status: StatusCode, version: ApiVersion, profile: &DeploymentProfile) -> ApiResult<ODataBody> {
    let extras = profile_extras(profile, None)?;
    ODataBody::entity(status, &profile_context(version, None), &to_wire(profile), Select::ALL, &borrowed(&extras))
}

/// List windowsAutopilotDeploymentProfiles, keyset-paged, with `$expand=assignments`.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofile-list?view=graph-rest-beta
async fn list_windows_autopilot_deployment_profiles(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    let PageRequest { version, query, ctx, .. } = &request;
    let (version, raw_query) = (*version, request.raw_query());
    let page = state.cached_page(tenant, ctx.url(), async || {
        query.refuse_unsupported(LIST_OPTIONS)?;
        let select = query.select.as_deref();
        list::check_select(select, PROPERTIES, TYPE_NAME)?;
        let expand = profile_expand(query)?;
        let page = list::page_query(query, field)?;
        let mut profiles = state.store().list_deployment_profiles(tenant, &page).await?;
        let next = list::finish_page(&mut profiles, &page, ctx, version, SET, raw_query, |p, field| {
            (p.id.into(), field.map(|f| sort_value(p, f)))
        });
        let count = match query.count {
            Some(true) => Some(state.store().count_deployment_profiles(tenant, page.filter.as_ref()).await?),
            _ => None,
        };
        let assignments = match expand {
            true => {
                let ids: Vec<DeploymentProfileId> = profiles.iter().map(|p| p.id).collect();
                Some(state.store().list_profile_assignments(tenant, &ids).await?)
            }
            false => None,
        };
        let context = context_url(version, &list::collection_fragment(SET, select));
        let mut body = PageWriter::new(&context, count, next.as_deref());
        for profile in &profiles {
            let extras = profile_extras(profile, assignments.as_deref())?;
            body.push(&to_wire(profile), Select::new(select), &borrowed(&extras))?;
        }
        Ok(ODataBody::ok(body.finish()))
    });
    page.await
}

/// Get windowsAutopilotDeploymentProfile, with `$select` and `$expand=assignments`.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofile-get?view=graph-rest-beta
async fn get_windows_autopilot_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    query.refuse_unsupported(GET_OPTIONS)?;
    let select = query.select.as_deref();
    list::check_select(select, PROPERTIES, TYPE_NAME)?;
    let expand = profile_expand(&query)?;
    let id = profile_id(&id)?;
    let profile = state.store().deployment_profile(tenant, id).await?.ok_or(ApiError::NotFound)?;
    let assignments = match expand {
        true => Some(state.store().list_profile_assignments(tenant, &[id]).await?),
        false => None,
    };
    let extras = profile_extras(&profile, assignments.as_deref())?;
    ODataBody::entity(
        StatusCode::OK,
        &profile_context(version.0, select),
        &to_wire(&profile),
        Select::new(select),
        &borrowed(&extras),
    )
}

/// Create windowsAutopilotDeploymentProfile: 201 with the profile. `@odata.type` names one of
/// the two derived types, with or without its `#`.
/// https://learn.microsoft.com/graph/api/intune-enrollment-azureadwindowsautopilotdeploymentprofile-create?view=graph-rest-beta
async fn create_windows_autopilot_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    body: Bytes,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::WriteDeploymentProfiles)?.tenant_id();
    let input: ProfileInput = read_body(&body)?;
    let kind = input
        .odata_type
        .as_deref()
        .and_then(profile_kind)
        .ok_or_else(|| unknown_profile_type(input.odata_type.as_deref()))?;
    let base = ProfileContent { kind, display_name: String::new(), settings: ProfileSettings::default() };
    let content = merge(&base, &input)?;
    validate(&state, tenant, &content).await?;
    let profile = state.store().create_deployment_profile(tenant, &content, state.now()).await?.map_err(refused)?;
    profile_body(StatusCode::CREATED, version.0, &profile)
}

/// Update windowsAutopilotDeploymentProfile: 200 with the profile, as IntuneCD expects (the page
/// documents 200 with the object). A GET body sent back whole is accepted: its read-only
/// properties are ignored and its `@odata.type` must name the profile's own type.
/// https://learn.microsoft.com/graph/api/intune-enrollment-azureadwindowsautopilotdeploymentprofile-update?view=graph-rest-beta
async fn update_windows_autopilot_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::WriteDeploymentProfiles)?.tenant_id();
    let id = profile_id(&id)?;
    let input: ProfileInput = read_body(&body)?;
    let stored = state.store().deployment_profile(tenant, id).await?.ok_or(ApiError::NotFound)?;
    if let Some(odata_type) = input.odata_type.as_deref()
        && profile_kind(odata_type) != Some(stored.kind)
    {
        return Err(intune_bad_request(format!(
            "The profile is a {}; its type cannot change to '{odata_type}'",
            odata_type_name(stored.kind)
        )));
    }
    let base = ProfileContent { kind: stored.kind, display_name: stored.display_name, settings: stored.settings };
    let content = merge(&base, &input)?;
    validate(&state, tenant, &content).await?;
    let profile = state.store().update_deployment_profile(tenant, id, &content, state.now()).await?.map_err(refused)?;
    profile_body(StatusCode::OK, version.0, &profile)
}

fn odata_type_name(kind: ProfileKind) -> &'static str {
    &odata_type(kind)[1..]
}

/// Delete windowsAutopilotDeploymentProfile: 204. A profile that still has assignments is
/// refused; clients delete the assignments first.
/// https://learn.microsoft.com/graph/api/intune-enrollment-azureadwindowsautopilotdeploymentprofile-delete?view=graph-rest-beta
async fn delete_windows_autopilot_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteDeploymentProfiles)?.tenant_id();
    state.store().delete_deployment_profile(tenant, profile_id(&id)?).await?.map_err(refused)?;
    assignments_changed(&state, tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `deviceManagement/windowsAutopilotDeploymentProfiles('{id}')/assignments`, the context
/// fragment IntuneCD reads the profile's id from inside a `$batch`.
fn assignments_fragment(profile: DeploymentProfileId) -> String {
    format!("{SET}('{profile}')/assignments")
}

/// List windowsAutopilotDeploymentProfileAssignments: every assignment of the profile, in one
/// page.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofileassignment-list?view=graph-rest-beta
async fn list_windows_autopilot_deployment_profile_assignments(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    query.refuse_unsupported(&[])?;
    let id = profile_id(&id)?;
    state.store().deployment_profile(tenant, id).await?.ok_or(ApiError::NotFound)?;
    let assignments = state.store().list_profile_assignments(tenant, &[id]).await?;
    let mut body = PageWriter::new(&context_url(version.0, &assignments_fragment(id)), None, None);
    for assignment in &assignments {
        body.push(&assignment_to_wire(assignment), Select::ALL, &[])?;
    }
    Ok(ODataBody::ok(body.finish()))
}

/// Get windowsAutopilotDeploymentProfileAssignment.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofileassignment-get?view=graph-rest-beta
async fn get_windows_autopilot_deployment_profile_assignment(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path((id, assignment)): Path<(String, String)>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    query.refuse_unsupported(&[])?;
    let id = profile_id(&id)?;
    let assignment = state.store().profile_assignment(tenant, id, &assignment).await?.ok_or(ApiError::NotFound)?;
    let context = context_url(version.0, &format!("{}/$entity", assignments_fragment(id)));
    ODataBody::entity(StatusCode::OK, &context, &assignment_to_wire(&assignment), Select::ALL, &[])
}

/// The target a client's assignment names.
fn assignment_target(input: &AssignmentInput) -> ApiResult<AssignmentTarget> {
    let target =
        input.target.as_ref().ok_or_else(|| intune_bad_request("The assignment's target is required".into()))?;
    let odata_type = target.odata_type.as_deref().unwrap_or("");
    let name = odata_type.trim_start_matches('#');
    let is = |wire: &str| name.eq_ignore_ascii_case(&wire[1..]);
    let group = || -> ApiResult<GroupId> {
        target
            .group_id
            .as_deref()
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| intune_bad_request("A group assignment target needs the groupId of a group".into()))
    };
    if is(GROUP_TARGET_TYPE) {
        Ok(AssignmentTarget::Group(group()?))
    } else if is(EXCLUSION_GROUP_TARGET_TYPE) {
        Ok(AssignmentTarget::ExclusionGroup(group()?))
    } else if is(ALL_DEVICES_TARGET_TYPE) {
        Ok(AssignmentTarget::AllDevices)
    } else {
        Err(intune_bad_request(format!(
            "'{odata_type}' is not an assignment target of a Windows Autopilot deployment profile; use {GROUP_TARGET_TYPE}, {EXCLUSION_GROUP_TARGET_TYPE} or {ALL_DEVICES_TARGET_TYPE}"
        )))
    }
}

/// Create windowsAutopilotDeploymentProfileAssignment: 201 with the assignment, whose id is
/// `{profileId}_{groupId}_0` whatever id the client sent.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofileassignment-create?view=graph-rest-beta
async fn create_windows_autopilot_deployment_profile_assignment(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::WriteDeploymentProfiles)?.tenant_id();
    let id = profile_id(&id)?;
    let input: AssignmentInput = read_body(&body)?;
    let target = assignment_target(&input)?;
    let assignment =
        state.store().create_profile_assignment(tenant, id, target, state.now()).await?.map_err(refused)?;
    assignments_changed(&state, tenant).await?;
    let context = context_url(version.0, &format!("{}/$entity", assignments_fragment(id)));
    ODataBody::entity(StatusCode::CREATED, &context, &assignment_to_wire(&assignment), Select::ALL, &[])
}

/// Delete windowsAutopilotDeploymentProfileAssignment: 204.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofileassignment-delete?view=graph-rest-beta
async fn delete_windows_autopilot_deployment_profile_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, assignment)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteDeploymentProfiles)?.tenant_id();
    let id = profile_id(&id)?;
    state.store().delete_profile_assignment(tenant, id, &assignment).await?.map_err(refused)?;
    assignments_changed(&state, tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The devices the profile is assigned to (`assignedDevices`), keyset-paged, in the device
/// identity's beta shape.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofile-get?view=graph-rest-beta
async fn list_windows_autopilot_deployment_profile_assigned_devices(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    let PageRequest { version, query, ctx, .. } = &request;
    let version = *version;
    query.refuse_unsupported(ASSIGNED_DEVICE_OPTIONS)?;
    autopilot_devices::check_select(query, version)?;
    let id = profile_id(&id)?;
    state.store().deployment_profile(tenant, id).await?.ok_or(ApiError::NotFound)?;
    let page = list::page_query(query, |_| None)?;
    let mut devices = state.store().list_profile_assigned_devices(tenant, id, &page).await?;
    let set = format!("{SET}/{id}/assignedDevices");
    let next =
        list::finish_page(&mut devices, &page, ctx, version, &set, request.raw_query(), |d, _| (d.id.into(), None));
    let select = query.select.as_deref();
    let context = context_url(version, &format!("{SET}('{id}')/assignedDevices"));
    let mut body = PageWriter::new(&context, None, next.as_deref());
    for device in &devices {
        body.push(&autopilot_devices::to_wire(device, version), Select::new(select), &[])?;
    }
    Ok(ODataBody::ok(body.finish()))
}

/// Which of a device's two profiles a navigation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProfileRole {
    /// `deploymentProfile`: the profile assigned to the device.
    Assigned,
    /// `intendedDeploymentProfile`: the profile the device is to get.
    Intended,
}

impl DeviceProfileRole {
    pub fn property(self) -> &'static str {
        match self {
            DeviceProfileRole::Assigned => "deploymentProfile",
            DeviceProfileRole::Intended => "intendedDeploymentProfile",
        }
    }
}

/// Each device's profiles, rendered for `$expand`: for every device, the JSON of each asked-for
/// navigation property (`null` when the device has none).
pub async fn expand_device_profiles(
    state: &AppState,
    tenant: TenantId,
    devices: &[AutopilotDeviceId],
    roles: &[DeviceProfileRole],
) -> ApiResult<Vec<Vec<(&'static str, String)>>> {
    if roles.is_empty() {
        return Ok(vec![Vec::new(); devices.len()]);
    }
    let links = state.store().device_profiles(tenant, devices).await?;
    let mut wanted: Vec<DeploymentProfileId> =
        links.iter().flat_map(|(_, p)| [p.assigned, p.intended]).flatten().collect();
    wanted.sort();
    wanted.dedup();
    let profiles = state.store().deployment_profiles_by_ids(tenant, &wanted).await?;
    let json: Vec<(DeploymentProfileId, String)> =
        profiles.iter().map(|p| Ok((p.id, expanded_json(p)?))).collect::<ApiResult<_>>()?;
    let render = |id: Option<DeploymentProfileId>| {
        id.and_then(|id| json.iter().find(|(p, _)| *p == id)).map(|(_, j)| j.clone()).unwrap_or_else(|| "null".into())
    };
    Ok(devices
        .iter()
        .map(|device| {
            let link = links.iter().find(|(d, _)| d == device).map(|(_, p)| *p);
            roles
                .iter()
                .map(|role| {
                    let id = link.and_then(|p| match role {
                        DeviceProfileRole::Assigned => p.assigned,
                        DeviceProfileRole::Intended => p.intended,
                    });
                    (role.property(), render(id))
                })
                .collect()
        })
        .collect())
}

/// A device's profile by navigation: 404 when the device does not exist or has no such profile.
async fn device_profile(
    state: &AppState,
    caller: &Caller,
    version: ApiVersion,
    query: &ODataQuery,
    id: &str,
    role: DeviceProfileRole,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDeploymentProfiles)?.tenant_id();
    query.refuse_unsupported(list::ENTITY_OPTIONS)?;
    let select = query.select.as_deref();
    list::check_select(select, PROPERTIES, TYPE_NAME)?;
    let device: AutopilotDeviceId = id.parse().map_err(|_| ApiError::NotFound)?;
    let links = state.store().device_profiles(tenant, &[device]).await?;
    let (_, link) = links.first().ok_or(ApiError::NotFound)?;
    let profile_id = match role {
        DeviceProfileRole::Assigned => link.assigned,
        DeviceProfileRole::Intended => link.intended,
    }
    .ok_or(ApiError::NotFound)?;
    let profile = state.store().deployment_profile(tenant, profile_id).await?.ok_or(ApiError::NotFound)?;
    let extras = profile_extras(&profile, None)?;
    let fragment = format!("deviceManagement/windowsAutopilotDeviceIdentities('{device}')/{}/$entity", role.property());
    ODataBody::entity(
        StatusCode::OK,
        &context_url(version, &fragment),
        &to_wire(&profile),
        Select::new(select),
        &borrowed(&extras),
    )
}

/// Get a device's deploymentProfile.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofile-get?view=graph-rest-beta
async fn get_device_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    device_profile(&state, &caller, version.0, &query, &id, DeviceProfileRole::Assigned).await
}

/// Get a device's intendedDeploymentProfile.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeploymentprofile-get?view=graph-rest-beta
async fn get_device_intended_deployment_profile(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    device_profile(&state, &caller, version.0, &query, &id, DeviceProfileRole::Intended).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_name_of_a_pair_wins() {
        assert_eq!(pick(1, None, None), 1);
        assert_eq!(pick(1, Some(2), None), 2);
        assert_eq!(pick(1, None, Some(3)), 3);
        assert_eq!(pick(1, Some(2), Some(2)), 2);
        // A GET body sent back with only the deprecated name changed.
        assert_eq!(pick(1, Some(2), Some(1)), 2);
        // …or only the current one.
        assert_eq!(pick(1, Some(1), Some(3)), 3);
        assert_eq!(pick(1, Some(2), Some(3)), 3);
    }

    #[test]
    fn profile_types_are_read_with_or_without_their_hash() {
        assert_eq!(profile_kind(AZURE_AD_PROFILE_TYPE), Some(ProfileKind::AzureAd));
        assert_eq!(
            profile_kind("microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile"),
            Some(ProfileKind::ActiveDirectory)
        );
        assert_eq!(profile_kind("#microsoft.graph.windowsAutopilotDeploymentProfile"), None);
    }
}
