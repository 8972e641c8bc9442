//! `GET` and `PUT /_dmsync/throttling`: the throttling mode and limits of this process, read and
//! switched while it runs (see `control::throttling`).

use axum::extract::State;
use axum::response::Json;
use serde::Deserialize;

use crate::control::throttling::{LimitsDocument, ThrottlingSetting};
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

pub async fn read_throttling(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.throttle().setting().describe())
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum Mode {
    Off,
    Documented,
}

/// Either a mode or limits (which throttle with them); not both.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottlingChange {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    limits: Option<LimitsDocument>,
}

pub async fn change_throttling(
    State(state): State<AppState>,
    GraphJson(change): GraphJson<ThrottlingChange>,
) -> ApiResult<Json<serde_json::Value>> {
    let setting = match (change.mode, change.limits) {
        (Some(Mode::Off), None) => ThrottlingSetting::Off,
        (Some(Mode::Documented), None) => ThrottlingSetting::Documented,
        (None, Some(limits)) => {
            limits.validate().map_err(ApiError::BadRequest)?;
            ThrottlingSetting::Custom(std::sync::Arc::new(limits))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "Give either {\"mode\":\"off\"|\"documented\"} or {\"limits\":{…}}, not both.".into(),
            ));
        }
    };
    state.throttle().set(setting);
    Ok(Json(state.throttle().setting().describe()))
}
