//! `deviceManagement/exchangeConnectors` (v1.0 and beta): CRUD and the `sync` action.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dmsync_core::ConnectorId;
use dmsync_core::exchange::{
    ConnectorChanges, ConnectorField, ConnectorStatus, ConnectorSyncDecision, ConnectorType, ExchangeConnector,
    SyncType,
};
use dmsync_core::jobs::NewJob;
use dmsync_core::permissions::Operation;
use dmsync_graph::exchange::{
    DeviceManagementExchangeConnector, DeviceManagementExchangeConnectorInput, DeviceManagementExchangeConnectorStatus,
    DeviceManagementExchangeConnectorType, SyncRequest,
};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::Select;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::jobs::exchange_connector_sync::ExchangeConnectorSync;
use crate::state::AppState;

const SET: &str = "deviceManagement/exchangeConnectors";
const TYPE_NAME: &str = "deviceManagementExchangeConnector";
const PROPERTIES: &[&str] = &[
    "id",
    "connectorServerName",
    "exchangeAlias",
    "exchangeConnectorType",
    "exchangeOrganization",
    "lastSyncDateTime",
    "primarySmtpAddress",
    "serverName",
    "status",
    "version",
];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![
                Endpoint::get(
                    list_exchange_connectors,
                    OperationDoc::new(
                        "listExchangeConnectors",
                        Answer::Page(schema::<DeviceManagementExchangeConnector>),
                    )
                    .query(list::PAGE_OPTIONS),
                ),
                Endpoint::post(
                    create_exchange_connector,
                    OperationDoc::new(
                        "createExchangeConnector",
                        Answer::Created(schema::<DeviceManagementExchangeConnector>),
                    )
                    .body(schema::<DeviceManagementExchangeConnectorInput>),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/exchangeConnectors/{id}",
            vec![
                Endpoint::get(
                    get_exchange_connector,
                    OperationDoc::new(
                        "getExchangeConnector",
                        Answer::Entity(schema::<DeviceManagementExchangeConnector>),
                    )
                    .query(list::ENTITY_OPTIONS),
                ),
                Endpoint::patch(
                    update_exchange_connector,
                    OperationDoc::new(
                        "updateExchangeConnector",
                        Answer::Entity(schema::<DeviceManagementExchangeConnector>),
                    )
                    .body(schema::<DeviceManagementExchangeConnectorInput>),
                ),
                Endpoint::delete(
                    delete_exchange_connector,
                    OperationDoc::new("deleteExchangeConnector", Answer::NoContent),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/exchangeConnectors/{id}/sync",
            vec![Endpoint::post(
                sync_exchange_connector,
                OperationDoc::new("syncExchangeConnector", Answer::NoContent)
                    .body(schema::<SyncRequest>)
                    .errors(&[StatusCode::CONFLICT]),
            )],
        ),
    ]
}

fn field(name: &str) -> Option<ConnectorField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => ConnectorField::Id,
        "status" => ConnectorField::Status,
        "primarysmtpaddress" => ConnectorField::PrimarySmtpAddress,
        "servername" => ConnectorField::ServerName,
        "connectorservername" => ConnectorField::ConnectorServerName,
        "exchangeconnectortype" => ConnectorField::ExchangeConnectorType,
        "version" => ConnectorField::Version,
        "exchangealias" => ConnectorField::ExchangeAlias,
        "exchangeorganization" => ConnectorField::ExchangeOrganization,
        _ => return None,
    })
}

fn sort_value(c: &ExchangeConnector, f: ConnectorField) -> String {
    match f {
        ConnectorField::Id => c.id.to_string(),
        ConnectorField::Status => c.status.as_str().into(),
        ConnectorField::PrimarySmtpAddress => c.primary_smtp_address.clone(),
        ConnectorField::ServerName => c.server_name.clone(),
        ConnectorField::ConnectorServerName => c.connector_server_name.clone(),
        ConnectorField::ExchangeConnectorType => c.connector_type.as_str().into(),
        ConnectorField::Version => c.version.clone(),
        ConnectorField::ExchangeAlias => c.exchange_alias.clone(),
        ConnectorField::ExchangeOrganization => c.exchange_organization.clone(),
    }
}

