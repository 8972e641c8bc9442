//! `groups` (v1.0 and beta): Entra security groups, assigned or dynamic, and their device
//! members. List (with `$filter` on `id`, `displayName` and `mailNickname`, and Entra's
//! advanced queries, as `devices` has them), get, create, update and delete; `members` (list),
//! `members/$ref` (add) and `members/{id}/$ref` (remove); and a device's `memberOf` (its
//! groups). A dynamic group's members are its rule's, written by the membership evaluation
//! after `--group-processing-delay` ([`crate::membership`]).

use std::borrow::Cow;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dmsync_core::groups::{DYNAMIC_MEMBERSHIP, Group, GroupField, GroupInvalid, MemberChange, ProcessingState};
use dmsync_core::permissions::Operation;
use dmsync_core::{EntraDeviceId, GroupId, TenantId};
use dmsync_graph::ApiVersion;
use dmsync_graph::directory::{Device, Group as WireGroup, GroupInput, ReferenceInput};
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::{PageWriter, Select};

use super::Version;
use super::devices;
use super::directory::{SearchMatch, advanced_query};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc, schema};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::membership;
use crate::state::AppState;

const SET: &str = "groups";
const TYPE_NAME: &str = "group";
const PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
];

/// The list's options: a plain collection's, and `$search`.
const LIST_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count", "$search"];
/// What `$search` may name on groups.
const SEARCHABLE: &[(&str, SearchMatch)] =
    &[("displayName", SearchMatch::Prefix), ("mailNickname", SearchMatch::Prefix)];
/// The members list's options.
const MEMBER_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken"];

/// Entra's limits on the lengths of a group's strings.
const MAX_DISPLAY_NAME: usize = 256;
const MAX_MAIL_NICKNAME: usize = 64;
const MAX_DESCRIPTION: usize = 1024;

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![
                Endpoint::get(
                    list_groups,
                    OperationDoc::new("listGroups", Answer::Page(schema::<WireGroup>)).query(LIST_OPTIONS),
                ),
                Endpoint::post(
                    create_group,
                    OperationDoc::new("createGroup", Answer::Created(schema::<WireGroup>)).body(schema::<GroupInput>),
                ),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "groups/{id}",
            vec![
                Endpoint::get(
                    get_group,
                    OperationDoc::new("getGroup", Answer::Entity(schema::<WireGroup>)).query(list::ENTITY_OPTIONS),
                ),
                Endpoint::patch(
                    update_group,
                    OperationDoc::new("updateGroup", Answer::NoContent).body(schema::<GroupInput>),
                ),
                Endpoint::delete(delete_group, OperationDoc::new("deleteGroup", Answer::NoContent)),
            ],
        ),
        GraphRoute::new(
            BOTH,
            "groups/{id}/members",
            vec![Endpoint::get(
                list_group_members,
                OperationDoc::new("listGroupMembers", Answer::Page(schema::<Device>)).query(MEMBER_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "devices/{id}/memberOf",
            vec![Endpoint::get(
                list_device_member_of,
                OperationDoc::new("listDeviceMemberOf", Answer::Page(schema::<WireGroup>)).query(MEMBER_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "groups/{id}/members/$ref",
            vec![Endpoint::post(
                add_group_member,
                OperationDoc::new("addGroupMember", Answer::NoContent).body(schema::<ReferenceInput>),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "groups/{id}/members/{memberId}/$ref",
            vec![Endpoint::delete(remove_group_member, OperationDoc::new("removeGroupMember", Answer::NoContent))],
        ),
    ]
}

fn field(name: &str) -> Option<GroupField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => GroupField::Id,
        "displayname" => GroupField::DisplayName,
        "mailnickname" => GroupField::MailNickname,
        _ => return None,
    })
}

fn sort_value(group: &Group, field: GroupField) -> String {
    match field {
        GroupField::Id => group.id.to_string(),
        GroupField::DisplayName => group.display_name.clone(),
        GroupField::MailNickname => group.mail_nickname.clone(),
    }
}

/// The object's security identifier as Entra derives it from the object id: `S-1-12-1-` and
/// the GUID's sixteen bytes (in their little-endian in-memory order) as four 32-bit numbers.
fn security_identifier(id: GroupId) -> String {
    let bytes = id.as_uuid().to_bytes_le();
    let parts: Vec<String> = bytes
        .chunks_exact(4)
        .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]).to_string())
        .collect();
    format!("S-1-12-1-{}", parts.join("-"))
}

