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
pub(crate) fn insert_first_signing_key<DB: sqlx::Database>(
    key: &SigningKey,
) -> sqlx::query::Query<'_, DB, DB::Arguments>
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

/// For `$store` on database `$db` (rows `$row`, list SQL in `$dialect`): `begin`, a write
/// transaction, and the reads every collection shares: a page of a list query, a count, and
/// one row by id, each scoped to the tenant.
macro_rules! store_helpers {
    ($store:ty, $db:ty, $row:ty, $dialect:expr, reader: $reader:ident, writer: $writer:ident) => {
        impl $store {
            pub(crate) async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, $db>> {
                self.$writer.begin().await.map_err(db_err)
            }

            /// `SELECT * FROM table WHERE tenant_id = …` and a page of the list query.
            pub(crate) async fn list_page<F: Copy>(
                &self,
                table: &str,
                tenant: TenantId,
                query: &dmsync_core::query::ListQuery<F>,
                column: fn(F) -> &'static str,
            ) -> StoreResult<Vec<$row>> {
                let mut sql: QueryBuilder<$db> = QueryBuilder::new(format!("SELECT * FROM {table} WHERE tenant_id = "));
                sql.push_bind(tenant.to_string());
                crate::sql::push_page(&mut sql, $dialect, query, column);
                sql.build().fetch_all(&self.$reader).await.map_err(db_err)
            }

            /// How many rows of the tenant in `table` match the filter.
            pub(crate) async fn count<F: Copy>(
                &self,
                table: &str,
                tenant: TenantId,
                filter: Option<&Filter<F>>,
                column: fn(F) -> &'static str,
            ) -> StoreResult<u64> {
                let mut sql: QueryBuilder<$db> =
                    QueryBuilder::new(format!("SELECT count(*) FROM {table} WHERE tenant_id = "));
                sql.push_bind(tenant.to_string());
                if let Some(filter) = filter {
                    sql.push(" AND ");
                    crate::sql::push_filter(&mut sql, $dialect, filter, column);
                }
                let n: i64 = sql.build_query_scalar().fetch_one(&self.$reader).await.map_err(db_err)?;
                Ok(n as u64)
            }

            /// One row of the tenant in `table` by id.
            pub(crate) async fn by_id(&self, table: &str, tenant: TenantId, id: Uuid) -> StoreResult<Option<$row>> {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table} WHERE tenant_id = $1 AND id = $2")))
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err(db_err)
            }
        }
    };
}
pub(crate) use store_helpers;

/// Statements that run inside a caller's transaction of type `$tx`.
macro_rules! tx_helpers {
    ($tx:ty) => {
        /// Takes the next value of the registration change sequence inside the caller's
        /// transaction, which must call this before it touches any registration (one lock
        /// order, so no deadlock).
        ///
        /// Incremental reconciliation reads "every change up to the largest committed value",
        /// which is only sound if no smaller value can still commit later. SQLite gets that from
        /// its single writer. On PostgreSQL the counter row's lock, taken by this upsert, is held
        /// until the caller's transaction ends: the next writer waits for it, and so reads its
        /// value only after this one committed (or rolled back, in which case its value is
        /// reused). Registration writers are therefore serialised, across tenants and replicas,
        /// for the short length of their commit, which is also what SQLite does; uploads stage
        /// their rows before taking it.
        async fn next_registration_seq(tx: &mut $tx) -> StoreResult<i64> {
            sqlx::query_scalar(
                "INSERT INTO system_state (key, value) VALUES ('registration_seq', 1)
                 ON CONFLICT (key) DO UPDATE SET value = system_state.value + 1 RETURNING value",
            )
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)
        }

        /// Inserts a queued job inside the caller's transaction, so that the job exists exactly
        /// when the state change that asked for it does.
        pub(crate) async fn insert_job(
            tx: &mut $tx,
            tenant: TenantId,
            kind: JobKind,
            payload: &str,
            now: OffsetDateTime,
            run_at: OffsetDateTime,
        ) -> StoreResult<Uuid> {
            let job_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempt, run_at, created_at)
                 VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6)",
            )
            .bind(job_id.to_string())
            .bind(tenant.to_string())
            .bind(kind.as_str())
            .bind(payload)
            .bind(to_ticks(run_at))
            .bind(to_ticks(now))
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
            Ok(job_id)
        }

        /// Ends a job inside the caller's transaction, fenced by its lease: false (and nothing
        /// written) when the lease was lost, so the caller rolls its effects back too.
        pub(crate) async fn end_job_fenced(
            tx: &mut $tx,
            lease: &JobLease,
            state: JobState,
            error: Option<&str>,
            now: OffsetDateTime,
        ) -> StoreResult<bool> {
            let n = sqlx::query(
                "UPDATE jobs SET state = $1, finished_at = $2, last_error = coalesce($3, last_error), lease_owner = NULL,
                        lease_expires_at = NULL
                  WHERE id = $4 AND attempt = $5 AND lease_owner = $6 AND state = 'running'",
            )
            .bind(state.as_str())
            .bind(to_ticks(now))
            .bind(error)
            .bind(lease.job_id.to_string())
            .bind(lease.attempt)
            .bind(&lease.owner)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            Ok(n == 1)
        }
    };
}
pub(crate) use tx_helpers;

