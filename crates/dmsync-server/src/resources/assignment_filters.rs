//! `deviceManagement/assignmentFilters` (beta), read only and always empty. dmsync keeps no
//! assignment filters, but every assignment target Graph returns names a filter
//! (`deviceAndAppManagementAssignmentFilterId`, `null` here), and IntuneCD reads this list to map
//! filter names to ids whenever it writes an assignment. An empty list is the truth about a
//! dmsync tenant: no assignment is filtered (docs/GRAPH-COMPAT.md, "Assignment filters").

use axum::extract::{Path, State};
use dmsync_core::permissions::Operation;
use dmsync_core::query::CursorId;
use dmsync_graph::rbac::AssignmentFilter;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BETA, Endpoint, GraphRoute};
use crate::resources::Version;
use crate::state::AppState;

const SET: &str = "deviceManagement/assignmentFilters";
const TYPE_NAME: &str = "deviceAndAppManagementAssignmentFilter";
const PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "displayName",
    "description",
    "platform",
    "rule",
    "roleScopeTags",
    "assignmentFilterManagementType",
];

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BETA,
            SET,
            vec![Endpoint::get(
                list_assignment_filters,
                OperationDoc::new("listAssignmentFilters", Answer::Page(schema::<AssignmentFilter>))
                    .query(list::PAGE_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BETA,
            "deviceManagement/assignmentFilters/{id}",
            vec![Endpoint::get(
                get_assignment_filter,
                OperationDoc::new("getAssignmentFilter", Answer::Entity(schema::<AssignmentFilter>))
                    .query(list::ENTITY_OPTIONS),
            )],
        ),
    ]
}

/// The fields `$filter` and `$orderby` may name; they match nothing, as there is nothing.
#[derive(Debug, Clone, Copy)]
enum FilterField {
    Id,
    DisplayName,
}

fn field(name: &str) -> Option<FilterField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => FilterField::Id,
        "displayname" => FilterField::DisplayName,
        _ => return None,
    })
}

fn sort_value(filter: &AssignmentFilter, field: FilterField) -> String {
    match field {
        FilterField::Id => filter.id.clone(),
        FilterField::DisplayName => filter.display_name.clone(),
    }
}

const COLLECTION: list::Collection<AssignmentFilter, FilterField, AssignmentFilter> = list::Collection {
    set: SET,
    type_name: TYPE_NAME,
    properties: PROPERTIES,
    field,
    // Never called: there is no item to page past.
    id: |_| CursorId::Number(0),
    sort_value,
    wire: AssignmentFilter::clone,
};

/// List deviceAndAppManagementAssignmentFilters: always an empty page.
/// https://learn.microsoft.com/graph/api/intune-policyset-deviceandappmanagementassignmentfilter-list?view=graph-rest-beta
async fn list_assignment_filters(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadAssignmentFilters)?.tenant_id();
    COLLECTION.page(&state, tenant, &request, async |_| Ok(Vec::new()), async |_| Ok(0)).await
}

/// Get deviceAndAppManagementAssignmentFilter: every id is Intune's 404.
/// https://learn.microsoft.com/graph/api/intune-policyset-deviceandappmanagementassignmentfilter-get?view=graph-rest-beta
async fn get_assignment_filter(
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    caller.authorize(Operation::ReadAssignmentFilters)?;
    COLLECTION.entity(&query, version.0, &id, async |_: String| Ok(None)).await
}
