//! `/_dmsync/faults`: the fault rules of `control::faults`, added, listed and removed by a
//! tester. The admin API itself is never faulted.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use crate::control::faults::{FaultId, RuleInput};
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

/// `POST /_dmsync/faults`: 201 with the rule and its `id`; 400 naming what is wrong, and
/// nothing added, for a malformed rule.
pub(super) async fn add_fault(
    State(state): State<AppState>,
    GraphJson(input): GraphJson<RuleInput>,
) -> ApiResult<Response> {
    let view = state.faults().add(input).map_err(|refused| ApiError::BadRequest(refused.0))?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /_dmsync/faults`: every rule, with what is left of its `times` and how often it fired.
pub(super) async fn list_faults(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "value": state.faults().list() }))
}

/// `DELETE /_dmsync/faults/{id}`: 204, or 404 for an id no rule has.
pub(super) async fn delete_fault(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let unknown = || ApiError::NotFoundPlain(format!("No fault rule has the id '{id}'."));
    let fault = FaultId::parse(&id).ok_or_else(unknown)?;
    if state.faults().remove(fault) { Ok(StatusCode::NO_CONTENT) } else { Err(unknown()) }
}

/// `DELETE /_dmsync/faults`: removes every rule; 204.
pub(super) async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}