/// The same properties on v1.0 and beta: the ones Graph returns by default for a group, with
/// what dmsync has no data for `null` or empty (docs/GRAPH-COMPAT.md, "Groups").
fn to_wire(group: &Group) -> WireGroup {
    WireGroup {
        id: group.id.to_string(),
        deleted_date_time: None,
        classification: None,
        created_date_time: group.created_at.into(),
        creation_options: Vec::new(),
        description: group.description.clone(),
        display_name: group.display_name.clone(),
        expiration_date_time: None,
        group_types: group.group_types.clone(),
        is_assignable_to_role: None,
        mail: None,
        mail_enabled: group.mail_enabled,
        mail_nickname: group.mail_nickname.clone(),
        membership_rule: group.membership_rule.clone(),
        membership_rule_processing_state: group.processing_state.map(|state| state.as_str().to_owned()),
        on_premises_domain_name: None,
        on_premises_last_sync_date_time: None,
        on_premises_net_bios_name: None,
        on_premises_sam_account_name: None,
        on_premises_security_identifier: None,
        on_premises_sync_enabled: None,
        preferred_data_location: None,
        preferred_language: None,
        proxy_addresses: Vec::new(),
        renewed_date_time: group.created_at.into(),
        resource_behavior_options: Vec::new(),
        resource_provisioning_options: Vec::new(),
        security_enabled: group.security_enabled,
        security_identifier: security_identifier(group.id),
        theme: None,
        visibility: None,
        on_premises_provisioning_errors: Vec::new(),
    }
}

const COLLECTION: list::Collection<Group, GroupField, WireGroup> = list::Collection {
    set: SET,
    type_name: TYPE_NAME,
    properties: PROPERTIES,
    field,
    id: |group| group.id.into(),
    sort_value,
    wire: to_wire,
};

/// Entra's 404 for an object id, as the client wrote it.
fn not_found(id: &str) -> ApiError {
    ApiError::DirectoryObjectNotFound(id.to_owned())
}

fn group_id(id: &str) -> Result<GroupId, ApiError> {
    id.parse().map_err(|_| not_found(id))
}

/// A required property the body leaves out.
fn required(property: &str) -> ApiError {
    ApiError::directory_bad_request(format!("A value is required for property '{property}' of resource 'Group'."))
}

/// A property whose value Entra refuses.
fn invalid(property: &str) -> ApiError {
    ApiError::directory_bad_request(format!("Invalid value specified for property '{property}' of resource 'Group'."))
}

impl From<GroupInvalid> for ApiError {
    fn from(invalid_group: GroupInvalid) -> ApiError {
        match invalid_group {
            GroupInvalid::Required(property) => invalid(property),
            GroupInvalid::DynamicWithoutRule => ApiError::directory_bad_request(
                "The membershipRule property is required when groupTypes contains 'DynamicMembership'.",
            ),
            GroupInvalid::RuleWithoutDynamic => ApiError::directory_bad_request(
                "The membershipRule property can be set only when groupTypes contains 'DynamicMembership'.",
            ),
            GroupInvalid::Rule(reason) => ApiError::directory_bad_request(format!("Invalid membershipRule: {reason}")),
        }
    }
}

/// A mail nickname Entra takes: ASCII, without spaces or `@ ( ) \ [ ] " ; : < > ,`.
fn valid_mail_nickname(nickname: &str) -> bool {
    nickname.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && !" @()\\[]\";:<>,".contains(c))
}

/// Applies the body's properties to `group`, checking each as Entra does; the group as a whole
/// is checked afterwards ([`Group::validate`]).
fn apply(group: &mut Group, input: GroupInput) -> Result<(), ApiError> {
    if let Some(name) = input.display_name {
        if name.chars().count() > MAX_DISPLAY_NAME {
            return Err(invalid("displayName"));
        }
        group.display_name = name;
    }
    if let Some(description) = input.description {
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid("description"));
        }
        group.description = Some(description).filter(|d| !d.is_empty());
    }
    if let Some(nickname) = input.mail_nickname {
        if nickname.len() > MAX_MAIL_NICKNAME || !valid_mail_nickname(&nickname) {
            return Err(invalid("mailNickname"));
        }
        group.mail_nickname = nickname;
    }
    if let Some(mail_enabled) = input.mail_enabled {
        group.mail_enabled = mail_enabled;
    }
    if let Some(security_enabled) = input.security_enabled {
        group.security_enabled = security_enabled;
    }
    if let Some(types) = input.group_types {
        // dmsync serves security groups, assigned or dynamic; Microsoft 365 groups (`Unified`)
        // need Exchange, which it does not emulate.
        if types.iter().any(|t| !t.eq_ignore_ascii_case(DYNAMIC_MEMBERSHIP)) {
            return Err(invalid("groupTypes"));
        }
        group.group_types = if types.is_empty() { Vec::new() } else { vec![DYNAMIC_MEMBERSHIP.to_owned()] };
    }
    if let Some(rule) = input.membership_rule {
        group.membership_rule = Some(rule).filter(|r| !r.is_empty());
    }
    if let Some(state) = input.membership_rule_processing_state {
        group.processing_state =
            Some(ProcessingState::parse(&state).ok_or_else(|| invalid("membershipRuleProcessingState"))?);
    }
    // Only security groups: a mail-enabled group is a Microsoft 365 or distribution group.
    if group.mail_enabled || !group.security_enabled {
        return Err(ApiError::directory_bad_request(
            "Only security groups (mailEnabled false, securityEnabled true) can be created or kept here.",
        ));
    }
    Ok(())
}

