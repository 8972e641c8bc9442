//! Trait methods whose statements, binds and decoding are the same on both backends, written
//! once. SQLite binds `$N` placeholders by position, as PostgreSQL does, so the SQL text is
//! shared as it is; what differs is only the connection a method runs on (SQLite reads through
//! its reader pool and writes through its one writer; PostgreSQL has one pool).
//!
//! sqlx's backends share no trait for executing a statement and reading its affected rows, so
//! the sharing is by macro: each macro expands to a whole `#[async_trait]` impl block (the
//! attribute has to see every method), with the shared methods plus the backend's own, which the
//! caller passes in braces.

use dmsync_core::identity::SigningKey;

use crate::convert::to_ticks;

/// `impl SystemStore for $store`: the clock offset; the backend adds `close`.
macro_rules! system_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl SystemStore for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.$reader).await.map_err(db_err)?;
                Ok(())
            }

            async fn clock_offset(&self) -> StoreResult<Duration> {
                let value: Option<i64> = sqlx::query_scalar("SELECT value FROM system_state WHERE key = $1")
                    .bind(CLOCK_OFFSET_KEY)
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err(db_err)?;
                Ok(Duration::nanoseconds(value.unwrap_or(0)))
            }

            async fn save_clock_offset(&self, offset: Duration) -> StoreResult<()> {
                // The offset only grows, so a late write of an older value cannot move time back.
                sqlx::query(
                    "INSERT INTO system_state (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = CASE WHEN excluded.value > system_state.value
                                                              THEN excluded.value ELSE system_state.value END",
                )
                .bind(CLOCK_OFFSET_KEY)
                .bind(offset.whole_nanoseconds() as i64)
                .execute(&self.$writer)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            $($own)*
        }
    };
}
pub(crate) use system_store;

/// `impl IdentityStore for $store`: tenants, apps, users and signing keys; the backend adds the
/// case-insensitive lookups (`tenant_by_domain`, `user_by_upn`) and `insert_first_signing_key`.
macro_rules! identity_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl IdentityStore for $store {
            async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
                sqlx::query("INSERT INTO tenants (id, domain, created_at) VALUES ($1, $2, $3)")
                    .bind(tenant.id.to_string())
                    .bind(&tenant.domain)
                    .bind(to_ticks(OffsetDateTime::now_utc()))
                    .execute(&self.$writer)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
                let row = sqlx::query("SELECT id, domain FROM tenants WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(tenant_from_row).transpose()
            }

            async fn tenant_count(&self) -> StoreResult<u64> {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&self.$reader).await.map_err(db_err)?;
                Ok(n as u64)
            }

            async fn create_app(&self, app: &AppRegistration) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO app_registrations (tenant_id, client_id, object_id, display_name, secret_hash, roles)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(app.tenant_id.to_string())
                .bind(app.client_id.to_string())
                .bind(app.object_id.to_string())
                .bind(&app.display_name)
                .bind(&app.secret_hash)
                .bind(json_list(&app.roles))
                .execute(&self.$writer)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn app(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<Option<AppRegistration>> {
                let row = sqlx::query("SELECT * FROM app_registrations WHERE tenant_id = $1 AND client_id = $2")
                    .bind(tenant.to_string())
                    .bind(client_id.to_string())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(app_from_row).transpose()
            }

            async fn create_user(&self, user: &User) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (tenant_id, object_id, user_principal_name, display_name, password_hash, scopes)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.tenant_id.to_string())
                .bind(user.object_id.to_string())
                .bind(&user.user_principal_name)
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(json_list(&user.scopes))
                .execute(&self.$writer)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
                let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                    .fetch_all(&self.$reader)
                    .await
                    .map_err(db_err)?;
                rows.iter().map(signing_key_from_row).collect()
            }

            async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
                sqlx::query("INSERT INTO signing_keys (kid, private_pem, n, e, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&key.kid)
                    .bind(&key.private_pem)
                    .bind(&key.n)
                    .bind(&key.e)
                    .bind(to_ticks(key.created_at))
                    .execute(&self.$writer)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            $($own)*
        }
    };
}
pub(crate) use identity_store;

/// Inserts `key` only into an empty table; the backend makes the check and the insert atomic.
pub(crate) fn insert_first_signing_key<DB: sqlx::Database>(key: &SigningKey) -> sqlx::query::Query<'_, DB, DB::Arguments>
where
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pem, n, e, created_at)
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
    )
    .bind(key.kid.as_str())
    .bind(key.private_pem.as_str())
    .bind(key.n.as_str())
    .bind(key.e.as_str())
    .bind(to_ticks(key.created_at))
}

/// `impl JobStore for $store`: the fenced lease operations; the backend adds `claim_job`.
macro_rules! job_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl JobStore for $store {
            async fn heartbeat_job(&self, lease: &JobLease, until: OffsetDateTime) -> StoreResult<bool> {
                let n = sqlx::query(
                    "UPDATE jobs SET lease_expires_at = $1
                      WHERE id = $2 AND attempt = $3 AND lease_owner = $4 AND state = 'running'",
                )
                .bind(to_ticks(until))
                .bind(lease.job_id.to_string())
                .bind(lease.attempt)
                .bind(&lease.owner)
                .execute(&self.$writer)
                .await
                .map_err(db_err)?
                .rows_affected();
                Ok(n == 1)
            }

            async fn release_job(&self, lease: &JobLease) -> StoreResult<()> {
                // A released job gives its attempt back: stopping for a shutdown is not a failure.
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', attempt = attempt - 1, lease_owner = NULL, lease_expires_at = NULL
                      WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND state = 'running'",
                )
                .bind(lease.job_id.to_string())
                .bind(lease.attempt)
                .bind(&lease.owner)
                .execute(&self.$writer)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn fail_job(&self, lease: &JobLease, error: &str, retry_at: Option<OffsetDateTime>) -> StoreResult<bool> {
                let (state, run_at) = match retry_at {
                    Some(t) => ("queued", Some(to_ticks(t))),
                    None => ("failed", None),
                };
                let n = sqlx::query(
                    "UPDATE jobs SET state = $1, run_at = coalesce($2, run_at), last_error = $3, lease_owner = NULL,
                            lease_expires_at = NULL
                      WHERE id = $4 AND attempt = $5 AND lease_owner = $6 AND state = 'running'",
                )
                .bind(state)
                .bind(run_at)
                .bind(error)
                .bind(lease.job_id.to_string())
                .bind(lease.attempt)
                .bind(&lease.owner)
                .execute(&self.$writer)
                .await
                .map_err(db_err)?
                .rows_affected();
                Ok(n == 1)
            }

            async fn requeue_running_jobs(&self) -> StoreResult<u64> {
                // Only meaningful with one process: the server calls it at start on SQLite. On
                // PostgreSQL another replica may hold a live lease, so jobs wait for lease expiry.
                let n = sqlx::query(
                    "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'running'",
                )
                .execute(&self.$writer)
                .await
                .map_err(db_err)?
                .rows_affected();
                Ok(n)
            }

            async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
                let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(job_from_row).transpose()
            }

            $($own)*
        }
    };
}
pub(crate) use job_store;
