//! [`RoleScopeTagStore`]: role scope tags. Every write first takes the tenant's row of
//! `role_scope_tag_counters` with an upsert, which on PostgreSQL holds that row's lock until the
//! transaction ends (SQLite's one writer serialises them anyway): so two replicas creating or
//! renaming tags of one tenant at once cannot both pass the display-name check, and ids are given
//! out once.

use async_trait::async_trait;

use dmsync_core::filter::{CompareOp, Filter, Literal};
use dmsync_core::scope_tags::{
    DEFAULT_TAG_NAME, RoleScopeTag, RoleScopeTagChanges, RoleScopeTagField, RoleScopeTagQuery, RoleScopeTagRefusal,
};
use dmsync_core::store::RoleScopeTagStore;
use dmsync_core::{RoleScopeTagId, StoreError, StoreResult, TenantId};

use crate::db::{Query, SqlStore, Tx};
use crate::query::push_filter;
use crate::rows::role_scope_tag_from_row;
use crate::sql::{Dialect, role_scope_tag_column};

/// The statement that gives a new tenant its built-in `Default` tag.
pub(crate) fn insert_default_role_scope_tag(tenant: TenantId) -> Query {
    Query::new("INSERT INTO role_scope_tags (tenant_id, id, display_name, description) VALUES ($1, $2, $3, '')")
        .bind(tenant)
        .bind(RoleScopeTagId::DEFAULT)
        .bind(DEFAULT_TAG_NAME)
}

/// Takes the tenant's counter row for the rest of `tx`, moving it on by `step`, and returns the
/// counter's new value.
async fn take_counter(tx: &mut Tx, tenant: TenantId, step: i64) -> StoreResult<i64> {
    let query = Query::new(
        "INSERT INTO role_scope_tag_counters (tenant_id, last_id) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET last_id = role_scope_tag_counters.last_id + $2
         RETURNING last_id",
    )
    .bind(tenant)
    .bind(step);
    tx.exec().scalar::<i64>(query).await
}

/// Whether a tag of the tenant other than `except` has `name`, ignoring case as `$filter` does.
async fn name_taken(
    tx: &mut Tx,
    dialect: Dialect,
    tenant: TenantId,
    name: &str,
    except: Option<RoleScopeTagId>,
) -> StoreResult<bool> {
    let mut query = Query::new("SELECT count(*) FROM role_scope_tags WHERE tenant_id = ");
    query.push_bind(tenant).push(" AND ");
    let same_name = Filter::Compare {
        field: RoleScopeTagField::DisplayName,
        op: CompareOp::Eq,
        value: Literal::String(name.to_owned()),
    };
    push_filter(&mut query, dialect, &same_name, role_scope_tag_column);
    if let Some(except) = except {
        query.push(" AND id <> ").push_bind(except);
    }
    Ok(tx.exec().scalar::<i64>(query).await? > 0)
}

fn select_tag(tenant: TenantId, id: RoleScopeTagId) -> Query {
    Query::new("SELECT * FROM role_scope_tags WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id)
}

#[async_trait]
impl RoleScopeTagStore for SqlStore {
    async fn list_role_scope_tags(
        &self,
        tenant: TenantId,
        query: &RoleScopeTagQuery,
    ) -> StoreResult<Vec<RoleScopeTag>> {
        self.list_page("role_scope_tags", tenant, query, role_scope_tag_column, &[], role_scope_tag_from_row).await
    }

    async fn count_role_scope_tags(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<RoleScopeTagField>>,
    ) -> StoreResult<u64> {
        self.count("role_scope_tags", tenant, filter, role_scope_tag_column).await
    }

    async fn role_scope_tag(&self, tenant: TenantId, id: RoleScopeTagId) -> StoreResult<Option<RoleScopeTag>> {
        self.read().fetch_optional(select_tag(tenant, id)).await?.as_ref().map(role_scope_tag_from_row).transpose()
    }

    async fn create_role_scope_tag(
        &self,
        tenant: TenantId,
        display_name: &str,
        description: &str,
    ) -> StoreResult<Result<RoleScopeTag, RoleScopeTagRefusal>> {
        let mut tx = self.begin().await?;
        let next = take_counter(&mut tx, tenant, 1).await?;
        if name_taken(&mut tx, self.dialect(), tenant, display_name, None).await? {
            tx.rollback().await?;
            return Ok(Err(RoleScopeTagRefusal::DuplicateName));
        }
        let id = u32::try_from(next)
            .map(RoleScopeTagId::new)
            .map_err(|_| StoreError::Database(format!("tenant {tenant} has run out of role scope tag ids")))?;
        let insert = Query::new(
            "INSERT INTO role_scope_tags (tenant_id, id, display_name, description) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(id)
        .bind(display_name)
        .bind(description);
        tx.execute(insert).await?;
        tx.commit().await?;
        Ok(Ok(RoleScopeTag {
            tenant_id: tenant,
            id,
            display_name: display_name.to_owned(),
            description: description.to_owned(),
        }))
    }

    async fn update_role_scope_tag(
        &self,
        tenant: TenantId,
        id: RoleScopeTagId,
        changes: &RoleScopeTagChanges,
    ) -> StoreResult<Result<RoleScopeTag, RoleScopeTagRefusal>> {
        let mut tx = self.begin().await?;
        take_counter(&mut tx, tenant, 0).await?;
        let row = tx.exec().fetch_optional(select_tag(tenant, id)).await?;
        let Some(mut tag) = row.as_ref().map(role_scope_tag_from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(Err(RoleScopeTagRefusal::NotFound));
        };
        if !changes.would_change(&tag) {
            // Nothing to write (a client sending the tag back as it read it), not even for
            // the Default tag.
            tx.rollback().await?;
            return Ok(Ok(tag));
        }
        if tag.is_built_in() {
            tx.rollback().await?;
            return Ok(Err(RoleScopeTagRefusal::BuiltIn));
        }
        if let Some(name) = &changes.display_name
            && name_taken(&mut tx, self.dialect(), tenant, name, Some(id)).await?
        {
            tx.rollback().await?;
            return Ok(Err(RoleScopeTagRefusal::DuplicateName));
        }
        tag.display_name = changes.display_name.clone().unwrap_or(tag.display_name);
        tag.description = changes.description.clone().unwrap_or(tag.description);
        let update = Query::new(
            "UPDATE role_scope_tags SET display_name = $1, description = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(&tag.display_name)
        .bind(&tag.description)
        .bind(tenant)
        .bind(id);
        tx.execute(update).await?;
        tx.commit().await?;
        Ok(Ok(tag))
    }

    async fn delete_role_scope_tag(
        &self,
        tenant: TenantId,
        id: RoleScopeTagId,
    ) -> StoreResult<Result<(), RoleScopeTagRefusal>> {
        if id == RoleScopeTagId::DEFAULT {
            return Ok(Err(RoleScopeTagRefusal::BuiltIn));
        }
        let query = Query::new("DELETE FROM role_scope_tags WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
        match self.write().execute(query).await? {
            0 => Ok(Err(RoleScopeTagRefusal::NotFound)),
            _ => Ok(Ok(())),
        }
    }
}