fn entity_body(
    status: StatusCode,
    version: ApiVersion,
    group: &Group,
    select: Option<&[String]>,
) -> ApiResult<ODataBody> {
    let context = context_url(version, &list::entity_fragment(SET, select));
    ODataBody::entity(status, &context, &to_wire(group), Select::new(select), &[])
}

/// List groups.
/// https://learn.microsoft.com/graph/api/group-list
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    mut request: PageRequest,
    headers: HeaderMap,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadGroups)?.tenant_id();
    advanced_query(&mut request, &headers, SEARCHABLE)?;
    let store = &state.store();
    let page = COLLECTION.page(
        &state,
        tenant,
        &request,
        async |page| store.list_groups(tenant, page).await,
        async |filter| store.count_groups(tenant, filter).await,
    );
    page.await
}

/// Get group. An id that names no group of the tenant is Entra's 404.
/// https://learn.microsoft.com/graph/api/group-get
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadGroups)?.tenant_id();
    query.refuse_unsupported(list::ENTITY_OPTIONS)?;
    let select = query.select.as_deref();
    list::check_select(select, PROPERTIES, TYPE_NAME)?;
    let group = state.store().group(tenant, group_id(&id)?).await?.ok_or_else(|| not_found(&id))?;
    entity_body(StatusCode::OK, version.0, &group, select)
}

/// Create group: 201 with the group. A dynamic group's first members come with its first
/// evaluation, `--group-processing-delay` later.
/// https://learn.microsoft.com/graph/api/group-post-groups
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    GraphJson(input): GraphJson<GroupInput>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::CreateGroup)?.tenant_id();
    for (property, present) in [
        ("displayName", input.display_name.is_some()),
        ("mailEnabled", input.mail_enabled.is_some()),
        ("mailNickname", input.mail_nickname.is_some()),
        ("securityEnabled", input.security_enabled.is_some()),
    ] {
        if !present {
            return Err(required(property));
        }
    }
    let now = state.now();
    let mut group = Group {
        tenant_id: tenant,
        id: GroupId::new(),
        display_name: String::new(),
        description: None,
        mail_nickname: String::new(),
        mail_enabled: false,
        security_enabled: true,
        group_types: Vec::new(),
        membership_rule: None,
        processing_state: None,
        created_at: now,
    };
    let members = bound_members(input.members_bind.as_deref())?;
    apply(&mut group, input)?;
    group.validate()?;
    let store = state.store();
    let due = membership::evaluation_due(&state);
    let change = store.create_group(&group, &members, now, due, &membership::evaluation_job()).await?;
    changed(&state, tenant, !members.is_empty(), member_change(change, &group.id.to_string())).await?;
    entity_body(StatusCode::CREATED, version.0, &group, None)
}

/// Update group: 204. A change to a dynamic group's rule, its processing state or its kind
/// asks for an evaluation.
/// https://learn.microsoft.com/graph/api/group-update
async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    GraphJson(input): GraphJson<GroupInput>,
) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteGroup)?.tenant_id();
    let store = state.store();
    let mut group = store.group(tenant, group_id(&id)?).await?.ok_or_else(|| not_found(&id))?;
    let before = group.clone();
    let members = bound_members(input.members_bind.as_deref())?;
    apply(&mut group, input)?;
    group.validate()?;
    let rule_changed = group.membership_rule != before.membership_rule
        || group.processing_state != before.processing_state
        || group.is_dynamic() != before.is_dynamic();
    let job = membership::evaluation_job();
    let evaluation = rule_changed.then_some(&job);
    let change = store.replace_group(&group, &members, state.now(), membership::evaluation_due(&state), evaluation);
    changed(&state, tenant, !members.is_empty(), member_change(change.await?, &id)).await
}

