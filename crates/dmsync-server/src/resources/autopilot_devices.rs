//! `windowsAutopilotDeviceIdentities` (v1.0 and beta): the devices an Autopilot sync produces.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dmsync_core::AutopilotDeviceId;
use dmsync_core::autopilot::{
    AutopilotDevice, DeletionRequest, DeviceCreationRefusal, DeviceField, DevicePropertiesUpdate, EnrollmentState,
    NewAutopilotDevice,
};
use dmsync_core::jobs::NewJob;
use dmsync_core::permissions::Operation;
use dmsync_core::profile_assignment::ProfileAssignmentStatus;
use dmsync_graph::ApiVersion;
use dmsync_graph::autopilot::{
    DeletedWindowsAutopilotDeviceState, EnrollmentState as WireEnrollmentState, NewWindowsAutopilotDeviceIdentity,
    WindowsAutopilotDeviceIdentity, WindowsAutopilotDeviceIdentityBeta, WindowsAutopilotDeviceRemediationState,
    WindowsAutopilotProfileAssignmentDetailedStatus, WindowsAutopilotProfileAssignmentStatus,
    WindowsAutopilotUserlessEnrollmentStatus,
};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::{PageWriter, Select};

use super::Version;
use super::deployment_profiles::{DeviceProfileRole, expand_device_profiles};
use crate::auth::{Caller, TenantScope};
use crate::error::{ApiError, ApiResult};
use crate::http::body::{GraphJson, NoBody};
use crate::http::context::RequestContext;
use crate::http::list;
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BETA, BOTH, Endpoint, GraphRoute};
use crate::jobs::deregister_autopilot_device::DeregisterAutopilotDevice;
use crate::state::AppState;

