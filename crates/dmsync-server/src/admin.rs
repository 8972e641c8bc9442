//! The admin API under `/_dmsync/`: what a real tenant gets from outside Graph (tenants,
//! tokens for any principal, Autopilot registrations from OEMs) plus control of the Clock.
//! Every route needs the admin token.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use dmsync_core::autopilot::NewRegistration;
use dmsync_core::identity::Tenant;
use dmsync_core::permissions::{AccountType, PrincipalKind};
use dmsync_core::{ConnectorId, TenantId};

use crate::auth::idp::MintRequest;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::registrations::{self, UploadError};
use crate::state::AppState;

mod applications;
mod device_codes;
mod faults;
mod requests;
mod snapshots;
mod throttling;
mod users;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/_dmsync/tokens", post(mint_token))
        .route("/_dmsync/tenants", post(create_tenant).get(list_tenants))
        .route("/_dmsync/tenants/{tenant}/users", post(users::create_user))
        .route(
            "/_dmsync/tenants/{tenant}/applications",
            post(applications::create_application).get(applications::list_applications),
        )
        .route(
            "/_dmsync/tenants/{tenant}/applications/{id}",
            get(applications::get_application).delete(applications::delete_application),
        )
        .route("/_dmsync/tenants/{tenant}/applications/{id}/secrets", post(applications::replace_secret))
        .route("/_dmsync/tenants/{tenant}/applications/{id}/certificates", post(applications::add_certificate))
        .route(
            "/_dmsync/tenants/{tenant}/applications/{id}/certificates/{thumbprint}",
            delete(applications::delete_certificate),
        )
        .route("/_dmsync/tenants/{tenant}/users/{id}", delete(users::delete_user).patch(users::change_password))
        // Streamed, so exempt from the Graph body limit; bounded in rows instead.
        .route(
            "/_dmsync/tenants/{tenant}/autopilot/registrations",
            post(add_registrations).layer(axum::middleware::from_fn(crate::serve::per_stall_body_timeout)),
        )
        .route("/_dmsync/tenants/{tenant}/autopilot/registrations/{serial}", delete(delete_registration))
        .route("/_dmsync/tenants/{tenant}/exchangeConnectors/{id}/source", axum::routing::put(set_connector_source))
        .route("/_dmsync/device-codes/{user_code}/approve", post(device_codes::approve_device_code))
        .route("/_dmsync/device-codes/{user_code}/decline", post(device_codes::decline_device_code))
        .route("/_dmsync/reset", post(snapshots::reset))
        .route("/_dmsync/snapshots", post(snapshots::create_snapshot).get(snapshots::list_snapshots))
        .route("/_dmsync/snapshots/{name}", get(snapshots::get_snapshot).delete(snapshots::delete_snapshot))
        .route("/_dmsync/snapshots/{name}/restore", post(snapshots::restore_snapshot))
        .route("/_dmsync/faults", post(faults::add_fault).get(faults::list_faults).delete(faults::clear_faults))
        .route("/_dmsync/faults/{id}", delete(faults::delete_fault))
        .route("/_dmsync/requests", get(requests::list_requests).delete(requests::clear_requests))
        .route("/_dmsync/requests/count", post(requests::count_requests))
        .route("/_dmsync/clock", get(read_clock))
        .route("/_dmsync/clock/advance", post(advance_clock))
        .route("/_dmsync/throttling", get(throttling::read_throttling).put(throttling::change_throttling))
        .route(
            "/_dmsync/{*rest}",
            axum::routing::any(|| async {
                ApiError::NotFoundPlain("No such admin route; see docs/GRAPH-COMPAT.md, \"The admin API\".".into())
            }),
        )
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // The name first: a page that rebound its name to this server must not learn whether a
    // token works, nor use the development token that loopback accepts.
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    if let Err(refused) = crate::http::host::check_admin_host(state.config(), parts.version, uri, &parts.headers) {
        return refused.into_response();
    }
    let presented = crate::auth::bearer_token(&parts).map(str::trim);
    let accepted = match (state.config().effective_admin_token(), presented) {
        (Some(expected), Some(given)) => admin_token_matches(&expected, given),
        _ => false,
    };
    if !accepted {
        return ApiError::AdminUnauthorized.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Compares the presented admin token with the configured one in constant time. Both are
/// hashed first, so neither the position of the first difference nor the expected length
/// shows in the timing. An empty or blank token never matches, whatever is configured.
pub(crate) fn admin_token_matches(expected: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    if expected.trim().is_empty() || given.trim().is_empty() {
        return false;
    }
    Sha256::digest(expected.as_bytes()).ct_eq(&Sha256::digest(given.as_bytes())).into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    tenant_id: Option<TenantId>,
    kind: TokenKind,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    account_type: Option<AccountType>,
    #[serde(default)]
    expires_in_seconds: Option<i64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum TokenKind {
    Delegated,
    Application,
}

/// `POST /_dmsync/tokens`: a token for any principal, including ones the bootstrap lacks.
async fn mint_token(State(state): State<AppState>, GraphJson(req): GraphJson<TokenRequest>) -> ApiResult<Response> {
    let account = req.account_type.unwrap_or(AccountType::Work);
    let tenant_id = match account {
        // A personal account's token always names the MSA tenant, whatever was asked.
        AccountType::Personal => dmsync_core::PERSONAL_ACCOUNT_TENANT,
        AccountType::Work => {
            let id = req.tenant_id.ok_or_else(|| ApiError::BadRequest("tenantId is required.".into()))?;
            known_tenant(&state, &id.to_string()).await?
        }
    };
    let lifetime = req.expires_in_seconds.unwrap_or(crate::auth::idp::TOKEN_LIFETIME_SECONDS);
    let kind = match req.kind {
        TokenKind::Delegated => PrincipalKind::Delegated,
        TokenKind::Application => PrincipalKind::Application,
    };
    let object_id = Uuid::new_v4();
    let token = state
        .issuer()
        .mint(MintRequest {
            tenant_id,
            kind,
            permissions: req.permissions,
            app_id: Uuid::new_v4(),
            app_display_name: "dmsync minted".into(),
            object_id,
            user_principal_name: (kind == PrincipalKind::Delegated).then(|| format!("user-{object_id}@dmsync.invalid")),
            name: None,
            lifetime_seconds: lifetime,
        })
        .await?;
    Ok(Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": lifetime })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TenantRequest {
    tenant_id: TenantId,
    domain: String,
}

/// The tenant of an admin path, which must exist.
async fn known_tenant(state: &AppState, segment: &str) -> ApiResult<TenantId> {
    let id: TenantId =
        segment.parse().map_err(|_| ApiError::NotFoundPlain(format!("'{segment}' is not a tenant id (a GUID).")))?;
    if state.tenant_exists(id).await? {
        Ok(id)
    } else {
        Err(ApiError::NotFoundPlain(format!("Tenant {id} does not exist; create it with POST /_dmsync/tenants.")))
    }
}

/// The most tenants `GET /_dmsync/tenants` lists.
const MAX_LISTED_TENANTS: u32 = 10_000;

/// `GET /_dmsync/tenants`: every tenant, by domain.
async fn list_tenants(State(state): State<AppState>) -> ApiResult<Response> {
    let tenants = state.store().list_tenants(MAX_LISTED_TENANTS).await?;
    let value: Vec<_> = tenants.iter().map(|t| json!({ "tenantId": t.id, "domain": t.domain })).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `POST /_dmsync/tenants`.
async fn create_tenant(State(state): State<AppState>, GraphJson(req): GraphJson<TenantRequest>) -> ApiResult<Response> {
    let domain = req.domain.trim();
    if domain.is_empty() || domain.contains(char::is_whitespace) {
        return Err(ApiError::BadRequest("domain must be a DNS name such as fabrikam.onmicrosoft.com.".into()));
    }
    if req.tenant_id == dmsync_core::PERSONAL_ACCOUNT_TENANT {
        return Err(ApiError::BadRequest("That id is the personal-account (MSA) tenant.".into()));
    }
    state.store().create_tenant(&Tenant { id: req.tenant_id, domain: domain.to_owned() }, state.now()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "tenantId": req.tenant_id, "domain": domain }))).into_response())
}