/// Delete group: 204, with its members' rows.
/// https://learn.microsoft.com/graph/api/group-delete
async fn delete_group(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteGroup)?.tenant_id();
    if !state.store().delete_group(tenant, group_id(&id)?).await? {
        return Err(not_found(&id));
    }
    membership::membership_changed(&state, tenant).await;
    Ok(StatusCode::NO_CONTENT)
}

/// List group members: the group's devices, each a `directoryObject` typed
/// `#microsoft.graph.device`, keyset-paged by object id.
/// https://learn.microsoft.com/graph/api/group-list-members
async fn list_group_members(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadGroups)?.tenant_id();
    let group = group_id(&id)?;
    let (version, query, ctx) = (request.version, &request.query, &request.ctx);
    let store = state.store();
    let page = state.cached_page(tenant, ctx.url(), async || {
        query.refuse_unsupported(MEMBER_OPTIONS)?;
        let select = query.select.as_deref();
        list::check_select(select, devices::PROPERTIES, "directoryObject")?;
        let page = list::page_query(query, devices::field)?;
        let mut items = store.list_group_members(tenant, group, &page).await?.ok_or_else(|| not_found(&id))?;
        let set = format!("groups/{group}/members");
        let next = list::finish_page(&mut items, &page, ctx, version, &set, request.raw_query(), |item, field| {
            (item.id.into(), field.map(|f| devices::sort_value(item, f)))
        });
        let context = context_url(version, "directoryObjects");
        let mut body = PageWriter::new(&context, None, next.as_deref());
        for item in &items {
            body.push(&devices::to_wire(item), Select::new(select), &[("@odata.type", "\"#microsoft.graph.device\"")])?;
        }
        Ok(ODataBody::ok(body.finish()))
    });
    page.await
}

/// List a device's memberships (`memberOf`): the groups the device is a direct member of, each
/// a `directoryObject` typed `#microsoft.graph.group`, keyset-paged by group id. An id that
/// names no device of the tenant is the 404 of `GET /devices/{id}`.
/// https://learn.microsoft.com/graph/api/device-list-memberof
async fn list_device_member_of(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadDevices)?.tenant_id();
    let device: EntraDeviceId = id.parse().map_err(|_| not_found(&id))?;
    let (version, query, ctx) = (request.version, &request.query, &request.ctx);
    let store = state.store();
    let page = state.cached_page(tenant, ctx.url(), async || {
        query.refuse_unsupported(MEMBER_OPTIONS)?;
        let select = query.select.as_deref();
        list::check_select(select, PROPERTIES, "directoryObject")?;
        let page = list::page_query(query, field)?;
        let mut items = store.list_device_groups(tenant, device, &page).await?.ok_or_else(|| not_found(&id))?;
        let set = format!("devices/{device}/memberOf");
        let next = list::finish_page(&mut items, &page, ctx, version, &set, request.raw_query(), |item, field| {
            (item.id.into(), field.map(|f| sort_value(item, f)))
        });
        let context = context_url(version, "directoryObjects");
        let mut body = PageWriter::new(&context, None, next.as_deref());
        for item in &items {
            body.push(&to_wire(item), Select::new(select), &[("@odata.type", "\"#microsoft.graph.group\"")])?;
        }
        Ok(ODataBody::ok(body.finish()))
    });
    page.await
}

/// The object an `@odata.id` names: `https://graph.microsoft.com/{version}/directoryObjects/{id}`
/// as the docs write it, with any host (dmsync's own, a proxy's), `devices` for
/// `directoryObjects`, and the relative forms `directoryObjects/{id}` and
/// `/{version}/directoryObjects/{id}`.
fn referenced_object(odata_id: &str) -> Result<EntraDeviceId, ApiError> {
    let refused = || {
        ApiError::directory_bad_request(format!(
            "Invalid @odata.id '{odata_id}': it must name a directory object, as \
             https://graph.microsoft.com/v1.0/directoryObjects/{{id}}."
        ))
    };
    let trimmed = odata_id.trim().trim_end_matches('/');
    let path = match trimmed.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => trimmed.trim_start_matches('/'),
    };
    let segments: Vec<&str> = path.split('/').collect();
    let segments = match segments.split_first() {
        Some((first, rest)) if ApiVersion::from_segment(first).is_some() => rest,
        _ => &segments[..],
    };
    let [collection, id] = segments else { return Err(refused()) };
    if !collection.eq_ignore_ascii_case("directoryObjects") && !collection.eq_ignore_ascii_case("devices") {
        return Err(refused());
    }
    id.parse().map_err(|_| ApiError::directory_bad_request(format!("Invalid object identifier '{id}'.")))
}

