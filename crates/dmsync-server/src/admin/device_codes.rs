//! `/_dmsync/device-codes/{user_code}/approve` and `/decline`: the device code flow's
//! verification page without a browser, for unattended tests. Approving signs the named user in
//! without a password, as the page would after a good one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use dmsync_core::device_codes::{DeviceCode, DeviceCodeDecision, normalize_user_code};

use crate::auth::device_code::{approval, signing_in_user};
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Approval {
    user_principal_name: String,
}

/// The pending, live code a path names.
async fn pending_code(state: &AppState, segment: &str) -> ApiResult<(String, DeviceCode)> {
    let unknown = || ApiError::NotFoundPlain(format!("No pending device code has the user code '{segment}'."));
    let user_code = normalize_user_code(segment).ok_or_else(unknown)?;
    let code = state.store().pending_device_code(&user_code, state.now()).await?.ok_or_else(unknown)?;
    Ok((user_code, code))
}

/// `POST /_dmsync/device-codes/{user_code}/approve` with `{"userPrincipalName": U}`: 204; 404
/// for a code that is unknown, expired or decided, 400 for a user the code's tenant lacks.
pub(super) async fn approve_device_code(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    GraphJson(req): GraphJson<Approval>,
) -> ApiResult<StatusCode> {
    let (user_code, code) = pending_code(&state, &segment).await?;
    let upn = req.user_principal_name.trim();
    let Some(user) = signing_in_user(state.store(), &code, upn).await? else {
        return Err(ApiError::BadRequest(format!("The device code's tenant has no user '{upn}'.")));
    };
    decide(&state, &segment, &user_code, approval(&user)).await
}

/// `POST /_dmsync/device-codes/{user_code}/decline`: 204, as if the user cancelled on the page.
pub(super) async fn decline_device_code(
    State(state): State<AppState>,
    Path(segment): Path<String>,
) -> ApiResult<StatusCode> {
    let (user_code, _) = pending_code(&state, &segment).await?;
    decide(&state, &segment, &user_code, DeviceCodeDecision::Decline).await
}

async fn decide(
    state: &AppState,
    segment: &str,
    user_code: &str,
    decision: DeviceCodeDecision,
) -> ApiResult<StatusCode> {
    if state.store().decide_device_code(user_code, decision, state.now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundPlain(format!("No pending device code has the user code '{segment}'.")))
    }
}
