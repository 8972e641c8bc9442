//! [`JobStore`]: leased jobs, and the two statements every enqueuing and completing method
//! runs inside its own transaction: [`insert_job`] and the fenced [`end_job`].

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use dmsync_core::jobs::{Job, JobLease, JobState, NewJob};
use dmsync_core::store::JobStore;
use dmsync_core::{JobId, StoreResult, TenantId};

use crate::db::{Query, SqlStore, Tx};
use crate::rows::job_from_row;

/// The lease's fence: the job is still this attempt's, held by this owner, and running.
const FENCE: &str = "id = $1 AND attempt = $2 AND lease_owner = $3 AND state = 'running'";

/// A statement whose `$1`–`$3` are the lease's fence.
fn fenced(sql: String, lease: &JobLease) -> Query {
    Query::new(sql).bind(lease.job_id).bind(lease.attempt).bind(&lease.owner)
}

/// Inserts a queued job inside the caller's transaction, so that the job exists exactly when
/// the state change that asked for it does. The caller commits with
/// [`SqlStore::commit_enqueued`], which wakes a waiting worker.
pub(crate) async fn insert_job(
    tx: &mut Tx,
    tenant: TenantId,
    job: &NewJob,
    now: OffsetDateTime,
    run_at: OffsetDateTime,
) -> StoreResult<JobId> {
    let job_id = JobId::now_v7();
    let query = Query::new(
        "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempt, run_at, created_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6)",
    )
    .bind(job_id)
    .bind(tenant)
    .bind(job.kind())
    .bind(job.payload().to_string())
    .bind(run_at)
    .bind(now);
    tx.execute(query).await?;
    Ok(job_id)
}

/// Inserts a queued job inside the caller's transaction, as [`insert_job`] does, unless a job
/// of the same kind for the tenant is already queued and due by `run_at`; false when one is.
pub(crate) async fn insert_coalesced_job(
    tx: &mut Tx,
    tenant: TenantId,
    job: &NewJob,
    now: OffsetDateTime,
    run_at: OffsetDateTime,
) -> StoreResult<bool> {
    let query = Query::new(
        "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempt, run_at, created_at)
         SELECT $1, $2, $3, $4, 'queued', 0, $5, $6
          WHERE NOT EXISTS (SELECT 1 FROM jobs
                             WHERE state = 'queued' AND run_at <= $5 AND tenant_id = $2 AND kind = $3)",
    )
    .bind(JobId::now_v7())
    .bind(tenant)
    .bind(job.kind())
    .bind(job.payload().to_string())
    .bind(run_at)
    .bind(now);
    Ok(tx.execute(query).await? == 1)
}

/// Ends a job inside the caller's transaction, fenced by its lease: false (and nothing written)
/// when the lease was lost, so the caller rolls its effects back too. Every completion path
/// ends its job here. A success keeps the error an earlier attempt recorded.
pub(crate) async fn end_job(
    tx: &mut Tx,
    lease: &JobLease,
    state: JobState,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let query = fenced(
        format!(
            "UPDATE jobs SET state = $4, finished_at = $5, last_error = coalesce($6, last_error), lease_owner = NULL,
                    lease_expires_at = NULL
              WHERE {FENCE}"
        ),
        lease,
    )
    .bind(state.as_str())
    .bind(now)
    .bind(error);
    Ok(tx.execute(query).await? == 1)
}

impl SqlStore {
    /// Begins a transaction in which the lease is known to hold the job, or `None` when it does
    /// not: a worker whose lease was taken stops writing.
    pub(crate) async fn begin_fenced(&self, lease: &JobLease) -> StoreResult<Option<Tx>> {
        let mut tx = self.begin().await?;
        let held = fenced(format!("SELECT 1 FROM jobs WHERE {FENCE}"), lease);
        if tx.exec().fetch_optional(held).await?.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(tx))
    }
}

#[async_trait]
impl JobStore for SqlStore {
    async fn claim_job(
        &self,
        owner: &str,
        due: OffsetDateTime,
        wall: OffsetDateTime,
        lease: Duration,
    ) -> StoreResult<Option<Job>> {
        let lock = self.dialect().claim_lock();
        let query = Query::new(format!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2
              WHERE id = (SELECT id FROM jobs
                           WHERE (state = 'queued' AND run_at <= $3)
                              OR (state = 'running' AND lease_expires_at <= $4)
                           ORDER BY run_at, id LIMIT 1 {lock})
              RETURNING *"
        ))
        .bind(owner)
        .bind(wall + lease)
        .bind(due)
        .bind(wall);
        self.write().fetch_optional(query).await?.as_ref().map(job_from_row).transpose()
    }

    async fn heartbeat_job(&self, lease: &JobLease, until: OffsetDateTime) -> StoreResult<bool> {
        let query = fenced(format!("UPDATE jobs SET lease_expires_at = $4 WHERE {FENCE}"), lease).bind(until);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn release_job(&self, lease: &JobLease) -> StoreResult<()> {
        // A released job gives its attempt back: stopping for a shutdown is not a failure.
        let query = fenced(
            format!(
                "UPDATE jobs SET state = 'queued', attempt = attempt - 1, lease_owner = NULL, lease_expires_at = NULL
                  WHERE {FENCE}"
            ),
            lease,
        );
        self.write().execute(query).await?;
        Ok(())
    }

    async fn fail_job(&self, lease: &JobLease, error: &str, retry_at: Option<OffsetDateTime>) -> StoreResult<bool> {
        let state = if retry_at.is_some() { "queued" } else { "failed" };
        let query = fenced(
            format!(
                "UPDATE jobs SET state = $4, run_at = coalesce($5, run_at), last_error = $6, lease_owner = NULL,
                        lease_expires_at = NULL
                  WHERE {FENCE}"
            ),
            lease,
        )
        .bind(state)
        .bind(retry_at)
        .bind(error);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn requeue_running_jobs(&self) -> StoreResult<u64> {
        // Only meaningful with one process: the server calls it at start on SQLite. On
        // PostgreSQL another replica may hold a live lease, so jobs wait for lease expiry.
        let query = Query::new(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'running'",
        );
        self.write().execute(query).await
    }

    async fn job(&self, id: JobId) -> StoreResult<Option<Job>> {
        let query = Query::new("SELECT * FROM jobs WHERE id = $1").bind(id);
        self.read().fetch_optional(query).await?.as_ref().map(job_from_row).transpose()
    }

    async fn enqueue_coalesced_job(
        &self,
        tenant: TenantId,
        job: &NewJob,
        now: OffsetDateTime,
        run_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let enqueued = insert_coalesced_job(&mut tx, tenant, job, now, run_at).await?;
        if enqueued {
            self.commit_enqueued(tx).await?;
        } else {
            tx.rollback().await?;
        }
        Ok(enqueued)
    }

    async fn wait_for_enqueued_job(&self) {
        self.enqueued().await
    }
}
