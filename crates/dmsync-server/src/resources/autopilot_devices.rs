//! `windowsAutopilotDeviceIdentities` (v1.0 and beta): the devices an Autopilot sync produces.

use axum::extract::{Extension, Path, State};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_core::autopilot::{AutopilotDevice, DeviceCursor, DeviceField, DeviceQuery, EnrollmentState, SortDirection};
use dmsync_core::filter::{Filter, Literal, parse_filter};
use dmsync_core::permissions::Operation;
use dmsync_graph::ApiVersion;
use dmsync_graph::autopilot::{
    EnrollmentState as WireEnrollmentState, WindowsAutopilotDeviceIdentity, WindowsAutopilotDeviceIdentityBeta,
    WindowsAutopilotDeviceRemediationState, WindowsAutopilotProfileAssignmentDetailedStatus,
    WindowsAutopilotProfileAssignmentStatus, WindowsAutopilotUserlessEnrollmentStatus,
};
use dmsync_graph::odata::{CollectionPage, context_url, entity_document, select_properties, to_properties};
use uuid::Uuid;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestContext;
use crate::http::query::ODataQuery;
use crate::http::response::{ODataJson, ok};
use crate::http::routing::{BOTH, GraphRoute};
use crate::state::AppState;

/// Page size when the client sends no `$top`, and the largest `$top` honoured.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

const SET: &str = "deviceManagement/windowsAutopilotDeviceIdentities";

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(BOTH, SET, get(list_windows_autopilot_device_identities)),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/$count",
            get(count_windows_autopilot_device_identities),
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/windowsAutopilotDeviceIdentities/{id}",
            get(get_windows_autopilot_device_identity),
        ),
    ]
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

pub fn to_wire(device: &AutopilotDevice, version: ApiVersion) -> WindowsAutopilotDeviceIdentity {
    WindowsAutopilotDeviceIdentity {
        id: device.id.to_string(),
        addressable_user_name: device.addressable_user_name.clone(),
        azure_active_directory_device_id: String::new(),
        display_name: device.display_name.clone(),
        enrollment_state: enrollment_state(device.enrollment_state, version),
        group_tag: device.group_tag.clone(),
        last_contacted_date_time: device.last_contacted.into(),
        managed_device_id: String::new(),
        manufacturer: device.manufacturer.clone(),
        model: device.model.clone(),
        product_key: device.product_key.clone(),
        purchase_order_identifier: device.purchase_order_identifier.clone(),
        resource_name: String::new(),
        serial_number: device.serial_number.clone(),
        sku_number: String::new(),
        system_family: String::new(),
        user_principal_name: device.user_principal_name.clone(),
        beta: (version == ApiVersion::Beta).then(|| WindowsAutopilotDeviceIdentityBeta {
            azure_ad_device_id: String::new(),
            deployment_profile_assigned_date_time: None.into(),
            deployment_profile_assignment_detailed_status: WindowsAutopilotProfileAssignmentDetailedStatus::None,
            deployment_profile_assignment_status: WindowsAutopilotProfileAssignmentStatus::NotAssigned,
            device_account_password: String::new(),
            device_account_upn: String::new(),
            device_friendly_name: String::new(),
            remediation_state: WindowsAutopilotDeviceRemediationState::Unknown,
            remediation_state_last_modified_date_time: None.into(),
            userless_enrollment_status: WindowsAutopilotUserlessEnrollmentStatus::Unknown,
        }),
    }
}

/// The Graph properties a device list can be filtered and ordered by.
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

fn device_filter(query: &ODataQuery) -> Result<Option<Filter<DeviceField>>, ApiError> {
    let Some(text) = query.filter.as_deref() else { return Ok(None) };
    let filter = parse_filter(text, device_field).map_err(|e| ApiError::BadRequest(e.0))?;
    fn no_booleans(f: &Filter<DeviceField>) -> Result<(), ApiError> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => no_booleans(a).and(no_booleans(b)),
            Filter::Not(a) => no_booleans(a),
            Filter::Compare { value: Literal::Bool(_), .. } => {
                Err(ApiError::BadRequest("A boolean cannot be compared with a string property in $filter.".into()))
            }
            _ => Ok(()),
        }
    }
    no_booleans(&filter)?;
    Ok(Some(filter))
}

/// `$orderby=prop [asc|desc]`: one property; id breaks ties.
fn device_order(query: &ODataQuery) -> Result<Option<(DeviceField, SortDirection)>, ApiError> {
    let Some(text) = query.orderby.as_deref() else { return Ok(None) };
    if text.contains(',') {
        return Err(ApiError::BadRequest("Ordering by more than one property is not supported.".into()));
    }
    let mut words = text.split_whitespace();
    let name = words.next().ok_or_else(|| ApiError::BadRequest("$orderby is empty.".into()))?;
    let field = device_field(name)
        .ok_or_else(|| ApiError::BadRequest(format!("Could not find a property named '{name}' that can be ordered by.")))?;
    let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => SortDirection::Ascending,
        Some("desc") => SortDirection::Descending,
        Some(other) => return Err(ApiError::BadRequest(format!("'{other}' is not asc or desc in $orderby."))),
    };
    if words.next().is_some() {
        return Err(ApiError::BadRequest("Syntax error in $orderby.".into()));
    }
    Ok(Some((field, direction)))
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
    }
}

