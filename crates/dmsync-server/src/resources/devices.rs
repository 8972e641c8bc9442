//! `devices` (v1.0 and beta): the Entra ID device objects Windows Autopilot creates for the
//! devices it registers. List (with `$filter` on `deviceId`, `displayName`, `operatingSystem`,
//! and Entra's advanced queries, `$count` and `$search`, which need `ConsistencyLevel:
//! eventual`), get and delete. Deleting an object leaves its Autopilot identity, and deleting the
//! identity leaves the object, as in Intune.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dmsync_core::EntraDeviceId;
use dmsync_core::entra::{EntraDevice, EntraDeviceField};
use dmsync_core::permissions::Operation;
use dmsync_graph::directory::Device;
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::Select;

use super::Version;
use super::directory::{SearchMatch, advanced_query};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::state::AppState;

const SET: &str = "devices";
const TYPE_NAME: &str = "device";
pub(crate) const PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "accountEnabled",
    "approximateLastSignInDateTime",
    "complianceExpirationDateTime",
    "createdDateTime",
    "deviceCategory",
    "deviceId",
    "deviceMetadata",
    "deviceOwnership",
    "deviceVersion",
    "displayName",
    "enrollmentProfileName",
    "enrollmentType",
    "extensionAttributes",
    "isCompliant",
    "isManaged",
    "managementType",
    "manufacturer",
    "mdmAppId",
    "model",
    "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "operatingSystem",
    "operatingSystemVersion",
    "physicalIds",
    "profileType",
    "registrationDateTime",
    "systemLabels",
    "trustType",
];

/// The list's options: a plain collection's, and `$search`.
const LIST_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count", "$search"];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![Endpoint::get(
                list_devices,
                OperationDoc::new("listDevices", Answer::Page(schema::<Device>)).query(LIST_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "devices/{id}",
            vec![
                Endpoint::get(
                    get_device,
                    OperationDoc::new("getDevice", Answer::Entity(schema::<Device>)).query(list::ENTITY_OPTIONS),
                ),
                Endpoint::delete(delete_device, OperationDoc::new("deleteDevice", Answer::NoContent)),
            ],
        ),
    ]
}

pub(crate) fn field(name: &str) -> Option<EntraDeviceField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => EntraDeviceField::Id,
        "deviceid" => EntraDeviceField::DeviceId,
        "displayname" => EntraDeviceField::DisplayName,
        "operatingsystem" => EntraDeviceField::OperatingSystem,
        _ => return None,
    })
}

pub(crate) fn sort_value(device: &EntraDevice, field: EntraDeviceField) -> String {
    match field {
        EntraDeviceField::Id => device.id.to_string(),
        EntraDeviceField::DeviceId => device.device_id.to_string(),
        EntraDeviceField::DisplayName => device.display_name.clone(),
        EntraDeviceField::OperatingSystem => device.operating_system.clone(),
    }
}

/// The same properties on v1.0 and beta: what Autopilot knows of a device it has not deployed
/// yet is the same on both, and the rest is `null` (docs/GRAPH-COMPAT.md, "Entra devices").
pub(crate) fn to_wire(device: &EntraDevice) -> Device {
    Device {
        id: device.id.to_string(),
        deleted_date_time: None,
        account_enabled: device.account_enabled,
        approximate_last_sign_in_date_time: None,
        compliance_expiration_date_time: None,
        created_date_time: device.created_at.into(),
        device_category: None,
        device_id: device.device_id.to_string(),
        device_metadata: None,
        device_ownership: None,
        device_version: None,
        display_name: device.display_name.clone(),
        enrollment_profile_name: None,
        enrollment_type: None,
        extension_attributes: Default::default(),
        is_compliant: None,
        is_managed: None,
        management_type: None,
        manufacturer: None,
        mdm_app_id: None,
        model: None,
        on_premises_last_sync_date_time: None,
        on_premises_security_identifier: None,
        on_premises_sync_enabled: None,
        operating_system: device.operating_system.clone(),
        operating_system_version: None,
        physical_ids: device.physical_ids(),
        profile_type: None,
        registration_date_time: None,
        system_labels: Vec::new(),
        trust_type: device.trust_type.clone(),
    }
}

const COLLECTION: list::Collection<EntraDevice, EntraDeviceField, Device> = list::Collection {
    set: SET,
    type_name: TYPE_NAME,
    properties: PROPERTIES,
    field,
    id: |device| device.id.into(),
    sort_value,
    wire: to_wire,
};

/// What `$search` may name on devices.
const SEARCHABLE: &[(&str, SearchMatch)] = &[("displayName", SearchMatch::Prefix), ("deviceId", SearchMatch::Whole)];

/// List devices.
/// https://learn.microsoft.com/graph/api/device-list
async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
    mut request: PageRequest,
    headers: HeaderMap,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDevices)?.tenant_id();
    advanced_query(&mut request, &headers, SEARCHABLE)?;
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &request,
        async |page| store.list_entra_devices(tenant, page).await,
        async |filter| store.count_entra_devices(tenant, filter).await,
    );
    page.await
}

/// Get device, by object id. An id that names no object of the tenant is Entra's 404.
/// https://learn.microsoft.com/graph/api/device-get
async fn get_device(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDevices)?.tenant_id();
    query.refuse_unsupported(list::ENTITY_OPTIONS)?;
    let select = query.select.as_deref();
    list::check_select(select, PROPERTIES, TYPE_NAME)?;
    let not_found = || ApiError::DirectoryObjectNotFound(id.clone());
    let object: EntraDeviceId = id.parse().map_err(|_| not_found())?;
    let device = state.store().entra_device(tenant, object).await?.ok_or_else(not_found)?;
    let context = context_url(version.0, &list::entity_fragment(SET, select));
    ODataBody::entity(StatusCode::OK, &context, &to_wire(&device), Select::new(select), &[])
}

/// Delete device: 204. The object leaves its groups; the Autopilot identity it was created for
/// stays.
/// https://learn.microsoft.com/graph/api/device-delete
async fn delete_device(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::DeleteDevice)?.tenant_id();
    let not_found = || ApiError::DirectoryObjectNotFound(id.clone());
    let object: EntraDeviceId = id.parse().map_err(|_| not_found())?;
    if !state.store().delete_entra_device(tenant, object).await? {
        return Err(not_found());
    }
    // The object left every group it was in, in the same transaction.
    crate::membership::membership_changed(&state, tenant).await;
    Ok(StatusCode::NO_CONTENT)
}
