//! `importedWindowsAutopilotDeviceIdentities` (v1.0 and beta) and the `import` action. An
//! import is stored with status `unknown` and processed by a durable background job after
//! `--import-delay`, as the deployment service processes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dmsync_core::ImportedDeviceId;
use dmsync_core::autopilot::{ImportStatus, ImportedDevice, ImportedField, NewImportedDevice};
use dmsync_core::jobs::NewJob;
use dmsync_core::permissions::Operation;
use dmsync_graph::autopilot::{
    ImportRequest, ImportedWindowsAutopilotDeviceIdentity, ImportedWindowsAutopilotDeviceIdentityImportStatus,
    ImportedWindowsAutopilotDeviceIdentityState, NewImportedWindowsAutopilotDeviceIdentity,
};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::{PageWriter, Select};
use uuid::Uuid;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::jobs::import_autopilot_devices::ImportAutopilotDevices;
use crate::registrations::decode_hardware_hash;
use crate::state::AppState;

const SET: &str = "deviceManagement/importedWindowsAutopilotDeviceIdentities";

/// The most identities one `import` call takes.
pub const MAX_IMPORT_BATCH: usize = 500;

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![
                Endpoint::get(
                    list_imported_windows_autopilot_device_identities,
                    OperationDoc::new(
                        "listImportedWindowsAutopilotDeviceIdentities",
                        Answer::Page(schema::<ImportedWindowsAutopilotDeviceIdentity>),
                    )
                    .query(list::PAGE_OPTIONS),
                ),
                Endpoint::post(
                    create_imported_windows_autopilot_device_identity,
                    OperationDoc::new(
                        "createImportedWindowsAutopilotDeviceIdentity",
                        Answer::Created(schema::<ImportedWindowsAutopilotDeviceIdentity>),
                    )
                    .body(schema::<NewImportedWindowsAutopilotDeviceIdentity>),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/importedWindowsAutopilotDeviceIdentities/{id}",
            vec![
                Endpoint::get(
                    get_imported_windows_autopilot_device_identity,
                    OperationDoc::new(
                        "getImportedWindowsAutopilotDeviceIdentity",
                        Answer::Entity(schema::<ImportedWindowsAutopilotDeviceIdentity>),
                    )
                    .query(list::ENTITY_OPTIONS),
                ),
                Endpoint::delete(
                    delete_imported_windows_autopilot_device_identity,
                    OperationDoc::new("deleteImportedWindowsAutopilotDeviceIdentity", Answer::NoContent),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/importedWindowsAutopilotDeviceIdentities/import",
            vec![Endpoint::post(
                import_imported_windows_autopilot_device_identities,
                OperationDoc::new(
                    "importImportedWindowsAutopilotDeviceIdentities",
                    Answer::Page(schema::<ImportedWindowsAutopilotDeviceIdentity>),
                )
                .body(schema::<ImportRequest>),
            )],
        ),
    ]
}

const PROPERTIES: &[&str] = &[
    "id",
    "assignedUserPrincipalName",
    "groupTag",
    "hardwareIdentifier",
    "importId",
    "productKey",
    "serialNumber",
    "state",
];
const TYPE_NAME: &str = "importedWindowsAutopilotDeviceIdentity";

fn imported_field(name: &str) -> Option<ImportedField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => ImportedField::Id,
        "serialnumber" => ImportedField::SerialNumber,
        "grouptag" => ImportedField::GroupTag,
        "productkey" => ImportedField::ProductKey,
        "importid" => ImportedField::ImportId,
        "assigneduserprincipalname" => ImportedField::AssignedUserPrincipalName,
        _ => return None,
    })
}

fn sort_value(device: &ImportedDevice, field: ImportedField) -> String {
    match field {
        ImportedField::Id => device.id.to_string(),
        ImportedField::SerialNumber => device.serial_number.clone(),
        ImportedField::GroupTag => device.group_tag.clone(),
        ImportedField::ProductKey => device.product_key.clone(),
        ImportedField::ImportId => device.import_id.clone(),
        ImportedField::AssignedUserPrincipalName => device.assigned_user_principal_name.clone(),
    }
}

