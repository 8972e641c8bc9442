//! `deviceManagement/managedDevices` (v1.0 and beta), list and get: the Exchange ActiveSync
//! devices that Exchange connector syncs discover. dmsync manages no other kind of device.

use axum::extract::{Extension, Path, State};
use dmsync_core::exchange::{EasDevice, ExchangeAccessState, ManagedDeviceField};
use dmsync_core::permissions::Operation;
use dmsync_graph::exchange::ManagedDevice;

use super::Version;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::context::RequestContext;
use crate::http::list;
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::state::AppState;

const SET: &str = "deviceManagement/managedDevices";
const PROPERTIES: &[&str] = &[
    "id",
    "complianceState",
    "deviceEnrollmentType",
    "deviceName",
    "deviceRegistrationState",
    "easActivated",
    "easActivationDateTime",
    "easDeviceId",
    "emailAddress",
    "enrolledDateTime",
    "exchangeAccessState",
    "exchangeAccessStateReason",
    "exchangeLastSuccessfulSyncDateTime",
    "lastSyncDateTime",
    "managedDeviceOwnerType",
    "managementAgent",
    "manufacturer",
    "model",
    "operatingSystem",
    "osVersion",
    "serialNumber",
    "userDisplayName",
    "userPrincipalName",
];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![Endpoint::get(
                list_managed_devices,
                OperationDoc::new("listManagedDevices", Answer::Page(schema::<ManagedDevice>))
                    .query(list::PAGE_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/managedDevices/{id}",
            vec![Endpoint::get(
                get_managed_device,
                OperationDoc::new("getManagedDevice", Answer::Entity(schema::<ManagedDevice>))
                    .query(list::ENTITY_OPTIONS),
            )],
        ),
    ]
}

fn field(name: &str) -> Option<ManagedDeviceField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => ManagedDeviceField::Id,
        "devicename" => ManagedDeviceField::DeviceName,
        "userprincipalname" => ManagedDeviceField::UserPrincipalName,
        "emailaddress" => ManagedDeviceField::EmailAddress,
        "operatingsystem" => ManagedDeviceField::OperatingSystem,
        "osversion" => ManagedDeviceField::OsVersion,
        "model" => ManagedDeviceField::Model,
        "manufacturer" => ManagedDeviceField::Manufacturer,
        "easdeviceid" => ManagedDeviceField::EasDeviceId,
        "exchangeaccessstate" => ManagedDeviceField::ExchangeAccessState,
        "managementagent" => ManagedDeviceField::ManagementAgent,
        _ => return None,
    })
}

fn sort_value(d: &EasDevice, f: ManagedDeviceField) -> String {
    let (os, version) = d.record.operating_system();
    match f {
        ManagedDeviceField::Id => d.id.to_string(),
        ManagedDeviceField::DeviceName => d.record.device_name(),
        ManagedDeviceField::UserPrincipalName => d.record.user_principal_name.clone(),
        ManagedDeviceField::EmailAddress => d.record.email_address.clone(),
        ManagedDeviceField::OperatingSystem => os,
        ManagedDeviceField::OsVersion => version,
        ManagedDeviceField::Model => d.record.device_model.clone(),
        ManagedDeviceField::Manufacturer => d.record.manufacturer(),
        ManagedDeviceField::EasDeviceId => d.record.device_id.clone(),
        ManagedDeviceField::ExchangeAccessState => d.record.access_state.as_str().into(),
        ManagedDeviceField::ManagementAgent => "eas".into(),
    }
}

/// Exchange's `DeviceAccessStateReason` as Graph's `deviceManagementExchangeAccessStateReason`.
fn access_state_reason(d: &EasDevice) -> &'static str {
    if d.record.access_state == ExchangeAccessState::None {
        return "none";
    }
    match d.record.access_state_reason.trim().to_ascii_lowercase().as_str() {
        "" => "none",
        "global" => "exchangeGlobalRule",
        "individual" => "exchangeIndividualRule",
        "devicerule" => "exchangeDeviceRule",
        "upgrade" => "exchangeUpgrade",
        "policy" => "exchangeMailboxPolicy",
        _ => "other",
    }
}

fn to_wire(d: &EasDevice) -> ManagedDevice {
    let (os, version) = d.record.operating_system();
    let first = d.record.first_sync.unwrap_or(d.enrolled_at);
    ManagedDevice {
        id: d.id.to_string(),
        compliance_state: "unknown".into(),
        device_enrollment_type: "unknown".into(),
        device_name: d.record.device_name(),
        device_registration_state: "notRegistered".into(),
        eas_activated: true,
        eas_activation_date_time: first.into(),
        eas_device_id: d.record.device_id.clone(),
        email_address: d.record.email_address.clone(),
        enrolled_date_time: first.into(),
        exchange_access_state: d.record.access_state.as_str().into(),
        exchange_access_state_reason: access_state_reason(d).into(),
        exchange_last_successful_sync_date_time: d.record.last_success_sync.or(d.record.when_changed).into(),
        last_sync_date_time: d.record.last_success_sync.or(d.record.when_changed).into(),
        managed_device_owner_type: "unknown".into(),
        management_agent: "eas".into(),
        manufacturer: d.record.manufacturer(),
        model: d.record.device_model.clone(),
        operating_system: os,
        os_version: version,
        serial_number: String::new(),
        user_display_name: d.record.user_display_name.clone(),
        user_principal_name: d.record.user_principal_name.clone(),
    }
}

const COLLECTION: list::Collection<EasDevice, ManagedDeviceField, ManagedDevice> = list::Collection {
    set: SET,
    type_name: "managedDevice",
    properties: PROPERTIES,
    field,
    id: |d| d.id.into(),
    sort_value,
    wire: to_wire,
};

/// List managedDevices.
/// https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list?view=graph-rest-1.0
async fn list_managed_devices(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Extension(ctx): Extension<RequestContext>,
    uri: axum::http::Uri,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadManagedDevices)?.tenant_id();
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &query,
        &ctx,
        version.0,
        uri.query(),
        async |page| store.list_managed_devices(tenant, page).await,
        async |filter| store.count_managed_devices(tenant, filter).await,
    );
    page.await
}

/// Get managedDevice.
/// https://learn.microsoft.com/graph/api/intune-devices-manageddevice-get?view=graph-rest-1.0
async fn get_managed_device(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadManagedDevices)?.tenant_id();
    let store = state.store();
    COLLECTION.entity(&query, version.0, &id, async |id| store.managed_device(tenant, id).await).await
}
