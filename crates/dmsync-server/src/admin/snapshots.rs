//! Resets and snapshots of the whole state, for test suites: `POST /_dmsync/reset`, and
//! `/_dmsync/snapshots` to take, list, delete and restore snapshots. The keys, the CA and the
//! Clock are never part of either (see `dmsync_core::snapshots`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use dmsync_graph::GraphDateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use dmsync_core::TenantId;
use dmsync_core::snapshots::{ResetScope, Snapshot, SnapshotName};

use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(default)]
    tenant_id: Option<TenantId>,
}

/// `POST /_dmsync/reset`: `{"tenantId": T}` empties one tenant, `{}` every tenant.
pub async fn reset(State(state): State<AppState>, GraphJson(body): GraphJson<Value>) -> ApiResult<Response> {
    // An object only: serde would read a struct from an array too. And a `null` tenant is a
    // mistake (an unset variable), not a request to empty every tenant.
    if !body.is_object() || body.get("tenantId") == Some(&Value::Null) {
        return Err(ApiError::BadRequest("The body must be a JSON object: {} or {\"tenantId\": T}.".into()));
    }
    let req: ResetRequest = serde_json::from_value(body).map_err(|e| ApiError::BadRequest(format!("{e}.")))?;
    let scope = match req.tenant_id {
        Some(tenant) => {
            super::known_tenant(&state, &tenant.to_string()).await?;
            ResetScope::Tenant(tenant)
        }
        None => ResetScope::All,
    };
    state.reset(scope).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    name: String,
}

fn snapshot_name(name: &str) -> ApiResult<SnapshotName> {
    SnapshotName::parse(name).map_err(|e| ApiError::BadRequest(format!("{e}.")))
}

fn describe(snapshot: &Snapshot) -> Value {
    json!({ "name": snapshot.name.as_str(), "createdDateTime": GraphDateTime::from(snapshot.created) })
}

/// `POST /_dmsync/snapshots` with `{"name": N}`: 201, or 409 if the name is taken.
pub async fn create_snapshot(
    State(state): State<AppState>,
    GraphJson(req): GraphJson<SnapshotRequest>,
) -> ApiResult<Response> {
    let name = snapshot_name(&req.name)?;
    let snapshot = state.store().create_snapshot(&name, state.now()).await?;
    Ok((StatusCode::CREATED, Json(describe(&snapshot))).into_response())
}

/// `GET /_dmsync/snapshots`.
pub async fn list_snapshots(State(state): State<AppState>) -> ApiResult<Response> {
    let snapshots = state.store().snapshots().await?;
    Ok(Json(json!({ "value": snapshots.iter().map(describe).collect::<Vec<_>>() })).into_response())
}

async fn find(state: &AppState, name: &SnapshotName) -> ApiResult<Snapshot> {
    let snapshots = state.store().snapshots().await?;
    snapshots
        .into_iter()
        .find(|s| &s.name == name)
        .ok_or_else(|| ApiError::NotFoundPlain(format!("No snapshot is named '{name}'.")))
}

/// `GET /_dmsync/snapshots/{name}`.
pub async fn get_snapshot(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let name = snapshot_name(&name)?;
    Ok(Json(describe(&find(&state, &name).await?)).into_response())
}

/// `DELETE /_dmsync/snapshots/{name}`.
pub async fn delete_snapshot(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let name = snapshot_name(&name)?;
    match state.store().delete_snapshot(&name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(dmsync_core::StoreError::NotFound) => {
            Err(ApiError::NotFoundPlain(format!("No snapshot is named '{name}'.")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /_dmsync/snapshots/{name}/restore`.
pub async fn restore_snapshot(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let name = snapshot_name(&name)?;
    match state.restore_snapshot(&name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(dmsync_core::StoreError::NotFound) => {
            Err(ApiError::NotFoundPlain(format!("No snapshot is named '{name}'.")))
        }
        Err(e) => Err(e.into()),
    }
}
