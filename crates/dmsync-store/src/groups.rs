//! [`GroupStore`]: Entra groups, their members, and the evaluation of dynamic device groups.
//!
//! A dynamic group's rule is compiled to one SQL predicate over `entra_devices` with every value
//! bound ([`push_rule`]); the evaluation then brings each group's members to what the predicate
//! selects with two set-based statements (a `DELETE` of the members it no longer selects and an
//! `INSERT … SELECT` of the devices it selects), never a device at a time, in one transaction
//! with the job's fenced completion. Both engines compare strings ignoring case, as Entra does.

use async_trait::async_trait;
use time::OffsetDateTime;

use dmsync_core::entra::{EntraDevice, EntraDeviceQuery};
use dmsync_core::filter::{Filter, StringFunction};
use dmsync_core::groups::{EvaluationStats, Group, GroupField, GroupQuery, MemberChange, ProcessingState};
use dmsync_core::jobs::{JobLease, JobState, NewJob};
use dmsync_core::membership_rule::{Rule, StringOperator, StringProperty, parse_rule};
use dmsync_core::store::{EntraDeviceStore, GroupStore};
use dmsync_core::{EntraDeviceId, GroupId, StoreError, StoreResult, TenantId};

use crate::db::{Query, SqlStore, Tx};
use crate::jobs::end_job;
use crate::query::{push_page, push_string_eq, push_string_function};
use crate::rows::{entra_device_from_row, group_from_row};
use crate::sql::{Dialect, entra_device_column, group_column};

/// The entries of a device's `physicalIds`, as SQL over `entra_devices e`: the condition under
/// which the entry exists, and the entry as Autopilot writes it (`EntraDevice::physical_ids`).
const PHYSICAL_IDS: [(&str, &str); 4] = [
    ("e.ztdid IS NOT NULL", "('[ZTDID]:' || e.ztdid)"),
    ("e.order_id <> ''", "('[OrderId]:' || e.order_id)"),
    ("e.purchase_order_id <> ''", "('[PurchaseOrderId]:' || e.purchase_order_id)"),
    ("e.hardware_id <> ''", "('[HWID]:' || e.hardware_id)"),
];

/// Appends `expr op value`, ignoring case; a negative operator is the negation of its positive.
fn push_string_op(sql: &mut Query, dialect: Dialect, expr: &str, op: StringOperator, value: &str) {
    let (positive, negate) = match op.negated() {
        Some(positive) => (positive, true),
        None => (op, false),
    };
    if negate {
        sql.push("(NOT ");
    }
    match positive {
        StringOperator::StartsWith => push_string_function(sql, dialect, expr, StringFunction::StartsWith, value),
        StringOperator::EndsWith => push_string_function(sql, dialect, expr, StringFunction::EndsWith, value),
        StringOperator::Contains => push_string_function(sql, dialect, expr, StringFunction::Contains, value),
        _ => push_string_eq(sql, dialect, expr, false, value),
    }
    if negate {
        sql.push(")");
    }
}

/// Appends the rule as a boolean SQL expression over `entra_devices e`. Client text reaches the
/// statement only as bound values.
pub(crate) fn push_rule(sql: &mut Query, dialect: Dialect, rule: &Rule) {
    match rule {
        Rule::And(a, b) | Rule::Or(a, b) => {
            let op = if matches!(rule, Rule::And(..)) { " AND " } else { " OR " };
            sql.push("(");
            push_rule(sql, dialect, a);
            sql.push(op);
            push_rule(sql, dialect, b);
            sql.push(")");
        }
        Rule::Not(inner) => {
            sql.push("(NOT ");
            push_rule(sql, dialect, inner);
            sql.push(")");
        }
        Rule::Compare { property, op, value } => {
            let column = match property {
                StringProperty::DisplayName => "e.display_name",
                StringProperty::DeviceId => "e.device_id",
                StringProperty::DeviceOsType => "e.operating_system",
            };
            push_string_op(sql, dialect, column, *op, value);
        }
        Rule::AccountEnabled(enabled) => {
            sql.push(if *enabled { "(e.account_enabled <> 0)" } else { "(e.account_enabled = 0)" });
        }
        Rule::PhysicalIdsAny { op, value } => {
            sql.push("(");
            for (i, (present, entry)) in PHYSICAL_IDS.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push(&format!("({present} AND "));
                push_string_op(sql, dialect, entry, *op, value);
                sql.push(")");
            }
            sql.push(")");
        }
    }
}

