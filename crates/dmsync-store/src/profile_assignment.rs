//! [`ProfileAssignmentStore`]: the deployment profile assignment engine's pass, as a few
//! set-based statements in one transaction (the rules are in `dmsync_core::profile_assignment`).
//!
//! The pass first writes each targeted device's winning profile into `profile_targets`, then
//! compares it with the devices' states in `device_profile_states` (a row only for a device
//! under a profile; none is `notAssigned`): new or changed targets become `pending` (or, through
//! All Devices, assigned at once), devices no longer targeted lose their row, and pending devices
//! whose delay has passed are assigned. Only states that change are written, so a pass over
//! unchanged data writes nothing and a re-run converges; the device rows themselves are never
//! written, which keeps a pass's writes in proportion to the devices it moves.
//!
//! A pass that a test asked to fail devices (`ForcedAssignmentFailures`) marks them `failed`
//! just before the statements that would assign them, and takes them out of those statements'
//! reach. A `failed` row counts as unchanged while its device's winning profile is the one it
//! failed to get, so later passes leave it as it is.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use dmsync_core::jobs::{JobLease, JobState, NewJob};
use dmsync_core::profile_assignment::{ForcedAssignmentFailures, ProfileAssignmentStats};
use dmsync_core::store::ProfileAssignmentStore;
use dmsync_core::{StoreResult, TenantId};

use crate::db::{Query, SqlStore};
use crate::jobs::{end_job, insert_coalesced_job};
use crate::rows::Columns;

/// The (device, profile) pairs that the assignments of kind `kind` reach through their
/// groups: the Entra objects that are members of each assignment's group, by their `[ZTDID]`.
/// `$1` tenant. The joins are `CROSS JOIN`s so that SQLite walks them in this order (the
/// tenant's few assignments, each group's members by key, each member's object by key) rather
/// than from the tenant's million objects; PostgreSQL plans them as the inner joins they are.
fn reached_through_groups(kind: &str) -> String {
    format!(
        "SELECT e.ztdid AS device_id, a.profile_id
           FROM deployment_profile_assignments a
          CROSS JOIN group_members m
          CROSS JOIN entra_devices e
          WHERE a.tenant_id = $1 AND a.target_kind = '{kind}'
            AND m.tenant_id = a.tenant_id AND m.group_id = a.group_id
            AND e.tenant_id = m.tenant_id AND e.id = m.member_id"
    )
}

/// Fills `profile_targets` with every targeted device's winning profile, and whether the
/// device's state must change for it: `$1` tenant. A `failed` device under the profile it
/// failed to get is unchanged: through a group because its intended profile is the same,
/// through All Devices by the explicit case (it has nothing assigned). Group assignments rank before All Devices
/// (the "default profile" applies only where no group assignment does), then the oldest
/// profile wins, ties broken by id. A device in an exclusion group of a profile is not
/// targeted by that profile, whatever the assignment; the excluded pairs are one uncorrelated
/// subquery, computed once.
fn fill_targets() -> String {
    let included = reached_through_groups("group");
    let excluded = reached_through_groups("exclusionGroup");
    format!(
        "INSERT INTO profile_targets (device_id, profile_id, all_devices, changed)
         SELECT ranked.device_id, ranked.profile_id, ranked.all_devices,
                CASE WHEN ranked.all_devices = 0
                     THEN CASE WHEN s.intended_profile_id IS NULL OR s.intended_profile_id <> ranked.profile_id
                               THEN 1 ELSE 0 END
                     ELSE CASE WHEN s.status = 'failed' AND s.intended_profile_id = ranked.profile_id THEN 0
                               WHEN s.assigned_profile_id IS NULL OR s.assigned_profile_id <> ranked.profile_id
                                    OR s.status = 'pending'
                               THEN 1 ELSE 0 END
                END
           FROM (SELECT c.device_id, c.profile_id, c.all_devices,
                        row_number() OVER (PARTITION BY c.device_id
                                           ORDER BY c.all_devices, p.created_at, p.id) AS pick
                   FROM (SELECT g.device_id, g.profile_id, 0 AS all_devices FROM ({included}) g
                         UNION ALL
                         SELECT d.id, a.profile_id, 1
                           FROM deployment_profile_assignments a
                          CROSS JOIN autopilot_devices d
                          WHERE a.tenant_id = $1 AND a.target_kind = 'allDevices' AND d.tenant_id = a.tenant_id) c
                  CROSS JOIN deployment_profiles p
                  WHERE p.tenant_id = $1 AND p.id = c.profile_id
                    AND (c.device_id, c.profile_id) NOT IN ({excluded})) ranked
          CROSS JOIN autopilot_devices d
           LEFT JOIN device_profile_states s ON s.tenant_id = d.tenant_id AND s.device_id = d.id
          WHERE ranked.pick = 1 AND d.tenant_id = $1 AND d.id = ranked.device_id"
    )
}