fn to_wire(device: &ImportedDevice) -> ImportedWindowsAutopilotDeviceIdentity {
    ImportedWindowsAutopilotDeviceIdentity {
        id: device.id.to_string(),
        assigned_user_principal_name: device.assigned_user_principal_name.clone(),
        group_tag: device.group_tag.clone(),
        hardware_identifier: STANDARD.encode(&device.hardware_hash),
        import_id: device.import_id.clone(),
        product_key: device.product_key.clone(),
        serial_number: device.serial_number.clone(),
        state: ImportedWindowsAutopilotDeviceIdentityState {
            device_error_code: device.error_code,
            device_error_name: device.error_name.clone().unwrap_or_default(),
            device_import_status: match device.status {
                ImportStatus::Unknown => ImportedWindowsAutopilotDeviceIdentityImportStatus::Unknown,
                ImportStatus::Pending => ImportedWindowsAutopilotDeviceIdentityImportStatus::Pending,
                ImportStatus::Partial => ImportedWindowsAutopilotDeviceIdentityImportStatus::Partial,
                ImportStatus::Complete => ImportedWindowsAutopilotDeviceIdentityImportStatus::Complete,
                ImportStatus::Error => ImportedWindowsAutopilotDeviceIdentityImportStatus::Error,
            },
            device_registration_id: device.device_registration_id.map(|u| u.to_string()).unwrap_or_default(),
        },
    }
}

/// Checks one identity as Intune does. Errors are Intune's 400 with the JSON-in-message body.
/// The client's `state` and `@odata.type` are ignored; `orderIdentifier` stands for `groupTag`.
const COLLECTION: list::Collection<ImportedDevice, ImportedField, ImportedWindowsAutopilotDeviceIdentity> =
    list::Collection {
        set: SET,
        type_name: TYPE_NAME,
        properties: PROPERTIES,
        field: imported_field,
        id: |d| d.id.into(),
        sort_value,
        wire: to_wire,
    };

fn validate(
    item: NewImportedWindowsAutopilotDeviceIdentity,
    position: Option<usize>,
) -> Result<NewImportedDevice, ApiError> {
    let at = position.map(|i| format!(" (item {})", i + 1)).unwrap_or_default();
    let invalid = |what: String| ApiError::IntuneBadRequest { message: what, phrase: String::new() };
    let serial_number = item.serial_number.unwrap_or_default().trim().to_owned();
    if serial_number.is_empty() {
        return Err(invalid(format!("serialNumber is required{at}")));
    }
    let hash_text = item.hardware_identifier.unwrap_or_default();
    if hash_text.trim().is_empty() {
        return Err(invalid(format!("hardwareIdentifier is required{at}")));
    }
    if !dmsync_core::limits::hardware_hash_within_bound(&hash_text) {
        return Err(invalid(format!(
            "hardwareIdentifier is longer than {} characters of base64{at}",
            dmsync_core::limits::MAX_HARDWARE_HASH_BASE64
        )));
    }
    let hardware_hash = decode_hardware_hash(&hash_text)
        .ok_or_else(|| invalid(format!("hardwareIdentifier is not valid base64{at}")))?;
    Ok(NewImportedDevice {
        serial_number,
        group_tag: item.group_tag.or(item.order_identifier).unwrap_or_default(),
        product_key: item.product_key.unwrap_or_default(),
        hardware_hash,
        assigned_user_principal_name: item.assigned_user_principal_name.unwrap_or_default(),
    })
}

async fn store_imports(
    state: &AppState,
    tenant: dmsync_core::TenantId,
    rows: &[NewImportedDevice],
) -> ApiResult<Vec<ImportedDevice>> {
    let now = state.now();
    let run_at = now + state.config().import_delay;
    let import_id = Uuid::new_v4().to_string();
    let job = NewJob::new(&ImportAutopilotDevices {});
    let stored = state.store().create_imports(tenant, &import_id, rows, now, run_at, &job).await?;
    tracing::info!(tenant.id = %tenant, import.id = %import_id, imports = rows.len(), "autopilot import accepted");
    Ok(stored)
}

