//! [`DeploymentProfileStore`]: Windows Autopilot deployment profiles and their assignments.
//! Every write first takes the tenant's row with a no-op update, which on PostgreSQL holds that
//! row's lock until the transaction ends (SQLite's one writer serialises them anyway): so two
//! replicas cannot both pass the profile limit, both give All Devices to a profile, or delete a
//! profile while the other assigns it.

use async_trait::async_trait;
use time::OffsetDateTime;

use dmsync_core::autopilot::{AutopilotDevice, DeviceQuery};
use dmsync_core::deployment_profiles::{
    AssignmentTarget, DeploymentProfile, DeviceProfiles, MAX_PROFILES_PER_TENANT, ProfileAssignment, ProfileContent,
    ProfileField, ProfileQuery, ProfileRefusal, assignment_id,
};
use dmsync_core::filter::Filter;
use dmsync_core::store::DeploymentProfileStore;
use dmsync_core::{AutopilotDeviceId, DeploymentProfileId, StoreError, StoreResult, TenantId};

use crate::convert::parse_uuid;
use crate::db::{Query, SqlStore, Tx};
use crate::query::push_page;
use crate::rows::{deployment_profile_from_row, device_from_row, profile_assignment_from_row};
use crate::sql::{DEVICE_ROWS, deployment_profile_column, device_column};

/// Holds the tenant's row for the rest of `tx`; see the module's comment.
async fn lock_tenant(tx: &mut Tx, tenant: TenantId) -> StoreResult<()> {
    tx.execute(Query::new("UPDATE tenants SET created_at = created_at WHERE id = $1").bind(tenant)).await?;
    Ok(())
}

fn settings_json(content: &ProfileContent) -> StoreResult<String> {
    serde_json::to_string(&content.settings).map_err(|e| StoreError::Database(e.to_string()))
}

