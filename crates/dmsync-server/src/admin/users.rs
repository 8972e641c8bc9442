//! `/_dmsync/tenants/{tid}/users`: the tenant's users, who sign in with a password (the password
//! grant), as an Entra administrator creates them. A user is created with the delegated
//! permissions consented for it (by default those of the development user), can have its
//! password changed and can be removed; either of the last two revokes its refresh tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use dmsync_core::identity::User;
use dmsync_core::permissions::ALL_PERMISSIONS;

use super::known_tenant;
use crate::auth::secrets::hash_secret;
use crate::bootstrap::DEV_USER_SCOPES;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewUser {
    user_principal_name: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    /// The delegated permissions consented for the user.
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PasswordChange {
    password: String,
}

/// A password as the admin API accepts it: never empty or blank.
fn password(value: &str) -> ApiResult<&str> {
    if value.trim().is_empty() {
        return Err(ApiError::BadRequest("password must not be empty.".into()));
    }
    Ok(value)
}

fn user_id(segment: &str) -> ApiResult<Uuid> {
    segment.parse().map_err(|_| ApiError::NotFoundPlain(format!("'{segment}' is not a user's object id (a GUID).")))
}

fn no_such_user(tenant: dmsync_core::TenantId, id: Uuid) -> ApiError {
    ApiError::NotFoundPlain(format!("Tenant {tenant} has no user {id}."))
}

/// `POST /_dmsync/tenants/{tid}/users`: 201 with the user's object id. The UPN must be in the
/// tenant's domain, as Entra requires a verified domain.
pub(super) async fn create_user(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    GraphJson(req): GraphJson<NewUser>,
) -> ApiResult<Response> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let store = state.store();
    let domain = store.tenant(tenant_id).await?.map(|t| t.domain).unwrap_or_default();
    let upn = req.user_principal_name.trim();
    let in_domain = upn.rsplit_once('@').is_some_and(|(name, d)| !name.is_empty() && d.eq_ignore_ascii_case(&domain));
    if !in_domain {
        return Err(ApiError::BadRequest(format!("userPrincipalName must be name@{domain}, the tenant's domain.")));
    }
    let scopes = req.scopes.unwrap_or_else(|| DEV_USER_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    if let Some(unknown) = scopes.iter().find(|s| !ALL_PERMISSIONS.contains(&s.as_str())) {
        return Err(ApiError::BadRequest(format!("'{unknown}' is not a permission dmsync serves.")));
    }
    let user = User {
        tenant_id,
        object_id: Uuid::new_v4(),
        user_principal_name: upn.to_owned(),
        display_name: req.display_name.unwrap_or_else(|| upn.split('@').next().unwrap_or(upn).to_owned()),
        password_hash: hash_secret(password(&req.password)?),
        scopes,
    };
    store.create_user(&user).await?;
    let body = json!({
        "id": user.object_id,
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "scopes": user.scopes,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `PATCH /_dmsync/tenants/{tid}/users/{id}` with `{"password": …}`: 204.
pub(super) async fn change_password(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    GraphJson(req): GraphJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = user_id(&id)?;
    if state.store().set_user_password(tenant_id, id, &hash_secret(password(&req.password)?)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_user(tenant_id, id))
    }
}

/// `DELETE /_dmsync/tenants/{tid}/users/{id}`: 204.
pub(super) async fn delete_user(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant_id = known_tenant(&state, &tenant).await?;
    let id = user_id(&id)?;
    if state.store().delete_user(tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_user(tenant_id, id))
    }
}
