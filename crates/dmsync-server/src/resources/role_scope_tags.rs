//! `deviceManagement/roleScopeTags` (beta only, as in Graph): list, get, create, update and
//! delete. Every tenant has the built-in `Default` tag, id `0`, which takes no change.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dmsync_core::RoleScopeTagId;
use dmsync_core::permissions::Operation;
use dmsync_core::scope_tags::{RoleScopeTag, RoleScopeTagChanges, RoleScopeTagField, RoleScopeTagRefusal};
use dmsync_graph::odata::context_url;
use dmsync_graph::rbac::{RoleScopeTag as WireRoleScopeTag, RoleScopeTagInput};
use dmsync_graph::writer::Select;

use super::Version;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BETA, Endpoint, GraphRoute};
use crate::state::AppState;

const SET: &str = "deviceManagement/roleScopeTags";
const TYPE_NAME: &str = "roleScopeTag";
const PROPERTIES: &[&str] = &["id", "description", "displayName", "isBuiltIn"];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BETA,
            SET,
            vec![
                Endpoint::get(
                    list_role_scope_tags,
                    OperationDoc::new("listRoleScopeTags", Answer::Page(schema::<WireRoleScopeTag>))
                        .query(list::PAGE_OPTIONS),
                ),
                Endpoint::post(
                    create_role_scope_tag,
                    OperationDoc::new("createRoleScopeTag", Answer::CreatedOk(schema::<WireRoleScopeTag>))
                        .body(schema::<RoleScopeTagInput>),
                ),
            ],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/roleScopeTags/{id}",
            vec![
                Endpoint::get(
                    get_role_scope_tag,
                    OperationDoc::new("getRoleScopeTag", Answer::Entity(schema::<WireRoleScopeTag>))
                        .query(list::ENTITY_OPTIONS),
                ),
                Endpoint::patch(
                    update_role_scope_tag,
                    OperationDoc::new("updateRoleScopeTag", Answer::Entity(schema::<WireRoleScopeTag>))
                        .body(schema::<RoleScopeTagInput>),
                ),
                Endpoint::delete(delete_role_scope_tag, OperationDoc::new("deleteRoleScopeTag", Answer::NoContent)),
            ],
        ),
    ]
}

fn field(name: &str) -> Option<RoleScopeTagField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => RoleScopeTagField::Id,
        "displayname" => RoleScopeTagField::DisplayName,
        "description" => RoleScopeTagField::Description,
        _ => return None,
    })
}

fn sort_value(tag: &RoleScopeTag, field: RoleScopeTagField) -> String {
    match field {
        RoleScopeTagField::Id => tag.id.to_string(),
        RoleScopeTagField::DisplayName => tag.display_name.clone(),
        RoleScopeTagField::Description => tag.description.clone(),
    }
}

fn to_wire(tag: &RoleScopeTag) -> WireRoleScopeTag {
    WireRoleScopeTag {
        id: tag.id.to_string(),
        description: tag.description.clone(),
        display_name: tag.display_name.clone(),
        is_built_in: tag.is_built_in(),
    }
}

const COLLECTION: list::Collection<RoleScopeTag, RoleScopeTagField, WireRoleScopeTag> = list::Collection {
    set: SET,
    type_name: TYPE_NAME,
    properties: PROPERTIES,
    field,
    id: |tag| tag.id.into(),
    sort_value,
    wire: to_wire,
};

fn tag_id(id: &str) -> Result<RoleScopeTagId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The errors of a refused write, in Intune's shape (docs/GRAPH-COMPAT.md, "Role scope tags").
fn refused(refusal: RoleScopeTagRefusal, name: Option<&str>) -> ApiError {
    let intune = |message: String| ApiError::IntuneBadRequest { message, phrase: String::new() };
    match refusal {
        RoleScopeTagRefusal::NotFound => ApiError::NotFound,
        RoleScopeTagRefusal::BuiltIn => intune("The built-in scope tag 'Default' cannot be modified or deleted".into()),
        RoleScopeTagRefusal::DuplicateName => {
            intune(format!("A scope tag named '{}' already exists", name.unwrap_or_default()))
        }
    }
}