fn select_profile(tenant: TenantId, id: DeploymentProfileId) -> Query {
    Query::new("SELECT * FROM deployment_profiles WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id)
}

fn id_list<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

async fn profile_exists(tx: &mut Tx, tenant: TenantId, id: DeploymentProfileId) -> StoreResult<bool> {
    let query =
        Query::new("SELECT count(*) FROM deployment_profiles WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
    Ok(tx.exec().scalar::<i64>(query).await? > 0)
}

#[async_trait]
impl DeploymentProfileStore for SqlStore {
    async fn list_deployment_profiles(
        &self,
        tenant: TenantId,
        query: &ProfileQuery,
    ) -> StoreResult<Vec<DeploymentProfile>> {
        self.list_page(
            "deployment_profiles",
            tenant,
            query,
            deployment_profile_column,
            &[],
            deployment_profile_from_row,
        )
        .await
    }

    async fn count_deployment_profiles(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<ProfileField>>,
    ) -> StoreResult<u64> {
        self.count("deployment_profiles", tenant, filter, deployment_profile_column).await
    }

    async fn deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
    ) -> StoreResult<Option<DeploymentProfile>> {
        self.by_id("deployment_profiles", tenant, id, deployment_profile_from_row).await
    }

    async fn deployment_profiles_by_ids(
        &self,
        tenant: TenantId,
        ids: &[DeploymentProfileId],
    ) -> StoreResult<Vec<DeploymentProfile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM deployment_profiles WHERE tenant_id = $1 AND {}",
            self.dialect().in_list("id", "$2")
        );
        let query = Query::new(sql).bind(tenant).bind(id_list(ids).as_slice());
        self.read().fetch_all(query).await?.iter().map(deployment_profile_from_row).collect()
    }

    async fn create_deployment_profile(
        &self,
        tenant: TenantId,
        content: &ProfileContent,
        now: OffsetDateTime,
    ) -> StoreResult<Result<DeploymentProfile, ProfileRefusal>> {
        let settings = settings_json(content)?;
        let mut tx = self.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let count = Query::new("SELECT count(*) FROM deployment_profiles WHERE tenant_id = $1").bind(tenant);
        if tx.exec().scalar::<i64>(count).await? as u64 >= MAX_PROFILES_PER_TENANT {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::TooManyProfiles));
        }
        let id = DeploymentProfileId::new();
        let insert = Query::new(
            "INSERT INTO deployment_profiles (tenant_id, id, kind, display_name, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(tenant)
        .bind(id)
        .bind(content.kind.as_str())
        .bind(&content.display_name)
        .bind(settings)
        .bind(now);
        tx.execute(insert).await?;
        tx.commit().await?;
        Ok(Ok(DeploymentProfile {
            tenant_id: tenant,
            id,
            kind: content.kind,
            display_name: content.display_name.clone(),
            settings: content.settings.clone(),
            created_at: now,
            updated_at: now,
        }))
    }

    async fn update_deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
        content: &ProfileContent,
        now: OffsetDateTime,
    ) -> StoreResult<Result<DeploymentProfile, ProfileRefusal>> {
        let settings = settings_json(content)?;
        let mut tx = self.begin().await?;
        let update = Query::new(
            "UPDATE deployment_profiles SET display_name = $1, settings = $2, updated_at = $3
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(&content.display_name)
        .bind(settings)
        .bind(now)
        .bind(tenant)
        .bind(id);
        if tx.execute(update).await? == 0 {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::NotFound));
        }
        let row = tx.exec().fetch_one(select_profile(tenant, id)).await?;
        let profile = deployment_profile_from_row(&row)?;
        tx.commit().await?;
        Ok(Ok(profile))
    }

    async fn delete_deployment_profile(
        &self,
        tenant: TenantId,
        id: DeploymentProfileId,
    ) -> StoreResult<Result<(), ProfileRefusal>> {
        let mut tx = self.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        if !profile_exists(&mut tx, tenant, id).await? {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::NotFound));
        }
        let assignments =
            Query::new("SELECT count(*) FROM deployment_profile_assignments WHERE tenant_id = $1 AND profile_id = $2")
                .bind(tenant)
                .bind(id);
        if tx.exec().scalar::<i64>(assignments).await? > 0 {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::HasAssignments));
        }
        tx.execute(
            Query::new("DELETE FROM deployment_profiles WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn list_profile_assignments(
        &self,
        tenant: TenantId,
        profiles: &[DeploymentProfileId],
    ) -> StoreResult<Vec<ProfileAssignment>> {
        if profiles.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM deployment_profile_assignments WHERE tenant_id = $1 AND {} ORDER BY profile_id, id",
            self.dialect().in_list("profile_id", "$2")
        );
        let query = Query::new(sql).bind(tenant).bind(id_list(profiles).as_slice());
        self.read().fetch_all(query).await?.iter().map(profile_assignment_from_row).collect()
    }

    async fn profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        id: &str,
    ) -> StoreResult<Option<ProfileAssignment>> {
        let query = Query::new(
            "SELECT * FROM deployment_profile_assignments WHERE tenant_id = $1 AND profile_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(profile)
        .bind(id);
        self.read().fetch_optional(query).await?.as_ref().map(profile_assignment_from_row).transpose()
    }

    async fn create_profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        target: AssignmentTarget,
        now: OffsetDateTime,
    ) -> StoreResult<Result<ProfileAssignment, ProfileRefusal>> {
        let id = assignment_id(profile, target);
        let mut tx = self.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        if !profile_exists(&mut tx, tenant, profile).await? {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::NotFound));
        }
        let existing = Query::new(
            "SELECT count(*) FROM deployment_profile_assignments WHERE tenant_id = $1 AND profile_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(profile)
        .bind(id.as_str());
        if tx.exec().scalar::<i64>(existing).await? > 0 {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::DuplicateAssignment));
        }
        if target == AssignmentTarget::AllDevices {
            let other = Query::new(
                "SELECT p.display_name FROM deployment_profile_assignments a
                 JOIN deployment_profiles p ON p.tenant_id = a.tenant_id AND p.id = a.profile_id
                 WHERE a.tenant_id = $1 AND a.target_kind = 'allDevices' AND a.profile_id <> $2
                 ORDER BY p.created_at, p.id LIMIT 1",
            )
            .bind(tenant)
            .bind(profile);
            if let Some(row) = tx.exec().fetch_optional(other).await? {
                let name: String = row.get("display_name")?;
                tx.rollback().await?;
                return Ok(Err(ProfileRefusal::AllDevicesTaken(name)));
            }
        }
        let insert = Query::new(
            "INSERT INTO deployment_profile_assignments (tenant_id, profile_id, id, target_kind, group_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(profile)
        .bind(id.as_str())
        .bind(target.kind_str())
        .bind(target.group_id())
        .bind(now);
        tx.execute(insert).await?;
        tx.commit().await?;
        Ok(Ok(ProfileAssignment { tenant_id: tenant, profile_id: profile, id, target, created_at: now }))
    }

    async fn delete_profile_assignment(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        id: &str,
    ) -> StoreResult<Result<(), ProfileRefusal>> {
        let mut tx = self.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let delete = Query::new(
            "DELETE FROM deployment_profile_assignments WHERE tenant_id = $1 AND profile_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(profile)
        .bind(id);
        if tx.execute(delete).await? == 0 {
            tx.rollback().await?;
            return Ok(Err(ProfileRefusal::NotFound));
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn device_profiles(
        &self,
        tenant: TenantId,
        devices: &[AutopilotDeviceId],
    ) -> StoreResult<Vec<(AutopilotDeviceId, DeviceProfiles)>> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT device_id AS id, intended_profile_id, assigned_profile_id FROM device_profile_states
              WHERE tenant_id = $1 AND {}",
            self.dialect().in_list("device_id", "$2")
        );
        let query = Query::new(sql).bind(tenant).bind(id_list(devices).as_slice());
        let profile = |text: Option<String>| -> StoreResult<Option<DeploymentProfileId>> {
            text.filter(|t| !t.is_empty()).map(|t| parse_uuid(&t).map(DeploymentProfileId::from_uuid)).transpose()
        };
        self.read()
            .fetch_all(query)
            .await?
            .iter()
            .map(|row| {
                let id = AutopilotDeviceId::from_uuid(parse_uuid(&row.get::<String, _>("id")?)?);
                let intended = profile(row.get("intended_profile_id")?)?;
                let assigned = profile(row.get("assigned_profile_id")?)?;
                Ok((id, DeviceProfiles { intended, assigned }))
            })
            .collect()
    }

    async fn list_profile_assigned_devices(
        &self,
        tenant: TenantId,
        profile: DeploymentProfileId,
        query: &DeviceQuery,
    ) -> StoreResult<Vec<AutopilotDevice>> {
        let mut sql = Query::new(format!("SELECT * FROM {DEVICE_ROWS} WHERE tenant_id = "));
        sql.push_bind(tenant).push(" AND assigned_profile_id = ").push_bind(profile);
        push_page(&mut sql, self.dialect(), query, device_column);
        self.read().fetch_all(sql).await?.iter().map(device_from_row).collect()
    }
}
