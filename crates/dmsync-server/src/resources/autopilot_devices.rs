//! `windowsAutopilotDeviceIdentities` (v1.0 and beta): the devices an Autopilot sync produces.

use axum::extract::{Extension, Path, State};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_core::autopilot::{AutopilotDevice, EnrollmentState};
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

fn encode_skiptoken(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_skiptoken(token: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| ApiError::BadRequest("The $skiptoken is not valid.".into()))
}

/// The absolute link to the next page: the original query options plus a new `$skiptoken`.
fn next_link(ctx: &RequestContext, version: ApiVersion, raw_query: Option<&str>, last: Uuid) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if !name.eq_ignore_ascii_case("$skiptoken") {
            query.append_pair(&name, &value);
        }
    }
    query.append_pair("$skiptoken", &encode_skiptoken(last));
    format!("{}/{}/{SET}?{}", ctx.base_url, version.segment(), query.finish())
}

/// List windowsAutopilotDeviceIdentities, keyset-paged in id order.
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
    query.refuse_unsupported(&["$select", "$top", "$skiptoken"])?;
    let page_size = query.top.unwrap_or(DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE);
    let after = query.skiptoken.as_deref().map(decode_skiptoken).transpose()?;
    // One extra row tells whether another page exists without a count query.
    let mut devices = state.store.list_autopilot_devices(scope.tenant_id(), after, page_size + 1).await?;
    let more = devices.len() > page_size as usize;
    devices.truncate(page_size as usize);
    let next = match (more, devices.last()) {
        (true, Some(last)) => Some(next_link(&ctx, version.0, uri.query(), last.id)),
        _ => None,
    };
    let select = query.select.as_deref();
    let fragment = match select {
        Some(names) => format!("{SET}({})", names.join(",")),
        None => SET.to_owned(),
    };
    Ok(ok(CollectionPage {
        context: context_url(version.0, &fragment),
        count: None,
        next_link: next,
        value: devices
            .iter()
            .map(|d| serde_json::Value::Object(select_properties(to_properties(&to_wire(d, version.0)), select)))
            .collect(),
    }))
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
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let device = state.store.autopilot_device(scope.tenant_id(), id).await?.ok_or(ApiError::NotFound)?;
    let select = query.select.as_deref();
    let fragment = match select {
        Some(names) => format!("{SET}({})/$entity", names.join(",")),
        None => format!("{SET}/$entity"),
    };
    Ok(ok(entity_document(
        context_url(version.0, &fragment),
        select_properties(to_properties(&to_wire(&device, version.0)), select),
    )))
}
