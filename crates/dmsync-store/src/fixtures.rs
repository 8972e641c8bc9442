//! TEST-ONLY fixtures for the assignment engine: groups, their members, deployment profiles and
//! their assignments written as plain rows of the shared tables (migration
//! `0011_autopilot_world`), for the tests and the benchmark of the engine. The group store and
//! the profile store, built alongside the engine, replace these once merged; nothing in the
//! server calls them.

use time::OffsetDateTime;

use dmsync_core::{AutopilotDeviceId, DeploymentProfileId, EntraDeviceId, GroupId, StoreResult, TenantId};

use crate::db::{Query, SqlStore};

/// What an assignment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Group(GroupId),
    ExclusionGroup(GroupId),
    AllDevices,
}

impl Target {
    fn kind_and_group(self) -> (&'static str, Option<GroupId>) {
        match self {
            Target::Group(group) => ("group", Some(group)),
            Target::ExclusionGroup(group) => ("exclusionGroup", Some(group)),
            Target::AllDevices => ("allDevices", None),
        }
    }

    /// The assignment's id: `{profileId}_{groupId}_0` as clients build it (an exclusion ends in
    /// `_1` here only so that it can sit beside an inclusion of the same group).
    fn assignment_id(self, profile: DeploymentProfileId) -> String {
        match self {
            Target::Group(group) => format!("{profile}_{group}_0"),
            Target::ExclusionGroup(group) => format!("{profile}_{group}_1"),
            Target::AllDevices => format!("{profile}_allDevices_0"),
        }
    }
}

/// An assigned security group.
pub async fn insert_group(
    store: &SqlStore,
    tenant: TenantId,
    id: GroupId,
    name: &str,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let query = Query::new(
        "INSERT INTO groups (tenant_id, id, display_name, description, mail_nickname, mail_enabled,
             security_enabled, group_types, created_at, updated_at)
         VALUES ($1, $2, $3, NULL, $3, 0, 1, '[]', $4, $4)",
    )
    .bind(tenant)
    .bind(id)
    .bind(name)
    .bind(now);
    store.write().execute(query).await?;
    Ok(())
}

/// Adds Entra objects to a group.
pub async fn add_group_members(
    store: &SqlStore,
    tenant: TenantId,
    group: GroupId,
    members: &[EntraDeviceId],
    now: OffsetDateTime,
) -> StoreResult<()> {
    for member in members {
        let query =
            Query::new("INSERT INTO group_members (tenant_id, group_id, member_id, added_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant)
                .bind(group)
                .bind(*member)
                .bind(now);
        store.write().execute(query).await?;
    }
    Ok(())
}

/// Adds, with one statement, every Entra object whose `[OrderId]` is `order_id`: the members a
/// dynamic rule `device.devicePhysicalIds -any (_ -eq "[OrderId]:…")` would give the group.
pub async fn add_group_members_by_order_id(
    store: &SqlStore,
    tenant: TenantId,
    group: GroupId,
    order_id: &str,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let query = Query::new(
        "INSERT INTO group_members (tenant_id, group_id, member_id, added_at)
         SELECT tenant_id, $2, id, $4 FROM entra_devices WHERE tenant_id = $1 AND order_id = $3
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(group)
    .bind(order_id)
    .bind(now);
    store.write().execute(query).await
}

/// Removes every member of the group; how many there were.
pub async fn clear_group_members(store: &SqlStore, tenant: TenantId, group: GroupId) -> StoreResult<u64> {
    let query = Query::new("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2").bind(tenant).bind(group);
    store.write().execute(query).await
}

pub async fn remove_group_member(
    store: &SqlStore,
    tenant: TenantId,
    group: GroupId,
    member: EntraDeviceId,
) -> StoreResult<bool> {
    let query = Query::new("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3")
        .bind(tenant)
        .bind(group)
        .bind(member);
    Ok(store.write().execute(query).await? == 1)
}

/// An Entra-joined deployment profile created at `created_at`.
pub async fn insert_profile(
    store: &SqlStore,
    tenant: TenantId,
    id: DeploymentProfileId,
    name: &str,
    created_at: OffsetDateTime,
) -> StoreResult<()> {
    let query = Query::new(
        "INSERT INTO deployment_profiles (tenant_id, id, kind, display_name, settings, created_at, updated_at)
         VALUES ($1, $2, 'azureAD', $3, '{}', $4, $4)",
    )
    .bind(tenant)
    .bind(id)
    .bind(name)
    .bind(created_at);
    store.write().execute(query).await?;
    Ok(())
}

pub async fn insert_assignment(
    store: &SqlStore,
    tenant: TenantId,
    profile: DeploymentProfileId,
    target: Target,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let (kind, group) = target.kind_and_group();
    let query = Query::new(
        "INSERT INTO deployment_profile_assignments (tenant_id, profile_id, id, target_kind, group_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(profile)
    .bind(target.assignment_id(profile))
    .bind(kind)
    .bind(group)
    .bind(now);
    store.write().execute(query).await?;
    Ok(())
}

pub async fn delete_assignment(
    store: &SqlStore,
    tenant: TenantId,
    profile: DeploymentProfileId,
    target: Target,
) -> StoreResult<bool> {
    let query =
        Query::new("DELETE FROM deployment_profile_assignments WHERE tenant_id = $1 AND profile_id = $2 AND id = $3")
            .bind(tenant)
            .bind(profile)
            .bind(target.assignment_id(profile));
    Ok(store.write().execute(query).await? == 1)
}

/// Records that the device contacted the service at `at`.
pub async fn set_last_contacted(
    store: &SqlStore,
    tenant: TenantId,
    device: AutopilotDeviceId,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let query = Query::new("UPDATE autopilot_devices SET last_contacted = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(device)
        .bind(at);
    store.write().execute(query).await?;
    Ok(())
}