/// `POST /_dmsync/tenants/{tid}/autopilot/registrations`: a JSON list or the Autopilot CSV
/// (`Content-Type: text/csv`), read as a stream and staged in batches; all or nothing.
async fn add_registrations(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let csv = match content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "text/csv" | "application/csv" => true,
        "application/json" | "" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Registrations are sent as application/json or text/csv, not {other}."
            )));
        }
    };

    // The parser runs on a blocking thread over a bridge to the body stream and writes the good
    // rows to a spool file, so memory stays bounded whatever the upload's size, and the store is
    // not asked for anything while the client is still sending: a stalled upload must not hold
    // the database's writer (on SQLite, the one connection every write waits for).
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let parsed = tokio::task::spawn_blocking(move || {
        let mut spool = registrations::Spool::new().map_err(|e| UploadError::Spool(e.to_string()))?;
        let mut spool_error = None;
        let sink = |batch: Vec<(u64, NewRegistration)>| match spool.append(&batch) {
            Ok(()) => true,
            Err(e) => {
                spool_error = Some(e.to_string());
                false
            }
        };
        let outcome =
            if csv { registrations::parse_csv(reader, sink) } else { registrations::parse_json(reader, sink) };
        match (outcome, spool_error) {
            (_, Some(e)) => Err(UploadError::Spool(e)),
            (outcome, None) => outcome.map(|outcome| (outcome, spool)),
        }
    });
    let (outcome, spool) = match parsed.await.map_err(|e| ApiError::Internal(format!("registration parser: {e}")))? {
        Ok(parsed) => parsed,
        Err(UploadError::Malformed(message)) => return Err(ApiError::BadRequest(message)),
        Err(UploadError::TooManyRows) => {
            return Err(ApiError::BadRequest(format!("An upload takes at most {} rows.", registrations::MAX_ROWS)));
        }
        Err(UploadError::Abandoned) => return Err(ApiError::Internal("registration upload abandoned".into())),
        Err(UploadError::Spool(e)) => return Err(ApiError::Internal(format!("registration spool: {e}"))),
    };
    if !outcome.refused.is_empty() {
        return Err(ApiError::RegistrationsRefused(outcome.refused));
    }

    // The whole upload is here: stage it from the spool and commit, one bounded piece of work
    // that waits on the local disk only. The spool is read on a blocking thread and handed over
    // through a small channel.
    let (sender, mut batches) = tokio::sync::mpsc::channel::<Vec<(u64, NewRegistration)>>(2);
    let replay = tokio::task::spawn_blocking(move || spool.replay(|batch| sender.blocking_send(batch).is_ok()));
    let mut import = state.store().begin_registrations(tenant_id).await?;
    let mut staged = 0usize;
    while let Some(batch) = batches.recv().await {
        staged += batch.len();
        if let Err(e) = import.stage(&batch).await {
            // Dropping the receiver stops the replay; dropping the import rolls back.
            drop(batches);
            let _ = replay.await;
            return Err(e.into());
        }
    }
    replay
        .await
        .map_err(|e| ApiError::Internal(format!("registration spool: {e}")))?
        .map_err(|e| ApiError::Internal(format!("registration spool: {e}")))?;
    tracing::info!(tenant.id = %tenant_id, rows = outcome.rows, staged, "registration upload staged");
    match import.commit(state.now()).await? {
        Ok(summary) => Ok(Json(json!({
            "created": summary.created, "updated": summary.updated, "unchanged": summary.unchanged,
        }))
        .into_response()),
        Err(rejections) => Err(ApiError::RegistrationsRefused(rejections)),
    }
}

