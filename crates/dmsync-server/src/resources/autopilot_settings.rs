//! `windowsAutopilotSettings` (beta only) and its `sync` action.

use std::borrow::Cow;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dmsync_core::autopilot::{AutopilotSettings, SyncDecision, SyncStatus};
use dmsync_core::jobs::{JobPayload, NewJob};
use dmsync_core::permissions::Operation;
use dmsync_core::store::AutopilotSettingsStore;
use dmsync_graph::autopilot::{WindowsAutopilotSettings, WindowsAutopilotSettingsPatch, WindowsAutopilotSyncStatus};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::Select;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::{GraphJson, NoBody};
use crate::http::context::RequestContext;
use crate::http::list;
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BETA, Endpoint, GraphRoute};
use crate::jobs::autopilot_sync::AutopilotSync;
use crate::state::AppState;

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotSettings",
            vec![
                Endpoint::get(
                    get_windows_autopilot_settings,
                    OperationDoc::new(
                        "getWindowsAutopilotSettings",
                        Answer::Entity(schema::<WindowsAutopilotSettings>),
                    )
                    .query(list::ENTITY_OPTIONS),
                ),
                Endpoint::patch(
                    update_windows_autopilot_settings,
                    OperationDoc::new(
                        "updateWindowsAutopilotSettings",
                        Answer::Entity(schema::<WindowsAutopilotSettings>),
                    )
                    .body(schema::<WindowsAutopilotSettingsPatch>),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/windowsAutopilotSettings/sync",
            vec![Endpoint::post(
                sync_windows_autopilot_settings,
                OperationDoc::new("syncWindowsAutopilotSettings", Answer::NoContent)
                    .empty_body()
                    .errors(&[StatusCode::CONFLICT, StatusCode::TOO_MANY_REQUESTS]),
            )],
        ),
    ]
}

const PROPERTIES: &[&str] = &["id", "lastManualSyncTriggerDateTime", "lastSyncDateTime", "syncStatus"];

fn to_wire(settings: &AutopilotSettings) -> WindowsAutopilotSettings {
    WindowsAutopilotSettings {
        id: settings.id.to_string(),
        last_manual_sync_trigger_date_time: settings.last_manual_sync_trigger.into(),
        last_sync_date_time: settings.last_sync.into(),
        sync_status: match settings.sync_status {
            SyncStatus::Unknown => WindowsAutopilotSyncStatus::Unknown,
            SyncStatus::InProgress => WindowsAutopilotSyncStatus::InProgress,
            SyncStatus::Completed => WindowsAutopilotSyncStatus::Completed,
            SyncStatus::Failed => WindowsAutopilotSyncStatus::Failed,
        },
    }
}

fn document(version: Version, settings: &AutopilotSettings, select: Option<&[String]>) -> ApiResult<ODataBody> {
    let fragment = match select {
        Some(names) => Cow::Owned(format!("deviceManagement/windowsAutopilotSettings({})/$entity", names.join(","))),
        None => Cow::Borrowed("deviceManagement/windowsAutopilotSettings/$entity"),
    };
    ODataBody::entity(StatusCode::OK, &context_url(version.0, &fragment), &to_wire(settings), Select::new(select), &[])
}

/// Get windowsAutopilotSettings.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotsettings-get?view=graph-rest-beta
///
/// The document is kept in the page cache like a collection's page: it depends only on the
/// tenant's settings row and the URL, and scripts poll it while they wait for a sync.
async fn get_windows_autopilot_settings(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Extension(ctx): Extension<RequestContext>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::GetWindowsAutopilotSettings)?.tenant_id();
    state
        .cached_page(tenant, ctx.url(), async || {
            query.refuse_unsupported(list::ENTITY_OPTIONS)?;
            list::check_select(query.select.as_deref(), PROPERTIES, "windowsAutopilotSettings")?;
            let settings = state.settings().autopilot_settings(tenant).await?;
            document(version, &settings, query.select.as_deref())
        })
        .await
}

/// Update windowsAutopilotSettings. All three properties belong to the service (they record
/// what syncs did), so a PATCH is validated and acknowledged but changes nothing; see
/// docs/GRAPH-COMPAT.md.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotsettings-update?view=graph-rest-beta
async fn update_windows_autopilot_settings(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(_patch): GraphJson<WindowsAutopilotSettingsPatch>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::UpdateWindowsAutopilotSettings)?;
    let settings = state.settings().autopilot_settings(scope.tenant_id()).await?;
    document(version, &settings, None)
}

/// sync action: 204 and a background sync; 409 while one runs; 429 inside the cooldown.
/// https://learn.microsoft.com/graph/api/intune-enrollment-windowsautopilotsettings-sync?view=graph-rest-beta
async fn sync_windows_autopilot_settings(
    State(state): State<AppState>,
    caller: Caller,
    _body: NoBody,
) -> ApiResult<impl IntoResponse> {
    let scope = caller.authorize(Operation::SyncWindowsAutopilotSettings)?;
    let tenant = scope.tenant_id();
    let cooldown = state.config().sync_cooldown;
    let now = state.now();
    // A retry storm inside the cooldown is answered from a read (from memory on SQLite),
    // without queueing on the single writer: `certain_cooldown` says when the state read
    // proves a 429 (never when a sync is in progress, which is a 409). Anything else is decided
    // by the store's atomic conditional update.
    let settings = state.settings().autopilot_settings(tenant).await?;
    if let Some(remaining) = settings.certain_cooldown(now, cooldown) {
        return Err(cooling_down(&state, remaining));
    }
    let job = NewJob::new(&AutopilotSync {});
    let decision = state.settings().trigger_autopilot_sync(tenant, now, cooldown, &job).await?;
    match decision {
        SyncDecision::Started { job_id } => {
            tracing::info!(tenant.id = %tenant, job.id = %job_id, "autopilot sync started");
            crate::metrics::job_started(AutopilotSync::KIND);
            Ok(StatusCode::NO_CONTENT)
        }
        SyncDecision::AlreadyInProgress => Err(ApiError::SyncInProgress),
        SyncDecision::CoolingDown { remaining } => Err(cooling_down(&state, remaining)),
    }
}

/// The 429 of a sync inside the cooldown, with `remaining` in whole seconds, rounded up and
/// never 0: clients parse Retry-After as an integer.
fn cooling_down(state: &AppState, remaining: time::Duration) -> ApiError {
    let nanos = remaining.whole_nanoseconds().max(1);
    let seconds = ((nanos + 999_999_999) / 1_000_000_000) as u64;
    ApiError::SyncCoolingDown { remaining_seconds: seconds, send_retry_after: state.config().sync_retry_after }
}