fn wire_type(t: ConnectorType) -> DeviceManagementExchangeConnectorType {
    match t {
        ConnectorType::OnPremises => DeviceManagementExchangeConnectorType::OnPremises,
        ConnectorType::Hosted => DeviceManagementExchangeConnectorType::Hosted,
        ConnectorType::ServiceToService => DeviceManagementExchangeConnectorType::ServiceToService,
        ConnectorType::Dedicated => DeviceManagementExchangeConnectorType::Dedicated,
        ConnectorType::UnknownFutureValue => DeviceManagementExchangeConnectorType::UnknownFutureValue,
    }
}

fn domain_type(t: DeviceManagementExchangeConnectorType) -> ConnectorType {
    match t {
        DeviceManagementExchangeConnectorType::OnPremises => ConnectorType::OnPremises,
        DeviceManagementExchangeConnectorType::Hosted => ConnectorType::Hosted,
        DeviceManagementExchangeConnectorType::ServiceToService => ConnectorType::ServiceToService,
        DeviceManagementExchangeConnectorType::Dedicated => ConnectorType::Dedicated,
        DeviceManagementExchangeConnectorType::UnknownFutureValue => ConnectorType::UnknownFutureValue,
    }
}

fn to_wire(c: &ExchangeConnector) -> DeviceManagementExchangeConnector {
    DeviceManagementExchangeConnector {
        id: c.id.to_string(),
        connector_server_name: c.connector_server_name.clone(),
        exchange_alias: c.exchange_alias.clone(),
        exchange_connector_type: wire_type(c.connector_type),
        exchange_organization: c.exchange_organization.clone(),
        last_sync_date_time: c.last_sync.into(),
        primary_smtp_address: c.primary_smtp_address.clone(),
        server_name: c.server_name.clone(),
        status: match c.status {
            ConnectorStatus::None => DeviceManagementExchangeConnectorStatus::None,
            ConnectorStatus::ConnectionPending => DeviceManagementExchangeConnectorStatus::ConnectionPending,
            ConnectorStatus::Connected => DeviceManagementExchangeConnectorStatus::Connected,
            ConnectorStatus::Disconnected => DeviceManagementExchangeConnectorStatus::Disconnected,
            ConnectorStatus::UnknownFutureValue => DeviceManagementExchangeConnectorStatus::UnknownFutureValue,
        },
        version: c.version.clone(),
    }
}

/// The client-writable properties of a body; server-owned ones are accepted and ignored.
const COLLECTION: list::Collection<ExchangeConnector, ConnectorField, DeviceManagementExchangeConnector> =
    list::Collection {
        set: SET,
        type_name: TYPE_NAME,
        properties: PROPERTIES,
        field,
        id: |c| c.id.into(),
        sort_value,
        wire: to_wire,
    };

fn changes(input: DeviceManagementExchangeConnectorInput) -> ConnectorChanges {
    ConnectorChanges {
        primary_smtp_address: input.primary_smtp_address,
        server_name: input.server_name,
        connector_server_name: input.connector_server_name,
        connector_type: input.exchange_connector_type.map(domain_type),
        version: input.version,
        exchange_alias: input.exchange_alias,
        exchange_organization: input.exchange_organization,
    }
}

fn connector_id(id: &str) -> Result<ConnectorId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// List deviceManagementExchangeConnectors.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-list?view=graph-rest-1.0
async fn list_exchange_connectors(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadExchangeConnectors)?.tenant_id();
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &request,
        async |page| store.list_connectors(tenant, page).await,
        async |filter| store.count_connectors(tenant, filter).await,
    );
    page.await
}