/// `DELETE /_dmsync/tenants/{tid}/autopilot/registrations/{serialNumber}`: deregisters a device.
/// Its device identity disappears at the next sync, as a deregistration in the deployment
/// service would.
async fn delete_registration(
    State(state): State<AppState>,
    Path((tenant, serial)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    if state.store().delete_registration(tenant_id, &serial).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundPlain(format!("Tenant {tenant_id} has no registration with serial number '{serial}'.")))
    }
}

/// `PUT /_dmsync/tenants/{tid}/exchangeConnectors/{id}/source`: where the connector reads its
/// Exchange organization's mobile devices (`{"kind":"file","path":…}` or
/// `{"kind":"http","url":…}`, the URL's host on `--exchange-source-allow-host`).
async fn set_connector_source(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    GraphJson(source): GraphJson<dmsync_core::exchange::ConnectorSource>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    if let dmsync_core::exchange::ConnectorSource::Http { url } = &source
        && !crate::exchange_source::host_allowed(url, &state.config().exchange_source_allowed_hosts)
    {
        return Err(ApiError::BadRequest(format!(
            "The host of {url} is not allowed; start the server with --exchange-source-allow-host naming it."
        )));
    }
    let id: ConnectorId = id.parse().map_err(|_| ApiError::NotFoundPlain(format!("'{id}' is not a connector id.")))?;
    if state.store().set_connector_source(tenant_id, id, &source, state.now()).await? {
        state.clock_advanced().notify_waiters();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundPlain(format!("Tenant {tenant_id} has no Exchange connector {id}.")))
    }
}

fn clock_document(state: &AppState) -> serde_json::Value {
    json!({
        "now": dmsync_graph::GraphDateTime::from(state.now()).format(),
        "offsetSeconds": state.clock_offset().as_seconds_f64(),
    })
}

async fn read_clock(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(clock_document(&state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    seconds: f64,
}

/// `POST /_dmsync/clock/advance {"seconds":N}`: moves the server's time forward.
async fn advance_clock(
    State(state): State<AppState>,
    GraphJson(req): GraphJson<AdvanceRequest>,
) -> ApiResult<Response> {
    if !req.seconds.is_finite() || req.seconds < 0.0 || req.seconds > 100.0 * 365.0 * 86400.0 {
        return Err(ApiError::BadRequest("seconds must be a non-negative number of at most 100 years.".into()));
    }
    state.advance_clock(time::Duration::seconds_f64(req.seconds)).await?;
    Ok(Json(clock_document(&state)).into_response())
}

#[cfg(test)]
mod tests {
    use super::admin_token_matches;

    #[test]
    fn an_empty_admin_token_never_matches() {
        assert!(admin_token_matches("s3cret", "s3cret"));
        assert!(!admin_token_matches("s3cret", "s3creT"));
        assert!(!admin_token_matches("s3cret", "s3cret-longer"));
        for blank in ["", " ", "\t"] {
            assert!(!admin_token_matches(blank, blank), "{blank:?}");
            assert!(!admin_token_matches(blank, ""), "{blank:?}");
            assert!(!admin_token_matches("s3cret", blank), "{blank:?}");
        }
    }
}