/// The status of a device just assigned, `d` its device row: Graph's own spelling for a device
/// that never contacted the service.
const ASSIGNED_STATUS: &str =
    "CASE WHEN d.last_contacted IS NULL THEN 'assignedUnkownSyncState' ELSE 'assignedInSync' END";

/// Devices newly under a profile through a group, or under another one: `pending` from now,
/// keeping what they were assigned until the new profile is. `$1` tenant, `$2` now.
const MARK_PENDING: &str = "INSERT INTO device_profile_states
        (tenant_id, device_id, intended_profile_id, intended_at, assigned_profile_id, profile_assigned_at, status)
      SELECT $1, t.device_id, t.profile_id, $2, NULL, NULL, 'pending'
        FROM profile_targets t
       WHERE t.all_devices = 0 AND t.changed = 1
      ON CONFLICT (tenant_id, device_id) DO UPDATE
         SET intended_profile_id = excluded.intended_profile_id, intended_at = excluded.intended_at,
             status = 'pending'";

/// Devices under a profile through All Devices are assigned at once, unless already assigned
/// to it. `$1` tenant, `$2` now.
fn assign_all_devices() -> String {
    format!(
        "INSERT INTO device_profile_states
            (tenant_id, device_id, intended_profile_id, intended_at, assigned_profile_id, profile_assigned_at, status)
          SELECT $1, t.device_id, t.profile_id, $2, t.profile_id, $2, {ASSIGNED_STATUS}
            FROM profile_targets t
           CROSS JOIN autopilot_devices d
           WHERE t.all_devices = 1 AND t.changed = 1 AND d.tenant_id = $1 AND d.id = t.device_id
          ON CONFLICT (tenant_id, device_id) DO UPDATE
             SET intended_profile_id = excluded.intended_profile_id, intended_at = excluded.intended_at,
                 assigned_profile_id = excluded.assigned_profile_id,
                 profile_assigned_at = excluded.profile_assigned_at, status = excluded.status"
    )
}

/// The condition that narrows a forced failure to the devices with one serial, `$3`, where
/// `device` names the device's id; nothing when every device is to fail. Serials compare
/// exactly, as everywhere in the store.
fn with_serial(one_serial: bool, device: &str) -> String {
    if one_serial {
        format!(
            " AND {device} IN (SELECT serial_device.id FROM autopilot_devices serial_device
                               WHERE serial_device.tenant_id = $1 AND serial_device.serial_number = $3)"
        )
    } else {
        String::new()
    }
}

/// Devices that the pass would assign at once through All Devices but must fail: `failed`
/// under the profile, with nothing assigned. `$1` tenant, `$2` now, `$3` the serial if
/// `one_serial`.
fn fail_all_devices(one_serial: bool) -> String {
    let serial = with_serial(one_serial, "t.device_id");
    format!(
        "INSERT INTO device_profile_states
            (tenant_id, device_id, intended_profile_id, intended_at, assigned_profile_id, profile_assigned_at, status)
          SELECT $1, t.device_id, t.profile_id, $2, NULL, NULL, 'failed'
            FROM profile_targets t
           WHERE t.all_devices = 1 AND t.changed = 1{serial}
          ON CONFLICT (tenant_id, device_id) DO UPDATE
             SET intended_profile_id = excluded.intended_profile_id, intended_at = excluded.intended_at,
                 assigned_profile_id = NULL, profile_assigned_at = NULL, status = 'failed'"
    )
}