/// Create deviceManagementExchangeConnector: 201, status `connectionPending`.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-create?view=graph-rest-1.0
async fn create_exchange_connector(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(input): GraphJson<DeviceManagementExchangeConnectorInput>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::WriteExchangeConnectors)?;
    let c = changes(input);
    let connector = ExchangeConnector {
        tenant_id: scope.tenant_id(),
        id: ConnectorId::new(),
        last_sync: None,
        status: ConnectorStatus::ConnectionPending,
        primary_smtp_address: c.primary_smtp_address.unwrap_or_default(),
        server_name: c.server_name.unwrap_or_default(),
        connector_server_name: c.connector_server_name.unwrap_or_default(),
        // The property is non-nullable; a connector that does not say is on premises.
        connector_type: c.connector_type.unwrap_or(ConnectorType::OnPremises),
        version: c.version.unwrap_or_default(),
        exchange_alias: c.exchange_alias.unwrap_or_default(),
        exchange_organization: c.exchange_organization.unwrap_or_default(),
        source: None,
        watermark: None,
        last_full_sync_start: None,
        last_delta_sync_start: None,
    };
    state.store().create_connector(&connector, state.now()).await?;
    ODataBody::entity(
        StatusCode::CREATED,
        &context_url(version.0, &list::entity_fragment(SET, None)),
        &to_wire(&connector),
        Select::ALL,
        &[],
    )
}

/// Get deviceManagementExchangeConnector.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-get?view=graph-rest-1.0
async fn get_exchange_connector(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadExchangeConnectors)?.tenant_id();
    let store = state.store();
    COLLECTION.entity(&query, version.0, &id, async |id| store.connector(tenant, id).await).await
}

/// Update deviceManagementExchangeConnector: 200 with the connector.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-update?view=graph-rest-1.0
async fn update_exchange_connector(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    GraphJson(input): GraphJson<DeviceManagementExchangeConnectorInput>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::WriteExchangeConnectors)?;
    let connector = state
        .store()
        .update_connector(scope.tenant_id(), connector_id(&id)?, &changes(input))
        .await?
        .ok_or(ApiError::NotFound)?;
    ODataBody::entity(
        StatusCode::OK,
        &context_url(version.0, &list::entity_fragment(SET, None)),
        &to_wire(&connector),
        Select::ALL,
        &[],
    )
}

/// Delete deviceManagementExchangeConnector: 204; the devices it discovered go with it.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-delete?view=graph-rest-1.0
async fn delete_exchange_connector(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::WriteExchangeConnectors)?;
    if state.store().delete_connector(scope.tenant_id(), connector_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// sync action, `{"syncType":"fullSync"|"deltaSync"}`: 204 and a background sync; 400 for a
/// missing or unknown syncType; 404 for an unknown connector; 409 while one runs.
/// https://learn.microsoft.com/graph/api/intune-onboarding-devicemanagementexchangeconnector-sync?view=graph-rest-1.0
async fn sync_exchange_connector(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    GraphJson(request): GraphJson<SyncRequest>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::SyncExchangeConnector)?;
    let sync_type = match request.sync_type {
        Some(serde_json::Value::String(s)) => SyncType::parse(&s).ok_or_else(|| {
            ApiError::BadRequest(format!("'{s}' is not a valid value for syncType; use fullSync or deltaSync."))
        })?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "{other} is not a valid value for syncType; use fullSync or deltaSync."
            )));
        }
        None => return Err(ApiError::BadRequest("The parameter 'syncType' is required and cannot be null.".into())),
    };
    let id = connector_id(&id)?;
    let job = NewJob::new(&ExchangeConnectorSync { connector_id: id, sync_type });
    match state.store().trigger_connector_sync(scope.tenant_id(), id, sync_type, state.now(), &job).await? {
        ConnectorSyncDecision::Started { job_id } => {
            tracing::info!(tenant.id = %scope.tenant_id(), connector.id = %id, job.id = %job_id, sync.kind = sync_type.as_str(), "exchange connector sync started");
            Ok(StatusCode::NO_CONTENT)
        }
        ConnectorSyncDecision::AlreadyRunning => Err(ApiError::ConnectorSyncRunning),
        ConnectorSyncDecision::NotFound => Err(ApiError::NotFound),
    }
}