/// `impl AutopilotStore for $store`: settings reads, deregistration, device reads and device
/// actions; the backend adds the sync decision and its end, registration uploads, the
/// reconciliation steps and the serial lookup.
macro_rules! autopilot_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl AutopilotStore for $store {
            async fn autopilot_settings(&self, tenant: TenantId) -> StoreResult<AutopilotSettings> {
                let query = "SELECT * FROM autopilot_settings WHERE tenant_id = $1";
                if let Some(row) = sqlx::query(query).bind(tenant.to_string()).fetch_optional(&self.$reader).await.map_err(db_err)? {
                    return settings_from_row(&row);
                }
                self.ensure_settings(tenant).await?;
                let row = sqlx::query(query).bind(tenant.to_string()).fetch_one(&self.$reader).await.map_err(db_err)?;
                settings_from_row(&row)
            }

            async fn delete_registration(&self, tenant: TenantId, serial_number: &str) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let seq = next_registration_seq(&mut tx).await?;
                let device: Option<String> = sqlx::query_scalar(
                    "DELETE FROM autopilot_registrations WHERE tenant_id = $1 AND serial_number = $2 RETURNING device_id",
                )
                .bind(tenant.to_string())
                .bind(serial_number)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                let Some(device) = device else {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                };
                // The tombstone tells the next sync which device to remove, without a full anti-join.
                sqlx::query("INSERT INTO registration_tombstones (tenant_id, device_id, change_seq) VALUES ($1, $2, $3)")
                    .bind(tenant.to_string())
                    .bind(device)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn list_autopilot_devices(&self, tenant: TenantId, query: &DeviceQuery) -> StoreResult<Vec<AutopilotDevice>> {
                let rows = self.list_page("autopilot_devices", tenant, query, crate::sql::device_column).await?;
                rows.iter().map(device_from_row).collect()
            }

            async fn count_autopilot_devices(&self, tenant: TenantId, filter: Option<&Filter<DeviceField>>) -> StoreResult<u64> {
                self.count("autopilot_devices", tenant, filter, crate::sql::device_column).await
            }

            async fn autopilot_device(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<AutopilotDevice>> {
                self.by_id("autopilot_devices", tenant, id).await?.as_ref().map(device_from_row).transpose()
            }

            async fn update_autopilot_device(
                &self,
                tenant: TenantId,
                id: Uuid,
                update: &DevicePropertiesUpdate,
                now: OffsetDateTime,
            ) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query(
                    "UPDATE autopilot_devices SET
                        user_principal_name = coalesce($3, user_principal_name),
                        addressable_user_name = coalesce($4, addressable_user_name),
                        group_tag = coalesce($5, group_tag),
                        display_name = coalesce($6, display_name),
                        device_account_upn = coalesce($7, device_account_upn),
                        device_account_password = coalesce($8, device_account_password),
                        device_friendly_name = coalesce($9, device_friendly_name),
                        updated_at = $10
                      WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .bind(&update.user_principal_name)
                .bind(&update.addressable_user_name)
                .bind(&update.group_tag)
                .bind(&update.display_name)
                .bind(&update.device_account_upn)
                .bind(&update.device_account_password)
                .bind(&update.device_friendly_name)
                .bind(to_ticks(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if n == 0 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
                // The group tag lives in the deployment service too; without this the next sync would
                // put the old one back.
                if let Some(tag) = &update.group_tag {
                    sqlx::query(
                        "UPDATE autopilot_registrations SET group_tag = $1, updated_at = $2 WHERE tenant_id = $3 AND device_id = $4",
                    )
                    .bind(tag)
                    .bind(to_ticks(now))
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn request_device_deletion(
                &self,
                tenant: TenantId,
                id: Uuid,
                now: OffsetDateTime,
                run_at: OffsetDateTime,
            ) -> StoreResult<DeletionRequest> {
                let mut tx = self.begin().await?;
                let marked = sqlx::query(
                    "UPDATE autopilot_devices SET deletion_requested_at = $1
                      WHERE tenant_id = $2 AND id = $3 AND deletion_requested_at IS NULL",
                )
                .bind(to_ticks(now))
                .bind(tenant.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                    == 1;
                if !marked {
                    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM autopilot_devices WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.to_string())
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(match exists {
                        Some(_) => DeletionRequest::AlreadyInProgress { device_id: id },
                        None => DeletionRequest::NotFound,
                    });
                }
                let payload = serde_json::json!({ "deviceId": id }).to_string();
                insert_job(&mut tx, tenant, JobKind::DeregisterAutopilotDevice, &payload, now, run_at).await?;
                tx.commit().await.map_err(db_err)?;
                Ok(DeletionRequest::Accepted { device_id: id })
            }

            async fn deregister_device(&self, lease: &JobLease, tenant: TenantId, id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                if !end_job_fenced(&mut tx, lease, JobState::Succeeded, None, now).await? {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
                for table in ["autopilot_registrations WHERE tenant_id = $1 AND device_id = $2", "autopilot_devices WHERE tenant_id = $1 AND id = $2"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                        .bind(tenant.to_string())
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            $($own)*
        }
    };
}
pub(crate) use autopilot_store;

/// `impl ImportStore for $store`: creation, reads and deletes of imported identities; the
/// backend adds their processing. The expansion site provides `IMPORT_CHUNK`, the rows per
/// multi-row INSERT within its backend's parameter limit.
macro_rules! import_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl ImportStore for $store {
            async fn create_imports(
                &self,
                tenant: TenantId,
                import_id: &str,
                rows: &[NewImportedDevice],
                now: OffsetDateTime,
                run_at: OffsetDateTime,
            ) -> StoreResult<Vec<ImportedDevice>> {
                let mut tx = self.begin().await?;
                let job_id = insert_job(&mut tx, tenant, JobKind::ImportAutopilotDevices, "{}", now, run_at).await?;
                let mut created = Vec::with_capacity(rows.len());
                for chunk in rows.chunks(IMPORT_CHUNK) {
                    let mut insert = QueryBuilder::new(
                        "INSERT INTO imported_devices (tenant_id, id, job_id, import_id, serial_number, group_tag, product_key,
                         hardware_hash, hash_digest, assigned_user_principal_name, status, pending_device_id, created_at) ",
                    );
                    let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
                    insert.push_values(chunk.iter().zip(&ids), |mut b, (r, id)| {
                        b.push_bind(tenant.to_string())
                            .push_bind(id.to_string())
                            .push_bind(job_id.to_string())
                            .push_bind(import_id.to_owned())
                            .push_bind(r.serial_number.clone())
                            .push_bind(r.group_tag.clone())
                            .push_bind(r.product_key.clone())
                            .push_bind(r.hardware_hash.clone())
                            .push_bind(hash_digest(&r.hardware_hash))
                            .push_bind(r.assigned_user_principal_name.clone())
                            .push_bind(ImportStatus::Unknown.as_str())
                            .push_bind(new_device_id().to_string())
                            .push_bind(to_ticks(now));
                    });
                    insert.build().execute(&mut *tx).await.map_err(db_err)?;
                    created.extend(chunk.iter().zip(ids).map(|(r, id)| ImportedDevice {
                        tenant_id: tenant,
                        id,
                        import_id: import_id.to_owned(),
                        serial_number: r.serial_number.clone(),
                        group_tag: r.group_tag.clone(),
                        product_key: r.product_key.clone(),
                        hardware_hash: r.hardware_hash.clone(),
                        assigned_user_principal_name: r.assigned_user_principal_name.clone(),
                        status: ImportStatus::Unknown,
                        device_registration_id: None,
                        error_code: 0,
                        error_name: None,
                        created_at: from_ticks(to_ticks(now)),
                    }));
                }
                tx.commit().await.map_err(db_err)?;
                Ok(created)
            }

            async fn list_imported_devices(&self, tenant: TenantId, query: &ImportedQuery) -> StoreResult<Vec<ImportedDevice>> {
                let rows = self.list_page("imported_devices", tenant, query, crate::sql::imported_column).await?;
                rows.iter().map(imported_from_row).collect()
            }

            async fn count_imported_devices(&self, tenant: TenantId, filter: Option<&Filter<ImportedField>>) -> StoreResult<u64> {
                self.count("imported_devices", tenant, filter, crate::sql::imported_column).await
            }

            async fn imported_device(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<ImportedDevice>> {
                self.by_id("imported_devices", tenant, id).await?.as_ref().map(imported_from_row).transpose()
            }

            async fn delete_imported_device(&self, tenant: TenantId, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query("DELETE FROM imported_devices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .execute(&self.$writer)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                Ok(n == 1)
            }

            $($own)*
        }
    };
}
pub(crate) use import_store;

/// `impl ExchangeStore for $store`: connector CRUD, the staging of a sync's records and the
/// device reads; the backend adds the sync's start, schedule and end. The expansion site
/// provides `Sql` (its `SyncSql`), `UPSERT_CHUNK` (rows per staging statement, within the
/// backend's parameter limit) and the store's `begin_fenced`.
macro_rules! exchange_store {
    ($store:ty, reader: $reader:ident, writer: $writer:ident, { $($own:tt)* }) => {
        #[async_trait]
        impl ExchangeStore for $store {
            async fn create_connector(&self, c: &ExchangeConnector) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO exchange_connectors (tenant_id, id, last_sync, status, primary_smtp_address, server_name,
                         connector_server_name, connector_type, version, exchange_alias, exchange_organization, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(c.tenant_id.to_string())
                .bind(c.id.to_string())
                .bind(c.last_sync.map(to_ticks))
                .bind(c.status.as_str())
                .bind(&c.primary_smtp_address)
                .bind(&c.server_name)
                .bind(&c.connector_server_name)
                .bind(c.connector_type.as_str())
                .bind(&c.version)
                .bind(&c.exchange_alias)
                .bind(&c.exchange_organization)
                .bind(to_ticks(OffsetDateTime::now_utc()))
                .execute(&self.$writer)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn list_connectors(&self, tenant: TenantId, query: &ConnectorQuery) -> StoreResult<Vec<ExchangeConnector>> {
                let rows = self.list_page("exchange_connectors", tenant, query, crate::sql::connector_column).await?;
                rows.iter().map(connector_from_row).collect()
            }

            async fn count_connectors(&self, tenant: TenantId, filter: Option<&Filter<ConnectorField>>) -> StoreResult<u64> {
                self.count("exchange_connectors", tenant, filter, crate::sql::connector_column).await
            }

            async fn connector(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<ExchangeConnector>> {
                self.by_id("exchange_connectors", tenant, id).await?.as_ref().map(connector_from_row).transpose()
            }

            async fn delete_connector(&self, tenant: TenantId, id: Uuid) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("DELETE FROM exchange_connectors WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                sqlx::query("DELETE FROM eas_devices WHERE tenant_id = $1 AND connector_id = $2")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                Sql::clear_staged(tenant, id).build().execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(n == 1)
            }

            async fn set_connector_source(&self, tenant: TenantId, id: Uuid, source: &ConnectorSource) -> StoreResult<bool> {
                let json = serde_json::to_string(source).map_err(|e| StoreError::Database(e.to_string()))?;
                let n = sqlx::query("UPDATE exchange_connectors SET source = $1, source_set_at = $2 WHERE tenant_id = $3 AND id = $4")
                    .bind(json)
                    .bind(to_ticks(OffsetDateTime::now_utc()))
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .execute(&self.$writer)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn begin_connector_staging(&self, lease: &JobLease, tenant: TenantId, id: Uuid) -> StoreResult<bool> {
                let Some(mut tx) = self.begin_fenced(lease).await? else { return Ok(false) };
                Sql::clear_staged(tenant, id).build().execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn stage_connector_records(
                &self,
                lease: &JobLease,
                tenant: TenantId,
                id: Uuid,
                records: &[MobileDeviceRecord],
            ) -> StoreResult<bool> {
                let Some(mut tx) = self.begin_fenced(lease).await? else { return Ok(false) };
                let unique = exchange_sql::last_of_each_device(records);
                for chunk in unique.chunks(UPSERT_CHUNK) {
                    Sql::stage_records(lease, tenant, id, chunk).build().execute(&mut *tx).await.map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn list_managed_devices(&self, tenant: TenantId, query: &ManagedDeviceQuery) -> StoreResult<Vec<EasDevice>> {
                let rows = self.list_page("eas_devices", tenant, query, crate::sql::managed_device_column).await?;
                rows.iter().map(eas_from_row).collect()
            }

            async fn count_managed_devices(&self, tenant: TenantId, filter: Option<&Filter<ManagedDeviceField>>) -> StoreResult<u64> {
                self.count("eas_devices", tenant, filter, crate::sql::managed_device_column).await
            }

            async fn managed_device(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<EasDevice>> {
                self.by_id("eas_devices", tenant, id).await?.as_ref().map(eas_from_row).transpose()
            }

            $($own)*
        }
    };
}
pub(crate) use exchange_store;