/// Takes the All Devices targets just failed out of [`assign_all_devices`]'s reach: `$1`
/// tenant. Before this pass's failures no changed target had a `failed` row under its own
/// profile ([`fill_targets`] counts those unchanged), so these are exactly the ones just failed.
const KEEP_FAILED_TARGETS: &str = "UPDATE profile_targets SET changed = 0
      WHERE all_devices = 1 AND changed = 1
        AND EXISTS (SELECT 1 FROM device_profile_states s
                     WHERE s.tenant_id = $1 AND s.device_id = profile_targets.device_id
                       AND s.status = 'failed' AND s.intended_profile_id = profile_targets.profile_id)";

/// Pending devices whose delay has passed but which must fail: `failed`, with nothing
/// assigned (not even the profile they had before they became pending). `$1` tenant, `$2` the
/// latest `intended_at` that is due, `$3` the serial if `one_serial`. It runs after
/// [`MARK_NOT_ASSIGNED`], so that only devices still targeted fail.
fn fail_due(one_serial: bool) -> String {
    let serial = with_serial(one_serial, "device_profile_states.device_id");
    format!(
        "UPDATE device_profile_states
            SET assigned_profile_id = NULL, profile_assigned_at = NULL, status = 'failed'
          WHERE tenant_id = $1 AND status = 'pending' AND intended_at <= $2{serial}"
    )
}

/// Devices under no profile any more (and the states of devices deleted since): `$1` tenant.
const MARK_NOT_ASSIGNED: &str = "DELETE FROM device_profile_states
      WHERE tenant_id = $1
        AND NOT EXISTS (SELECT 1 FROM profile_targets WHERE profile_targets.device_id = device_profile_states.device_id)";

/// Pending devices whose delay has passed: `$1` tenant, `$2` now, `$3` the latest `intended_at`
/// that is due. The status literal keeps the statement on the partial index of pending devices.
fn assign_due() -> String {
    format!(
        "UPDATE device_profile_states
            SET assigned_profile_id = intended_profile_id, profile_assigned_at = $2,
                status = (SELECT {ASSIGNED_STATUS} FROM autopilot_devices d
                           WHERE d.tenant_id = device_profile_states.tenant_id
                             AND d.id = device_profile_states.device_id)
          WHERE tenant_id = $1 AND status = 'pending' AND intended_at <= $3"
    )
}

/// When the earliest still-pending device became pending: `$1` tenant.
const EARLIEST_PENDING: &str = "SELECT min(intended_at) FROM device_profile_states
      WHERE tenant_id = $1 AND status = 'pending'";

/// The tenants whose dynamic groups an evaluation would apply.
const TENANTS_WITH_EVALUATED_GROUPS: &str = "SELECT DISTINCT tenant_id FROM groups
      WHERE membership_rule_processing_state = 'On' AND membership_rule IS NOT NULL";

/// The tenants where a pass could change something: with an assignment, or with a device that
/// an earlier pass put under a profile (a key range each, never a scan of the devices).
const TENANTS_WITH_PROFILES_IN_USE: &str = "SELECT t.id AS tenant_id FROM tenants t
      WHERE EXISTS (SELECT 1 FROM deployment_profile_assignments a WHERE a.tenant_id = t.id)
         OR EXISTS (SELECT 1 FROM device_profile_states s WHERE s.tenant_id = t.id)";

/// The forced failures of one pass, and what they failed so far.
struct Failures<'a> {
    forced: &'a ForcedAssignmentFailures,
    failed: u64,
    /// The serials of `ForcedAssignmentFailures::Serials` that failed a device.
    serials: Vec<String>,
}