const SET: &str = "deviceManagement/windowsAutopilotDeviceIdentities";

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![
                Endpoint::get(
                    list_windows_autopilot_device_identities,
                    OperationDoc::new("listWindowsAutopilotDeviceIdentities", Answer::Page(device_schema))
                        .query(list::LIST_OPTIONS),
                ),
                Endpoint::post(
                    create_windows_autopilot_device_identity,
                    OperationDoc::new("createWindowsAutopilotDeviceIdentity", Answer::Created(device_schema))
                        .body(versioned_body_schema::<NewWindowsAutopilotDeviceIdentity>),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/$count",
            vec![Endpoint::get(
                count_windows_autopilot_device_identities,
                OperationDoc::new("countWindowsAutopilotDeviceIdentities", Answer::Count).query(COUNT_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}",
            vec![
                Endpoint::get(
                    get_windows_autopilot_device_identity,
                    OperationDoc::new("getWindowsAutopilotDeviceIdentity", Answer::Entity(device_schema))
                        .query(GET_OPTIONS),
                ),
                Endpoint::delete(
                    delete_windows_autopilot_device_identity,
                    OperationDoc::new("deleteWindowsAutopilotDeviceIdentity", Answer::NoContent),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/updateDeviceProperties",
            vec![Endpoint::post(
                update_device_properties,
                OperationDoc::new("updateDeviceProperties", Answer::NoContent)
                    .body(versioned_body_schema::<DevicePropertiesBody>),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/assignUserToDevice",
            vec![Endpoint::post(
                assign_user_to_device,
                OperationDoc::new("assignUserToDevice", Answer::NoContent).body(schema::<AssignUserBody>),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/unassignUserFromDevice",
            vec![Endpoint::post(
                unassign_user_from_device,
                OperationDoc::new("unassignUserFromDevice", Answer::NoContent).empty_body(),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/assignResourceAccountToDevice",
            vec![Endpoint::post(
                assign_resource_account_to_device,
                OperationDoc::new("assignResourceAccountToDevice", Answer::NoContent)
                    .body(schema::<AssignResourceAccountBody>),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/unassignResourceAccountFromDevice",
            vec![Endpoint::post(
                unassign_resource_account_from_device,
                OperationDoc::new("unassignResourceAccountFromDevice", Answer::NoContent).empty_body(),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}/allowNextEnrollment",
            vec![Endpoint::post(
                allow_next_enrollment,
                OperationDoc::new("allowNextEnrollment", Answer::NoContent).empty_body(),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotDeviceIdentities/deleteDevices",
            vec![Endpoint::post(
                delete_devices,
                OperationDoc::new("deleteDevices", Answer::Page(schema::<DeletedWindowsAutopilotDeviceState>))
                    .body(schema::<DeleteDevicesBody>),
            )],
        ),
    ]
}

/// The options `$count` and a single device honour.
const COUNT_OPTIONS: &[&str] = &["$filter"];
const GET_OPTIONS: &[&str] = &["$select", "$expand"];

/// A device's schema; v1.0's has none of the beta-only properties.
pub(crate) fn device_schema(generator: &mut schemars::SchemaGenerator, version: ApiVersion) -> schemars::Schema {
    let reference = generator.subschema_for::<WindowsAutopilotDeviceIdentity>();
    if version == ApiVersion::V1
        && let Some(properties) = generator
            .definitions_mut()
            .get_mut("WindowsAutopilotDeviceIdentity")
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.as_object_mut())
    {
        properties.retain(|name, _| !BETA_PROPERTIES.contains(&name.as_str()));
    }
    reference
}

/// A request body's schema in a version: v1.0's has none of the beta-only properties (the
/// create's and `updateDeviceProperties`'s bodies take more in beta).
fn versioned_body_schema<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    version: ApiVersion,
) -> schemars::Schema {
    let mut body = generator.root_schema_for::<T>();
    body.remove("$schema");
    if version == ApiVersion::V1
        && let Some(properties) = body.get_mut("properties").and_then(|p| p.as_object_mut())
    {
        properties.retain(|name, _| !BETA_PROPERTIES.contains(&name.as_str()));
    }
    body
}

const V1_PROPERTIES: &[&str] = &[
    "id",
    "addressableUserName",
    "azureActiveDirectoryDeviceId",
    "displayName",
    "enrollmentState",
    "groupTag",
    "lastContactedDateTime",
    "managedDeviceId",
    "manufacturer",
    "model",
    "productKey",
    "purchaseOrderIdentifier",
    "resourceName",
    "serialNumber",
    "skuNumber",
    "systemFamily",
    "userPrincipalName",
];
const BETA_PROPERTIES: &[&str] = &[
    "azureAdDeviceId",
    "deploymentProfileAssignedDateTime",
    "deploymentProfileAssignmentDetailedStatus",
    "deploymentProfileAssignmentStatus",
    "deviceAccountPassword",
    "deviceAccountUpn",
    "deviceFriendlyName",
    "remediationState",
    "remediationStateLastModifiedDateTime",
    "userlessEnrollmentStatus",
];

/// Refuses `$select` of a property this version's type does not have.
pub(crate) fn check_select(query: &ODataQuery, version: ApiVersion) -> Result<(), ApiError> {
    let known: Vec<&str> = match version {
        ApiVersion::V1 => V1_PROPERTIES.to_vec(),
        ApiVersion::Beta => V1_PROPERTIES.iter().chain(BETA_PROPERTIES).copied().collect(),
    };
    list::check_select(query.select.as_deref(), &known, "windowsAutopilotDeviceIdentity")
}

fn enrollment_state(state: EnrollmentState, version: ApiVersion) -> WireEnrollmentState {
    match state {
        EnrollmentState::Unknown => WireEnrollmentState::Unknown,
        EnrollmentState::Enrolled => WireEnrollmentState::Enrolled,
        EnrollmentState::PendingReset => WireEnrollmentState::PendingReset,
        EnrollmentState::Failed => WireEnrollmentState::Failed,
        EnrollmentState::NotContacted => WireEnrollmentState::NotContacted,
        // v1.0 has no `blocked` member.
        EnrollmentState::Blocked if version == ApiVersion::V1 => WireEnrollmentState::Failed,
        EnrollmentState::Blocked => WireEnrollmentState::Blocked,
    }
}

/// The `managedDeviceId` of a device that never enrolled, as Intune writes it. Scripts test for
/// this value before they follow the id to `managedDevices` (an empty id would name the
/// collection). No device enrols in dmsync, so every device has it.
pub const NOT_ENROLLED: &str = "00000000-0000-0000-0000-000000000000";

pub fn to_wire(device: &AutopilotDevice, version: ApiVersion) -> WindowsAutopilotDeviceIdentity {
    // The `deviceId` of the device's Entra object; beta shows it twice, under the old name too.
    let azure_ad_device_id = device.azure_ad_device_id.map(|id| id.to_string()).unwrap_or_default();
    WindowsAutopilotDeviceIdentity {
        id: device.id.to_string(),
        addressable_user_name: device.addressable_user_name.clone(),
        azure_active_directory_device_id: azure_ad_device_id.clone(),
        display_name: device.display_name.clone(),
        enrollment_state: enrollment_state(device.enrollment_state, version),
        group_tag: device.group_tag.clone(),
        last_contacted_date_time: device.last_contacted.into(),
        managed_device_id: NOT_ENROLLED.to_owned(),
        manufacturer: device.manufacturer.clone(),
        model: device.model.clone(),
        product_key: device.product_key.clone(),
        purchase_order_identifier: device.purchase_order_identifier.clone(),
        resource_name: device.resource_name.clone(),
        serial_number: device.serial_number.clone(),
        sku_number: String::new(),
        system_family: String::new(),
        user_principal_name: device.user_principal_name.clone(),
        beta: (version == ApiVersion::Beta).then(|| WindowsAutopilotDeviceIdentityBeta {
            azure_ad_device_id,
            deployment_profile_assigned_date_time: device.profile_assigned_at.into(),
            deployment_profile_assignment_detailed_status: WindowsAutopilotProfileAssignmentDetailedStatus::None,
            deployment_profile_assignment_status: assignment_status(device.profile_assignment_status),
            device_account_password: device.device_account_password.clone(),
            device_account_upn: device.device_account_upn.clone(),
            device_friendly_name: device.device_friendly_name.clone(),
            remediation_state: WindowsAutopilotDeviceRemediationState::Unknown,
            remediation_state_last_modified_date_time: None.into(),
            userless_enrollment_status: WindowsAutopilotUserlessEnrollmentStatus::Unknown,
        }),
    }
}

fn assignment_status(status: ProfileAssignmentStatus) -> WindowsAutopilotProfileAssignmentStatus {
    match status {
        ProfileAssignmentStatus::NotAssigned => WindowsAutopilotProfileAssignmentStatus::NotAssigned,
        ProfileAssignmentStatus::Pending => WindowsAutopilotProfileAssignmentStatus::Pending,
        ProfileAssignmentStatus::AssignedUnknownSyncState => {
            WindowsAutopilotProfileAssignmentStatus::AssignedUnkownSyncState
        }
        ProfileAssignmentStatus::AssignedInSync => WindowsAutopilotProfileAssignmentStatus::AssignedInSync,
        ProfileAssignmentStatus::Failed => WindowsAutopilotProfileAssignmentStatus::Failed,
    }
}

/// The properties a device list can be filtered and ordered by, per version: beta adds
/// `deploymentProfileAssignmentStatus`, which v1.0's type does not have.
fn device_field_of(version: ApiVersion) -> fn(&str) -> Option<DeviceField> {
    match version {
        ApiVersion::V1 => device_field,
        ApiVersion::Beta => beta_device_field,
    }
}

fn beta_device_field(name: &str) -> Option<DeviceField> {
    if name.eq_ignore_ascii_case("deploymentProfileAssignmentStatus") {
        return Some(DeviceField::DeploymentProfileAssignmentStatus);
    }
    device_field(name)
}

/// The Graph properties of both versions a device list can be filtered and ordered by.
fn device_field(name: &str) -> Option<DeviceField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => DeviceField::Id,
        "serialnumber" => DeviceField::SerialNumber,
        "grouptag" => DeviceField::GroupTag,
        "model" => DeviceField::Model,
        "manufacturer" => DeviceField::Manufacturer,
        "displayname" => DeviceField::DisplayName,
        "userprincipalname" => DeviceField::UserPrincipalName,
        "addressableusername" => DeviceField::AddressableUserName,
        "enrollmentstate" => DeviceField::EnrollmentState,
        "purchaseorderidentifier" => DeviceField::PurchaseOrderIdentifier,
        "productkey" => DeviceField::ProductKey,
        _ => return None,
    })
}

fn sort_value(device: &AutopilotDevice, field: DeviceField) -> String {
    match field {
        DeviceField::Id => device.id.to_string(),
        DeviceField::SerialNumber => device.serial_number.clone(),
        DeviceField::GroupTag => device.group_tag.clone(),
        DeviceField::Model => device.model.clone(),
        DeviceField::Manufacturer => device.manufacturer.clone(),
        DeviceField::DisplayName => device.display_name.clone(),
        DeviceField::UserPrincipalName => device.user_principal_name.clone(),
        DeviceField::AddressableUserName => device.addressable_user_name.clone(),
        DeviceField::EnrollmentState => device.enrollment_state.as_str().to_owned(),
        DeviceField::PurchaseOrderIdentifier => device.purchase_order_identifier.clone(),
        DeviceField::ProductKey => device.product_key.clone(),
        DeviceField::DeploymentProfileAssignmentStatus => device.profile_assignment_status.as_str().to_owned(),
    }
}

/// `$expand` on devices: the two deployment-profile navigation properties, beta only, each
/// rendered inline (`null` when the device has none).
fn device_expand(query: &ODataQuery, version: ApiVersion) -> Result<Vec<DeviceProfileRole>, ApiError> {
    let Some(names) = &query.expand else { return Ok(Vec::new()) };
    let mut roles = Vec::new();
    for name in names {
        let role = [DeviceProfileRole::Assigned, DeviceProfileRole::Intended]
            .into_iter()
            .find(|role| role.property().eq_ignore_ascii_case(name));
        match role {
            Some(role) if version == ApiVersion::Beta => {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            _ => return Err(ApiError::BadRequest(format!("Could not find a property named '{name}' to expand."))),
        }
    }
    Ok(roles)
}

fn borrowed<'a>(extras: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    extras.iter().map(|(name, json)| (*name, json.as_str())).collect()
}

/// List windowsAutopilotDeviceIdentities, keyset-paged.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-list?view=graph-rest-1.0
async fn list_windows_autopilot_device_identities(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Extension(ctx): Extension<RequestContext>,
    uri: axum::http::Uri,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ListWindowsAutopilotDeviceIdentities)?.tenant_id();
    let page = state.cached_page(tenant, ctx.url(), async || {
        query.refuse_unsupported(list::LIST_OPTIONS)?;
        check_select(&query, version.0)?;
        let expand = device_expand(&query, version.0)?;
        let page = list::page_query(&query, device_field_of(version.0))?;
        let mut devices = state.store().list_autopilot_devices(tenant, &page).await?;
        let next = list::finish_page(&mut devices, &page, &ctx, version.0, SET, uri.query(), |d, field| {
            (d.id.into(), field.map(|f| sort_value(d, f)))
        });
        let count = match query.count {
            Some(true) => Some(state.store().count_autopilot_devices(tenant, page.filter.as_ref()).await?),
            _ => None,
        };
        let select = query.select.as_deref();
        let context = context_url(version.0, &list::collection_fragment(SET, select));
        let ids: Vec<AutopilotDeviceId> = devices.iter().map(|d| d.id).collect();
        let expanded = expand_device_profiles(&state, tenant, &ids, &expand).await?;
        let mut body = PageWriter::new(&context, count, next.as_deref());
        for (device, extras) in devices.iter().zip(&expanded) {
            body.push(&to_wire(device, version.0), Select::new(select), &borrowed(extras))?;
        }
        Ok(ODataBody::ok(body.finish()))
    });
    page.await
}

/// `GET …/windowsAutopilotDeviceIdentities/$count`: the number as `text/plain`.
async fn count_windows_autopilot_device_identities(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
) -> ApiResult<impl IntoResponse> {
    let scope = caller.authorize(Operation::ListWindowsAutopilotDeviceIdentities)?;
    query.refuse_unsupported(COUNT_OPTIONS)?;
    let filter = list::filter(&query, device_field_of(version.0))?;
    let n = state.store().count_autopilot_devices(scope.tenant_id(), filter.as_ref()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain;charset=utf-8")], n.to_string()))
}

/// Get windowsAutopilotDeviceIdentity. Another tenant's id is a plain 404.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-get?view=graph-rest-1.0
async fn get_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::GetWindowsAutopilotDeviceIdentity)?;
    query.refuse_unsupported(GET_OPTIONS)?;
    check_select(&query, version.0)?;
    let expand = device_expand(&query, version.0)?;
    let id = parse_device_id(&id)?;
    let device = state.store().autopilot_device(scope.tenant_id(), id).await?.ok_or(ApiError::NotFound)?;
    let expanded = expand_device_profiles(&state, scope.tenant_id(), &[id], &expand).await?;
    let extras = expanded.first().map(|e| borrowed(e)).unwrap_or_default();
    let select = query.select.as_deref();
    let context = context_url(version.0, &list::entity_fragment(SET, select));
    ODataBody::entity(StatusCode::OK, &context, &to_wire(&device, version.0), Select::new(select), &extras)
}

/// Checks a create's body and keeps what a direct create honours: the properties a device
/// gets from its registration (serial number, manufacturer, model, group tag, purchase order,
/// product key) and the Intune-side ones its actions set (names, user, resource account, and in
/// beta the Surface Hub account). What the service itself decides (`id`, `enrollmentState`,
/// `lastContactedDateTime`, the Entra and managed device ids, `skuNumber`, `systemFamily`, the
/// profile assignment and remediation state) is accepted and ignored; a beta-only property under
/// v1.0 is refused, as v1.0's type does not have it.
fn new_device(body: NewWindowsAutopilotDeviceIdentity, version: ApiVersion) -> Result<NewAutopilotDevice, ApiError> {
    let beta_only = [
        ("azureAdDeviceId", body.azure_ad_device_id.is_some()),
        ("deploymentProfileAssignedDateTime", body.deployment_profile_assigned_date_time.is_some()),
        ("deploymentProfileAssignmentDetailedStatus", body.deployment_profile_assignment_detailed_status.is_some()),
        ("deploymentProfileAssignmentStatus", body.deployment_profile_assignment_status.is_some()),
        ("deviceAccountPassword", body.device_account_password.is_some()),
        ("deviceAccountUpn", body.device_account_upn.is_some()),
        ("deviceFriendlyName", body.device_friendly_name.is_some()),
        ("remediationState", body.remediation_state.is_some()),
        ("remediationStateLastModifiedDateTime", body.remediation_state_last_modified_date_time.is_some()),
        ("userlessEnrollmentStatus", body.userless_enrollment_status.is_some()),
    ];
    if version == ApiVersion::V1
        && let Some((name, _)) = beta_only.iter().find(|(_, present)| *present)
    {
        return Err(ApiError::BadRequest(format!(
            "The property '{name}' does not exist on type 'microsoft.graph.windowsAutopilotDeviceIdentity'."
        )));
    }
    let serial_number = body.serial_number.unwrap_or_default().trim().to_owned();
    if serial_number.is_empty() {
        return Err(ApiError::IntuneBadRequest { message: "serialNumber is required".into(), phrase: String::new() });
    }
    Ok(NewAutopilotDevice {
        serial_number,
        manufacturer: body.manufacturer.unwrap_or_default(),
        model: body.model.unwrap_or_default(),
        group_tag: body.group_tag.or(body.order_identifier).unwrap_or_default(),
        purchase_order_identifier: body.purchase_order_identifier.unwrap_or_default(),
        product_key: body.product_key.unwrap_or_default(),
        display_name: body.display_name.unwrap_or_default(),
        user_principal_name: body.user_principal_name.unwrap_or_default(),
        addressable_user_name: body.addressable_user_name.unwrap_or_default(),
        resource_name: body.resource_name.unwrap_or_default(),
        device_account_upn: body.device_account_upn.unwrap_or_default(),
        device_account_password: body.device_account_password.unwrap_or_default(),
        device_friendly_name: body.device_friendly_name.unwrap_or_default(),
    })
}

/// Create windowsAutopilotDeviceIdentity: 201 with the device, registered at once (with its
/// Entra object) as an import's device is when the import completes. A serial number the tenant
/// has registered already is Intune's `ZtdDeviceAlreadyAssigned`, as an import of it reports.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-create?view=graph-rest-1.0
async fn create_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(body): GraphJson<NewWindowsAutopilotDeviceIdentity>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::CreateWindowsAutopilotDeviceIdentity)?;
    let device = new_device(body, version.0)?;
    match state.store().create_autopilot_device(scope.tenant_id(), &device, state.now()).await? {
        Ok(created) => {
            tracing::info!(tenant.id = %scope.tenant_id(), device.id = %created.id, "autopilot device created");
            // A new Entra object may match a dynamic group, and the device may come under a
            // profile (All Devices at once); both are asked for after the commit, as
            // updateDeviceProperties does.
            crate::membership::request_evaluation_after(&state, scope.tenant_id()).await;
            crate::jobs::assign_deployment_profiles::schedule_profile_assignment_after(&state, scope.tenant_id()).await;
            let context = context_url(version.0, &list::entity_fragment(SET, None));
            ODataBody::entity(StatusCode::CREATED, &context, &to_wire(&created, version.0), Select::ALL, &[])
        }
        Err(DeviceCreationRefusal::SerialNumberRegistered) => Err(ApiError::IntuneBadRequest {
            message: "ZtdDeviceAlreadyAssigned: a device with this serial number is already registered in this tenant"
                .into(),
            phrase: "ZtdDeviceAlreadyAssigned".into(),
        }),
    }
}

fn parse_device_id(id: &str) -> Result<AutopilotDeviceId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The Intune error for a second delete while the first is pending. `ZtdDeviceDeletionInProgess`
/// is Intune's own spelling.
fn deletion_in_progress() -> ApiError {
    ApiError::IntuneBadRequest {
        message: "ZtdDeviceDeletionInProgess: the deletion of this device is currently in progress or was requested less than 30minutes ago".into(),
        phrase: "ZtdDeviceDeletionInProgess".into(),
    }
}

fn deletion_run_at(state: &AppState) -> time::OffsetDateTime {
    state.now() + state.config().deletion_delay
}

/// Delete windowsAutopilotDeviceIdentity: 204, then the device is deregistered in the
/// background after `--deletion-delay`.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-delete?view=graph-rest-1.0
async fn delete_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::DeleteWindowsAutopilotDeviceIdentity)?;
    let id = parse_device_id(&id)?;
    let job = NewJob::new(&DeregisterAutopilotDevice { device_id: id });
    match state
        .store()
        .request_device_deletion(scope.tenant_id(), id, state.now(), deletion_run_at(&state), &job)
        .await?
    {
        DeletionRequest::Accepted { .. } => Ok(StatusCode::NO_CONTENT),
        DeletionRequest::AlreadyInProgress { .. } => Err(deletion_in_progress()),
        DeletionRequest::NotFound => Err(ApiError::NotFound),
    }
}

/// The body of `updateDeviceProperties` and `assignUserToDevice`. Every parameter is a nullable
/// string; unknown ones are refused.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DevicePropertiesBody {
    user_principal_name: Option<String>,
    addressable_user_name: Option<String>,
    group_tag: Option<String>,
    display_name: Option<String>,
    device_account_upn: Option<String>,
    device_account_password: Option<String>,
    device_friendly_name: Option<String>,
}

/// Parses a body as JSON, or as the lenient JSON the PowerShell module sends
/// (`{ displayName: "PC-01" }`, unquoted keys), which real Graph accepts too. Its nesting is
/// bounded before the recursive lenient parser runs.
fn lenient_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    dmsync_graph::bounded::from_lenient_slice(bytes).map_err(ApiError::from)
}

/// updateDeviceProperties (also routed as `UpdateDeviceProperties`, as the PowerShell module
/// spells it). The beta-only properties are refused under v1.0.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-updatedeviceproperties?view=graph-rest-1.0
async fn update_device_properties(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?;
    let id = parse_device_id(&id)?;
    let body: DevicePropertiesBody = if body.iter().all(|b| b.is_ascii_whitespace()) {
        DevicePropertiesBody::default()
    } else {
        lenient_json(&body)?
    };
    let beta_only = body.device_account_upn.is_some()
        || body.device_account_password.is_some()
        || body.device_friendly_name.is_some();
    if beta_only && version.0 == ApiVersion::V1 {
        return Err(ApiError::BadRequest(
            "deviceAccountUpn, deviceAccountPassword and deviceFriendlyName exist only in beta.".into(),
        ));
    }
    let update = DevicePropertiesUpdate {
        user_principal_name: body.user_principal_name,
        addressable_user_name: body.addressable_user_name,
        group_tag: body.group_tag,
        display_name: body.display_name,
        device_account_upn: body.device_account_upn,
        device_account_password: body.device_account_password,
        device_friendly_name: body.device_friendly_name,
        resource_name: None,
    };
    let group_tag_changed = update.group_tag.is_some();
    if !state.store().update_autopilot_device(scope.tenant_id(), id, &update, state.now()).await? {
        return Err(ApiError::NotFound);
    }
    if group_tag_changed {
        // The group tag is the Entra object's [OrderId], which dynamic rules match; the
        // evaluation that follows asks the assignment engine to look again when membership moved.
        crate::membership::request_evaluation_after(&state, scope.tenant_id()).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AssignUserBody {
    user_principal_name: Option<String>,
    addressable_user_name: Option<String>,
}

/// assignUserToDevice.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-assignusertodevice?view=graph-rest-1.0
async fn assign_user_to_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<AssignUserBody>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?;
    let upn = body.user_principal_name.unwrap_or_default();
    if upn.trim().is_empty() {
        return Err(ApiError::IntuneBadRequest {
            message: "userPrincipalName is required".into(),
            phrase: String::new(),
        });
    }
    let update = DevicePropertiesUpdate {
        user_principal_name: Some(upn),
        addressable_user_name: Some(body.addressable_user_name.unwrap_or_default()),
        ..Default::default()
    };
    update_device(&state, scope, &id, update).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AssignResourceAccountBody {
    user_principal_name: Option<String>,
    addressable_user_name: Option<String>,
    resource_account_name: Option<String>,
}

/// The device actions that change one device's properties, or answer 404.
async fn update_device(
    state: &AppState,
    scope: TenantScope,
    id: &str,
    update: DevicePropertiesUpdate,
) -> ApiResult<StatusCode> {
    let id = parse_device_id(id)?;
    if state.store().update_autopilot_device(scope.tenant_id(), id, &update, state.now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// assignResourceAccountToDevice (beta): the device's user, addressable name and resource
/// account (`resourceName`), as a Surface Hub or Teams Room is given its room account.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-assignresourceaccounttodevice?view=graph-rest-beta
async fn assign_resource_account_to_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<AssignResourceAccountBody>,
) -> ApiResult<StatusCode> {
    let update = DevicePropertiesUpdate {
        user_principal_name: Some(body.user_principal_name.unwrap_or_default()),
        addressable_user_name: Some(body.addressable_user_name.unwrap_or_default()),
        resource_name: Some(body.resource_account_name.unwrap_or_default()),
        ..Default::default()
    };
    update_device(&state, caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?, &id, update).await
}

/// unassignResourceAccountFromDevice (beta): clears what the assignment set.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-unassignresourceaccountfromdevice?view=graph-rest-beta
async fn unassign_resource_account_from_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _body: NoBody,
) -> ApiResult<StatusCode> {
    let update = DevicePropertiesUpdate {
        user_principal_name: Some(String::new()),
        addressable_user_name: Some(String::new()),
        resource_name: Some(String::new()),
        ..Default::default()
    };
    update_device(&state, caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?, &id, update).await
}

/// allowNextEnrollment (beta): lets a device whose enrollment was blocked enroll once more.
/// dmsync never blocks an enrollment (no device enrolls here), so there is nothing to lift: the
/// device must exist, and the answer is the documented 204.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-allownextenrollment?view=graph-rest-beta
async fn allow_next_enrollment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _body: NoBody,
) -> ApiResult<StatusCode> {
    update_device(
        &state,
        caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?,
        &id,
        DevicePropertiesUpdate::default(),
    )
    .await
}

/// unassignUserFromDevice.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-unassignuserfromdevice?view=graph-rest-1.0
async fn unassign_user_from_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _body: NoBody,
) -> ApiResult<StatusCode> {
    let update = DevicePropertiesUpdate {
        user_principal_name: Some(String::new()),
        addressable_user_name: Some(String::new()),
        ..Default::default()
    };
    update_device(&state, caller.authorize(Operation::UpdateWindowsAutopilotDeviceIdentity)?, &id, update).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteDevicesBody {
    serial_numbers: Vec<String>,
}

/// The most serial numbers one `deleteDevices` call takes.
pub const MAX_DELETE_DEVICES: usize = 1000;

/// deleteDevices (beta): requests the deletion of each serial number and reports per device.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotdeviceidentity-deletedevices?view=graph-rest-beta
async fn delete_devices(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(body): GraphJson<DeleteDevicesBody>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::DeleteWindowsAutopilotDeviceIdentity)?;
    if body.serial_numbers.len() > MAX_DELETE_DEVICES {
        return Err(ApiError::BadRequest(format!("At most {MAX_DELETE_DEVICES} serial numbers per request.")));
    }
    let found: std::collections::HashMap<String, AutopilotDeviceId> =
        state.store().device_ids_by_serial(scope.tenant_id(), &body.serial_numbers).await?.into_iter().collect();
    let context = context_url(version.0, "Collection(microsoft.graph.deletedWindowsAutopilotDeviceState)");
    let mut results = PageWriter::new(&context, None, None);
    for serial in &body.serial_numbers {
        let (registration, deletion_state, error) = match found.get(serial) {
            None => (String::new(), "failed", "The device was not found.".to_owned()),
            Some(id) => {
                match state
                    .store()
                    .request_device_deletion(
                        scope.tenant_id(),
                        *id,
                        state.now(),
                        deletion_run_at(&state),
                        &NewJob::new(&DeregisterAutopilotDevice { device_id: *id }),
                    )
                    .await?
                {
                    DeletionRequest::Accepted { .. } => (id.to_string(), "accepted", String::new()),
                    DeletionRequest::AlreadyInProgress { .. } => {
                        (id.to_string(), "error", "ZtdDeviceDeletionInProgess".to_owned())
                    }
                    DeletionRequest::NotFound => (String::new(), "failed", "The device was not found.".to_owned()),
                }
            }
        };
        let result = DeletedWindowsAutopilotDeviceState {
            serial_number: serial.clone(),
            device_registration_id: registration,
            deletion_state: deletion_state.to_owned(),
            error_message: error,
        };
        results.push(&result, Select::ALL, &[])?;
    }
    Ok(ODataBody::ok(results.finish()))
}