fn select_group(tenant: TenantId, id: GroupId) -> Query {
    Query::new("SELECT * FROM groups WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id)
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn group_types_json(group: &Group) -> String {
    serde_json::to_string(&group.group_types).expect("a list of strings serialises")
}

/// Enqueues the tenant's membership evaluation at `run_at` inside `tx`, unless the tenant has no
/// dynamic group to evaluate or an evaluation is queued already (which then covers this change
/// too): one pending evaluation per tenant, however many devices changed. True when it enqueued.
async fn enqueue_evaluation(
    tx: &mut Tx,
    tenant: TenantId,
    job: &NewJob,
    now: OffsetDateTime,
    run_at: OffsetDateTime,
) -> StoreResult<bool> {
    let query = Query::new(
        "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempt, run_at, created_at)
         SELECT $1, $2, $3, $4, 'queued', 0, $5, $6
          WHERE EXISTS (SELECT 1 FROM groups WHERE tenant_id = $2 AND membership_rule_processing_state = 'On')
            AND NOT EXISTS (SELECT 1 FROM jobs WHERE tenant_id = $2 AND kind = $3 AND state = 'queued')",
    )
    .bind(dmsync_core::JobId::now_v7())
    .bind(tenant)
    .bind(job.kind())
    .bind(job.payload().to_string())
    .bind(run_at)
    .bind(now);
    Ok(tx.execute(query).await? == 1)
}

impl SqlStore {
    /// Commits `tx`, waking a worker when it enqueued a job.
    async fn commit_maybe_enqueued(&self, tx: Tx, enqueued: bool) -> StoreResult<()> {
        if enqueued { self.commit_enqueued(tx).await } else { tx.commit().await }
    }

    /// Runs `write` on the members of an assigned group in one transaction, committed only when
    /// it changed them; a missing or dynamic group is refused before `write` runs.
    async fn change_assigned_members(
        &self,
        tenant: TenantId,
        group: GroupId,
        write: impl AsyncFnOnce(&mut Tx) -> StoreResult<MemberChange>,
    ) -> StoreResult<MemberChange> {
        let mut tx = self.begin().await?;
        let found = tx.exec().fetch_optional(select_group(tenant, group)).await?;
        let change = match found.as_ref().map(group_from_row).transpose()? {
            None => MemberChange::GroupNotFound,
            Some(group) if group.is_dynamic() => MemberChange::DynamicGroup,
            Some(_) => write(&mut tx).await?,
        };
        self.finish_member_write(tx, change, false).await
    }

    /// Adds `members` to the group inside the caller's transaction, in order, stopping at the
    /// first that cannot be added; the caller keeps the transaction only when this is `Done`.
    /// The list is short (a request names at most a few dozen), so one statement per member.
    async fn insert_members(
        tx: &mut Tx,
        tenant: TenantId,
        group: GroupId,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
    ) -> StoreResult<MemberChange> {
        for &member in members {
            let exists = Query::new("SELECT count(*) FROM entra_devices WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(member);
            if tx.exec().scalar::<i64>(exists).await? == 0 {
                return Ok(MemberChange::MemberNotFound(member));
            }
            let insert = Query::new(
                "INSERT INTO group_members (tenant_id, group_id, member_id, added_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, group_id, member_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(group)
            .bind(member)
            .bind(now);
            if tx.execute(insert).await? == 0 {
                return Ok(MemberChange::AlreadyMember);
            }
        }
        Ok(MemberChange::Done)
    }

    /// Commits `tx` when `change` is `Done` (signalling the workers when it enqueued a job), and
    /// rolls it back otherwise.
    async fn finish_member_write(&self, tx: Tx, change: MemberChange, enqueued: bool) -> StoreResult<MemberChange> {
        if change == MemberChange::Done {
            self.commit_maybe_enqueued(tx, enqueued).await?;
        } else {
            tx.rollback().await?;
        }
        Ok(change)
    }

    /// Brings one group's members to what its rule selects; returns (added, removed).
    async fn evaluate_group(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        group: GroupId,
        rule: &Rule,
        now: OffsetDateTime,
    ) -> StoreResult<(u64, u64)> {
        let dialect = self.dialect();
        let mut delete = Query::new(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND NOT EXISTS (
                 SELECT 1 FROM entra_devices e
                  WHERE e.tenant_id = group_members.tenant_id AND e.id = group_members.member_id AND ",
        )
        .bind(tenant)
        .bind(group);
        push_rule(&mut delete, dialect, rule);
        delete.push(")");
        let removed = tx.execute(delete).await?;
        let mut insert = Query::new(
            "INSERT INTO group_members (tenant_id, group_id, member_id, added_at)
             SELECT e.tenant_id, $2, e.id, $3 FROM entra_devices e WHERE e.tenant_id = $1 AND ",
        )
        .bind(tenant)
        .bind(group)
        .bind(now);
        push_rule(&mut insert, dialect, rule);
        insert.push(" ON CONFLICT (tenant_id, group_id, member_id) DO NOTHING");
        let added = tx.execute(insert).await?;
        Ok((added, removed))
    }
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn list_groups(&self, tenant: TenantId, query: &GroupQuery) -> StoreResult<Vec<Group>> {
        self.list_page("groups", tenant, query, group_column, &[], group_from_row).await
    }

    async fn count_groups(&self, tenant: TenantId, filter: Option<&Filter<GroupField>>) -> StoreResult<u64> {
        self.count("groups", tenant, filter, group_column).await
    }

    async fn group(&self, tenant: TenantId, id: GroupId) -> StoreResult<Option<Group>> {
        self.read().fetch_optional(select_group(tenant, id)).await?.as_ref().map(group_from_row).transpose()
    }

    async fn create_group(
        &self,
        group: &Group,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        evaluation: &NewJob,
    ) -> StoreResult<MemberChange> {
        if group.is_dynamic() && !members.is_empty() {
            return Ok(MemberChange::DynamicGroup);
        }
        let mut tx = self.begin().await?;
        let insert = Query::new(
            "INSERT INTO groups (tenant_id, id, display_name, description, mail_nickname, mail_enabled,
                 security_enabled, group_types, membership_rule, membership_rule_processing_state, created_at,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(group.tenant_id)
        .bind(group.id)
        .bind(&group.display_name)
        .bind(&group.description)
        .bind(&group.mail_nickname)
        .bind(flag(group.mail_enabled))
        .bind(flag(group.security_enabled))
        .bind(group_types_json(group))
        .bind(&group.membership_rule)
        .bind(group.processing_state.map(ProcessingState::as_str))
        .bind(group.created_at);
        tx.execute(insert).await?;
        let change = Self::insert_members(&mut tx, group.tenant_id, group.id, members, now).await?;
        let enqueued = change == MemberChange::Done
            && group.is_evaluated()
            && enqueue_evaluation(&mut tx, group.tenant_id, evaluation, now, run_at).await?;
        self.finish_member_write(tx, change, enqueued).await
    }

    async fn replace_group(
        &self,
        group: &Group,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        evaluation: Option<&NewJob>,
    ) -> StoreResult<MemberChange> {
        let mut tx = self.begin().await?;
        let update = Query::new(
            "UPDATE groups SET display_name = $3, description = $4, mail_nickname = $5, mail_enabled = $6,
                    security_enabled = $7, group_types = $8, membership_rule = $9,
                    membership_rule_processing_state = $10, updated_at = $11
              WHERE tenant_id = $1 AND id = $2",
        )
        .bind(group.tenant_id)
        .bind(group.id)
        .bind(&group.display_name)
        .bind(&group.description)
        .bind(&group.mail_nickname)
        .bind(flag(group.mail_enabled))
        .bind(flag(group.security_enabled))
        .bind(group_types_json(group))
        .bind(&group.membership_rule)
        .bind(group.processing_state.map(ProcessingState::as_str))
        .bind(now);
        let change = if tx.execute(update).await? == 0 {
            MemberChange::GroupNotFound
        } else if group.is_dynamic() && !members.is_empty() {
            MemberChange::DynamicGroup
        } else {
            Self::insert_members(&mut tx, group.tenant_id, group.id, members, now).await?
        };
        let enqueued = match evaluation {
            Some(job) if change == MemberChange::Done && group.is_evaluated() => {
                enqueue_evaluation(&mut tx, group.tenant_id, job, now, run_at).await?
            }
            _ => false,
        };
        self.finish_member_write(tx, change, enqueued).await
    }

    async fn delete_group(&self, tenant: TenantId, id: GroupId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let members =
            Query::new("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2").bind(tenant).bind(id);
        tx.execute(members).await?;
        let group = Query::new("DELETE FROM groups WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
        let deleted = tx.execute(group).await? == 1;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_group_members(
        &self,
        tenant: TenantId,
        group: GroupId,
        query: &EntraDeviceQuery,
    ) -> StoreResult<Option<Vec<EntraDevice>>> {
        if self.group(tenant, group).await?.is_none() {
            return Ok(None);
        }
        let mut sql = Query::new(
            "SELECT * FROM entra_devices WHERE tenant_id = $1
                AND id IN (SELECT member_id FROM group_members WHERE tenant_id = $1 AND group_id = $2)",
        )
        .bind(tenant)
        .bind(group);
        push_page(&mut sql, self.dialect(), query, entra_device_column);
        let rows = self.read().fetch_all(sql).await?;
        rows.iter().map(entra_device_from_row).collect::<StoreResult<Vec<_>>>().map(Some)
    }

    async fn list_device_groups(
        &self,
        tenant: TenantId,
        device: EntraDeviceId,
        query: &GroupQuery,
    ) -> StoreResult<Option<Vec<Group>>> {
        if self.entra_device(tenant, device).await?.is_none() {
            return Ok(None);
        }
        // The subquery reads the `(tenant_id, member_id)` index of `group_members`.
        let mut sql = Query::new(
            "SELECT * FROM groups WHERE tenant_id = $1
                AND id IN (SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2)",
        )
        .bind(tenant)
        .bind(device);
        push_page(&mut sql, self.dialect(), query, group_column);
        let rows = self.read().fetch_all(sql).await?;
        rows.iter().map(group_from_row).collect::<StoreResult<Vec<_>>>().map(Some)
    }

    async fn add_group_members(
        &self,
        tenant: TenantId,
        group: GroupId,
        members: &[EntraDeviceId],
        now: OffsetDateTime,
    ) -> StoreResult<MemberChange> {
        self.change_assigned_members(tenant, group, async |tx: &mut Tx| {
            Self::insert_members(tx, tenant, group, members, now).await
        })
        .await
    }

    async fn remove_group_member(
        &self,
        tenant: TenantId,
        group: GroupId,
        member: EntraDeviceId,
    ) -> StoreResult<MemberChange> {
        self.change_assigned_members(tenant, group, async |tx: &mut Tx| {
            let delete =
                Query::new("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3")
                    .bind(tenant)
                    .bind(group)
                    .bind(member);
            Ok(if tx.execute(delete).await? == 1 { MemberChange::Done } else { MemberChange::MemberNotFound(member) })
        })
        .await
    }

    async fn request_group_evaluation(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
        job: &NewJob,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let enqueued = enqueue_evaluation(&mut tx, tenant, job, now, run_at).await?;
        self.commit_maybe_enqueued(tx, enqueued).await?;
        Ok(enqueued)
    }

    async fn evaluate_group_membership(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<EvaluationStats>> {
        let mut tx = self.begin().await?;
        let groups = Query::new(
            "SELECT id, membership_rule FROM groups
              WHERE tenant_id = $1 AND membership_rule_processing_state = 'On' AND membership_rule IS NOT NULL
              ORDER BY id",
        )
        .bind(tenant);
        let rows = tx.exec().fetch_all(groups).await?;
        let mut stats = EvaluationStats::default();
        for row in &rows {
            let id: GroupId =
                row.get::<String, _>("id")?.parse().map_err(|_| StoreError::Database("group id".into()))?;
            // Every stored rule was parsed when it was written; one this version cannot parse
            // (written by another) keeps its members rather than losing them.
            let Ok(rule) = parse_rule(&row.get::<String, _>("membership_rule")?) else { continue };
            let (added, removed) = self.evaluate_group(&mut tx, tenant, id, &rule, now).await?;
            stats.groups += 1;
            stats.added += added;
            stats.removed += removed;
        }
        if !end_job(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(rule: &str, dialect: Dialect) -> String {
        let mut sql = Query::new("");
        push_rule(&mut sql, dialect, &parse_rule(rule).unwrap());
        sql.sql().to_owned()
    }

    /// Client text never enters the statement: every value is a placeholder.
    #[test]
    fn values_are_bound() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = compiled(
                r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:x'; DROP TABLE groups; --")) -or -not device.displayName -contains "y""#,
                dialect,
            );
            assert!(!sql.contains("DROP") && !sql.contains("'y'"), "{sql}");
            assert!(sql.contains("$1") && sql.contains("$5"), "{sql}");
        }
    }
}