/// Create importedWindowsAutopilotDeviceIdentity: 201, status `unknown` until processed.
/// https://learn.microsoft.com/graph/api/intune-enrollment-importedwindowsautopilotdeviceidentity-create?view=graph-rest-1.0
async fn create_imported_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(item): GraphJson<NewImportedWindowsAutopilotDeviceIdentity>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::CreateImportedWindowsAutopilotDeviceIdentity)?;
    let row = validate(item, None)?;
    let stored = store_imports(&state, scope.tenant_id(), &[row]).await?;
    ODataBody::entity(
        StatusCode::CREATED,
        &context_url(version.0, &list::entity_fragment(SET, None)),
        &to_wire(&stored[0]),
        Select::ALL,
        &[],
    )
}

/// import: every identity is validated first, then all are stored as one import; 200 with them.
/// https://learn.microsoft.com/graph/api/intune-enrollment-importedwindowsautopilotdeviceidentity-import?view=graph-rest-1.0
async fn import_imported_windows_autopilot_device_identities(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(request): GraphJson<ImportRequest>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::CreateImportedWindowsAutopilotDeviceIdentity)?;
    let items = request.imported_windows_autopilot_device_identities;
    if items.is_empty() {
        return Err(ApiError::IntuneBadRequest {
            message: "importedWindowsAutopilotDeviceIdentities is empty".into(),
            phrase: String::new(),
        });
    }
    if items.len() > MAX_IMPORT_BATCH {
        return Err(ApiError::IntuneBadRequest {
            message: format!("At most {MAX_IMPORT_BATCH} devices can be imported in one request"),
            phrase: String::new(),
        });
    }
    let rows = items.into_iter().enumerate().map(|(i, item)| validate(item, Some(i))).collect::<Result<Vec<_>, _>>()?;
    let stored = store_imports(&state, scope.tenant_id(), &rows).await?;
    let context = context_url(version.0, "Collection(microsoft.graph.importedWindowsAutopilotDeviceIdentity)");
    let mut body = PageWriter::new(&context, None, None);
    for device in &stored {
        body.push(&to_wire(device), Select::ALL, &[])?;
    }
    Ok(ODataBody::ok(body.finish()))
}

/// List importedWindowsAutopilotDeviceIdentities.
/// https://learn.microsoft.com/graph/api/intune-enrollment-importedwindowsautopilotdeviceidentity-list?view=graph-rest-1.0
async fn list_imported_windows_autopilot_device_identities(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ListImportedWindowsAutopilotDeviceIdentities)?.tenant_id();
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &request,
        async |page| store.list_imported_devices(tenant, page).await,
        async |filter| store.count_imported_devices(tenant, filter).await,
    );
    page.await
}

/// Get importedWindowsAutopilotDeviceIdentity. Scripts poll this until the status leaves `unknown`.
/// https://learn.microsoft.com/graph/api/intune-enrollment-importedwindowsautopilotdeviceidentity-get?view=graph-rest-1.0
async fn get_imported_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::GetImportedWindowsAutopilotDeviceIdentity)?.tenant_id();
    let store = state.store();
    COLLECTION.entity(&query, version.0, &id, async |id| store.imported_device(tenant, id).await).await
}

/// Delete importedWindowsAutopilotDeviceIdentity. The registered device, if any, stays.
/// https://learn.microsoft.com/graph/api/intune-enrollment-importedwindowsautopilotdeviceidentity-delete?view=graph-rest-1.0
async fn delete_imported_windows_autopilot_device_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::DeleteImportedWindowsAutopilotDeviceIdentity)?;
    let id: ImportedDeviceId = id.parse().map_err(|_| ApiError::NotFound)?;
    if state.store().delete_imported_device(scope.tenant_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