/// The refusal of a `$ref` write to a dynamic group (dmsync's wording; docs/GRAPH-COMPAT.md).
const DYNAMIC_MEMBERS_REFUSED: &str =
    "Members of a group with dynamic membership cannot be added or removed: its membershipRule decides them.";

/// The most members one `members@odata.bind` may add, as Graph documents it.
const MAX_BOUND_MEMBERS: usize = 20;

/// The devices a `members@odata.bind` names, at most [`MAX_BOUND_MEMBERS`].
fn bound_members(bind: Option<&[String]>) -> Result<Vec<EntraDeviceId>, ApiError> {
    let bind = bind.unwrap_or_default();
    if bind.len() > MAX_BOUND_MEMBERS {
        return Err(ApiError::directory_bad_request(format!(
            "members@odata.bind names {} objects; at most {MAX_BOUND_MEMBERS} can be added in one request.",
            bind.len()
        )));
    }
    bind.iter().map(|reference| referenced_object(reference)).collect()
}

/// What a write of members answers: 204 when done, else Graph's refusal. `group` is the
/// group's id as the request named it.
fn member_change(change: MemberChange, group: &str) -> ApiResult<StatusCode> {
    match change {
        MemberChange::Done => Ok(StatusCode::NO_CONTENT),
        MemberChange::GroupNotFound => Err(not_found(group)),
        MemberChange::MemberNotFound(member) => Err(not_found(&member.to_string())),
        MemberChange::AlreadyMember => Err(ApiError::directory_bad_request(
            "One or more added object references already exist for the following modified properties: 'members'.",
        )),
        MemberChange::DynamicGroup => Err(ApiError::DirectoryBadRequest {
            code: "Request_BadRequest",
            message: Cow::Borrowed(DYNAMIC_MEMBERS_REFUSED),
        }),
    }
}

/// Passes `answer` on, first telling the engine that the tenant's memberships changed when the
/// write succeeded and `members_written`.
async fn changed(
    state: &AppState,
    tenant: TenantId,
    members_written: bool,
    answer: ApiResult<StatusCode>,
) -> ApiResult<StatusCode> {
    if answer.is_ok() && members_written {
        membership::membership_changed(state, tenant).await;
    }
    answer
}

/// Add member: 204.
/// https://learn.microsoft.com/graph/api/group-post-members
async fn add_group_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    GraphJson(input): GraphJson<ReferenceInput>,
) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteGroupMembers)?.tenant_id();
    let group = group_id(&id)?;
    let member = referenced_object(&input.odata_id)?;
    let change = state.store().add_group_members(tenant, group, &[member], state.now()).await?;
    changed(&state, tenant, true, member_change(change, &id)).await
}

/// Remove member: 204.
/// https://learn.microsoft.com/graph/api/group-delete-members
async fn remove_group_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, member_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = caller.authorize(Operation::WriteGroupMembers)?.tenant_id();
    let group = group_id(&id)?;
    let member: EntraDeviceId = member_id.parse().map_err(|_| not_found(&member_id))?;
    let change = state.store().remove_group_member(tenant, group, member).await?;
    changed(&state, tenant, true, member_change(change, &id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_directory_objects() {
        let id = "8f3d1c52-7f0e-4b8e-9d3a-0c1b2a3d4e5f";
        for reference in [
            format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"),
            format!("https://graph.microsoft.com/beta/devices/{id}"),
            format!("http://127.0.0.1:8080/v1.0/DirectoryObjects/{id}"),
            format!("directoryObjects/{id}"),
            format!("/beta/directoryObjects/{id}/"),
        ] {
            assert_eq!(referenced_object(&reference).unwrap().to_string(), id, "{reference}");
        }
        for refused in [
            format!("https://graph.microsoft.com/v1.0/users/{id}"),
            format!("https://graph.microsoft.com/v1.0/groups/x/members/{id}"),
            "https://graph.microsoft.com/v1.0/directoryObjects/not-a-guid".to_owned(),
            String::new(),
        ] {
            assert!(referenced_object(&refused).is_err(), "{refused}");
        }
    }

    /// The derivation on a GUID whose bytes are easy to follow: the first three fields are
    /// stored little-endian, the last eight bytes as they are written.
    #[test]
    fn the_security_identifier_is_derived_from_the_id() {
        let id: GroupId = "00000001-0002-0003-0405-060708090a0b".parse().unwrap();
        assert_eq!(security_identifier(id), "S-1-12-1-1-196610-117835012-185207048");
    }
}