impl<'a> Failures<'a> {
    fn new(forced: &'a ForcedAssignmentFailures) -> Failures<'a> {
        Failures { forced, failed: 0, serials: Vec::new() }
    }

    /// Runs one failing statement (`statement(one_serial)`, with `$1` tenant and `$2` `at`)
    /// for every device, or once per forced serial, counting what it failed.
    async fn run(
        &mut self,
        tx: &mut crate::db::Tx,
        tenant: TenantId,
        statement: fn(bool) -> String,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        match self.forced {
            ForcedAssignmentFailures::Nothing => {}
            ForcedAssignmentFailures::Every => {
                self.failed += tx.execute(Query::new(statement(false)).bind(tenant).bind(at)).await?;
            }
            ForcedAssignmentFailures::Serials(serials) => {
                for serial in serials {
                    let failed = tx.execute(Query::new(statement(true)).bind(tenant).bind(at).bind(serial)).await?;
                    if failed > 0 && !self.serials.contains(serial) {
                        self.serials.push(serial.clone());
                    }
                    self.failed += failed;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProfileAssignmentStore for SqlStore {
    async fn assign_deployment_profiles(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        delay: Duration,
        next_pass: &NewJob,
        forced: &ForcedAssignmentFailures,
    ) -> StoreResult<Option<ProfileAssignmentStats>> {
        let dialect = self.dialect();
        let Some(mut tx) = self.begin_fenced(lease).await? else { return Ok(None) };
        // Two passes of one tenant at once (replicas) could each write what it read before the
        // other's commit; one at a time, each reads what the previous one left.
        if let Some(lock) = dialect.lock_per_tenant("profile_assignment") {
            tx.execute(Query::new(lock).bind(tenant)).await?;
        }
        for statement in dialect.create_profile_targets() {
            tx.execute(Query::new(*statement)).await?;
        }
        tx.execute(Query::new(fill_targets()).bind(tenant)).await?;
        if let Some(analyze) = dialect.analyze_profile_targets() {
            tx.execute(Query::new(analyze)).await?;
        }
        let pending = tx.execute(Query::new(MARK_PENDING).bind(tenant).bind(now)).await?;
        let mut failures = Failures::new(forced);
        failures.run(&mut tx, tenant, fail_all_devices, now).await?;
        if failures.failed > 0 {
            tx.execute(Query::new(KEEP_FAILED_TARGETS).bind(tenant)).await?;
        }
        let assigned_at_once = tx.execute(Query::new(assign_all_devices()).bind(tenant).bind(now)).await?;
        let unassigned = tx.execute(Query::new(MARK_NOT_ASSIGNED).bind(tenant)).await?;
        failures.run(&mut tx, tenant, fail_due, now - delay).await?;
        let assigned_due = tx.execute(Query::new(assign_due()).bind(tenant).bind(now).bind(now - delay)).await?;
        let earliest: Option<i64> = tx.exec().scalar(Query::new(EARLIEST_PENDING).bind(tenant)).await?;
        let next_pass_at = earliest.map(|ticks| crate::convert::from_ticks(ticks) + delay);
        let enqueued = match next_pass_at {
            Some(run_at) => insert_coalesced_job(&mut tx, tenant, next_pass, now, run_at).await?,
            None => false,
        };
        if let Some(drop) = dialect.drop_profile_targets() {
            tx.execute(Query::new(drop)).await?;
        }
        if !end_job(&mut tx, lease, JobState::Succeeded, None, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        if enqueued {
            self.commit_enqueued(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok(Some(ProfileAssignmentStats {
            pending,
            assigned: assigned_at_once + assigned_due,
            unassigned,
            failed: failures.failed,
            failed_serials: failures.serials,
            next_pass_at,
        }))
    }

    async fn request_recovery_passes(
        &self,
        now: OffsetDateTime,
        evaluation: &NewJob,
        pass: &NewJob,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let evaluated = tx.exec().fetch_all(Query::new(TENANTS_WITH_EVALUATED_GROUPS)).await?;
        let assigned = tx.exec().fetch_all(Query::new(TENANTS_WITH_PROFILES_IN_USE)).await?;
        let mut enqueued = 0;
        for (rows, job) in [(&evaluated, evaluation), (&assigned, pass)] {
            for row in rows {
                let tenant: TenantId = row.id("tenant_id")?;
                enqueued += u64::from(insert_coalesced_job(&mut tx, tenant, job, now, now).await?);
            }
        }
        if enqueued > 0 {
            self.commit_enqueued(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok(enqueued)
    }
}