/// The opaque `$skiptoken`: where the last page ended, as base64url JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct SkipToken {
    #[serde(rename = "v", skip_serializing_if = "Option::is_none", default)]
    sort_value: Option<String>,
    #[serde(rename = "i")]
    id: Uuid,
}

fn encode_skiptoken(cursor: &DeviceCursor) -> String {
    let token = SkipToken { sort_value: cursor.sort_value.clone(), id: cursor.id };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("skiptoken serialises"))
}

fn decode_skiptoken(token: &str) -> Result<DeviceCursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<SkipToken>(&b).ok())
        .map(|t| DeviceCursor { sort_value: t.sort_value, id: t.id })
        .ok_or_else(|| ApiError::BadRequest("The $skiptoken is not valid.".into()))
}

/// The absolute link to the next page: the original query options plus a new `$skiptoken`.
fn next_link(ctx: &RequestContext, version: ApiVersion, raw_query: Option<&str>, cursor: &DeviceCursor) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if !name.eq_ignore_ascii_case("$skiptoken") {
            query.append_pair(&name, &value);
        }
    }
    query.append_pair("$skiptoken", &encode_skiptoken(cursor));
    format!("{}/{}/{SET}?{}", ctx.base_url, version.segment(), query.finish())
}

/// `$expand` on devices: the two deployment-profile navigation properties, beta only. No
/// profiles exist yet, so both expand to null.
fn device_expand(query: &ODataQuery, version: ApiVersion) -> Result<bool, ApiError> {
    let Some(names) = &query.expand else { return Ok(false) };
    for name in names {
        let known = ["deploymentProfile", "intendedDeploymentProfile"].iter().any(|n| n.eq_ignore_ascii_case(name));
        if !known || version == ApiVersion::V1 {
            return Err(ApiError::BadRequest(format!("Could not find a property named '{name}' to expand.")));
        }
    }
    Ok(true)
}

fn device_document(
    device: &AutopilotDevice,
    version: ApiVersion,
    select: Option<&[String]>,
    expand: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let mut props = select_properties(to_properties(&to_wire(device, version)), select);
    if expand {
        props.insert("deploymentProfile".into(), serde_json::Value::Null);
        props.insert("intendedDeploymentProfile".into(), serde_json::Value::Null);
    }
    props
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
) -> ApiResult<ODataJson<CollectionPage>> {
    let scope = caller.authorize(Operation::ListWindowsAutopilotDeviceIdentities)?;
    query.refuse_unsupported(&["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count", "$expand"])?;
    let expand = device_expand(&query, version.0)?;
    let page_size = query.top.unwrap_or(DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE);
    let filter = device_filter(&query)?;
    let order_by = device_order(&query)?;
    let after = query.skiptoken.as_deref().map(decode_skiptoken).transpose()?;
    // One extra row tells whether another page exists without a count query.
    let store_query = DeviceQuery { filter, order_by, after, limit: page_size + 1 };
    let mut devices = state.store.list_autopilot_devices(scope.tenant_id(), &store_query).await?;
    let more = devices.len() > page_size as usize;
    devices.truncate(page_size as usize);
    let next = match (more, devices.last()) {
        (true, Some(last)) => {
            let cursor = DeviceCursor { sort_value: order_by.map(|(f, _)| sort_value(last, f)), id: last.id };
            Some(next_link(&ctx, version.0, uri.query(), &cursor))
        }
        _ => None,
    };
    let count = match query.count {
        Some(true) => Some(state.store.count_autopilot_devices(scope.tenant_id(), store_query.filter.as_ref()).await?),
        _ => None,
    };
    let select = query.select.as_deref();
    let fragment = match select {
        Some(names) => format!("{SET}({})", names.join(",")),
        None => SET.to_owned(),
    };
    Ok(ok(CollectionPage {
        context: context_url(version.0, &fragment),
        count,
        next_link: next,
        value: devices.iter().map(|d| serde_json::Value::Object(device_document(d, version.0, select, expand))).collect(),
    }))
}

/// `GET …/windowsAutopilotDeviceIdentities/$count`: the number as `text/plain`.
async fn count_windows_autopilot_device_identities(
    State(state): State<AppState>,
    caller: Caller,
    query: ODataQuery,
) -> ApiResult<impl axum::response::IntoResponse> {
    let scope = caller.authorize(Operation::ListWindowsAutopilotDeviceIdentities)?;
    query.refuse_unsupported(&["$filter"])?;
    let filter = device_filter(&query)?;
    let n = state.store.count_autopilot_devices(scope.tenant_id(), filter.as_ref()).await?;
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
) -> ApiResult<ODataJson<serde_json::Value>> {
    let scope = caller.authorize(Operation::GetWindowsAutopilotDeviceIdentity)?;
    query.refuse_unsupported(&["$select", "$expand"])?;
    let expand = device_expand(&query, version.0)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let device = state.store.autopilot_device(scope.tenant_id(), id).await?.ok_or(ApiError::NotFound)?;
    let select = query.select.as_deref();
    let fragment = match select {
        Some(names) => format!("{SET}({})/$entity", names.join(",")),
        None => format!("{SET}/$entity"),
    };
    Ok(ok(entity_document(context_url(version.0, &fragment), device_document(&device, version.0, select, expand))))
}