/// A display name a tag can have: not empty or blank.
fn checked_name(name: Option<&str>) -> Result<Option<&str>, ApiError> {
    match name {
        Some(name) if name.trim().is_empty() => Err(ApiError::IntuneBadRequest {
            message: "The scope tag's displayName cannot be empty".into(),
            phrase: String::new(),
        }),
        name => Ok(name),
    }
}

fn entity_body(status: StatusCode, version: Version, tag: &RoleScopeTag) -> ApiResult<ODataBody> {
    ODataBody::entity(
        status,
        &context_url(version.0, &list::entity_fragment(SET, None)),
        &to_wire(tag),
        Select::ALL,
        &[],
    )
}

/// List roleScopeTags: the Default tag and the tenant's custom tags, by id.
/// https://learn.microsoft.com/graph/api/intune-rbac-rolescopetag-list?view=graph-rest-beta
async fn list_role_scope_tags(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadRoleScopeTags)?.tenant_id();
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &request,
        async |page| store.list_role_scope_tags(tenant, page).await,
        async |filter| store.count_role_scope_tags(tenant, filter).await,
    );
    page.await
}

/// Get roleScopeTag.
/// https://learn.microsoft.com/graph/api/intune-rbac-rolescopetag-get?view=graph-rest-beta
async fn get_role_scope_tag(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadRoleScopeTags)?.tenant_id();
    let store = state.store();
    COLLECTION.entity(&query, version.0, &id, async |id| store.role_scope_tag(tenant, id).await).await
}

/// Create roleScopeTag: 200 with the tag and the tenant's next id. The page documents 201;
/// Intune answers 200, and IntuneCD, which checks, expects 200.
/// https://learn.microsoft.com/graph/api/intune-rbac-rolescopetag-create?view=graph-rest-beta
async fn create_role_scope_tag(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(input): GraphJson<RoleScopeTagInput>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::WriteRoleScopeTags)?;
    let name = checked_name(input.display_name.as_deref())?.ok_or_else(|| ApiError::IntuneBadRequest {
        message: "The scope tag's displayName is required".into(),
        phrase: String::new(),
    })?;
    let description = input.description.as_deref().unwrap_or_default();
    let tag = state
        .store()
        .create_role_scope_tag(scope.tenant_id(), name, description)
        .await?
        .map_err(|refusal| refused(refusal, Some(name)))?;
    entity_body(StatusCode::OK, version, &tag)
}

/// Update roleScopeTag: 200 with the tag. Sending the Default tag back unchanged is accepted.
/// https://learn.microsoft.com/graph/api/intune-rbac-rolescopetag-update?view=graph-rest-beta
async fn update_role_scope_tag(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    GraphJson(input): GraphJson<RoleScopeTagInput>,
) -> ApiResult<ODataBody> {
    let scope = caller.authorize(Operation::WriteRoleScopeTags)?;
    let id = tag_id(&id)?;
    let name = checked_name(input.display_name.as_deref())?;
    let changes = RoleScopeTagChanges { display_name: name.map(str::to_owned), description: input.description.clone() };
    let tag = state
        .store()
        .update_role_scope_tag(scope.tenant_id(), id, &changes)
        .await?
        .map_err(|refusal| refused(refusal, name))?;
    entity_body(StatusCode::OK, version, &tag)
}

/// Delete roleScopeTag: 204; the Default tag is refused.
/// https://learn.microsoft.com/graph/api/intune-rbac-rolescopetag-delete?view=graph-rest-beta
async fn delete_role_scope_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.authorize(Operation::DeleteRoleScopeTag)?;
    state.store().delete_role_scope_tag(scope.tenant_id(), tag_id(&id)?).await?.map_err(|r| refused(r, None))?;
    Ok(StatusCode::NO_CONTENT)
}
