//! Registration uploads (staged, checked and applied all or nothing), deregistration, and the
//! registration change sequence that incremental reconciliation reads.

use async_trait::async_trait;
use time::OffsetDateTime;

use dmsync_core::autopilot::{NewRegistration, RegistrationProblem, RegistrationRejection, RegistrationSummary};
use dmsync_core::store::RegistrationImport;
use dmsync_core::{StoreResult, TenantId};

use crate::convert::{MAX_REPORTED_REJECTIONS, hash_digest, new_device_id};
use crate::db::{Query, SqlStore, Tx, Value};
use crate::rows::Columns;
use crate::sql::Dialect;

/// Takes the next value of the registration change sequence inside the caller's transaction,
/// which must call this before it touches any registration (one lock order, so no deadlock).
///
/// Incremental reconciliation reads "every change up to the largest committed value", which is
/// only sound if no smaller value can still commit later. SQLite gets that from its single
/// writer. On PostgreSQL the counter row's lock, taken by this upsert, is held until the
/// caller's transaction ends: the next writer waits for it, and so reads its value only after
/// this one committed (or rolled back, in which case its value is reused). Registration writers
/// are therefore serialised, across tenants and replicas, for the short length of their commit,
/// which is also what SQLite does; uploads stage their rows before taking it.
pub(crate) async fn next_registration_seq(tx: &mut Tx) -> StoreResult<i64> {
    let query = Query::new(
        "INSERT INTO system_state (key, value) VALUES ('registration_seq', 1)
         ON CONFLICT (key) DO UPDATE SET value = system_state.value + 1 RETURNING value",
    );
    tx.exec().scalar(query).await
}

impl SqlStore {
    pub(crate) async fn begin_registration_import(&self, tenant: TenantId) -> StoreResult<Box<dyn RegistrationImport>> {
        let mut tx = self.begin().await?;
        // Staged rows live in a temporary table, so every check and the upsert are set-based
        // statements, whatever the size of the upload.
        for statement in self.dialect().create_registration_staging() {
            tx.execute(Query::new(*statement)).await?;
        }
        Ok(Box::new(SqlRegistrationImport { tx, tenant, dialect: self.dialect() }))
    }

    pub(crate) async fn deregister_serial(&self, tenant: TenantId, serial_number: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let seq = next_registration_seq(&mut tx).await?;
        let delete = Query::new(
            "DELETE FROM autopilot_registrations WHERE tenant_id = $1 AND serial_number = $2 RETURNING device_id",
        )
        .bind(tenant)
        .bind(serial_number);
        let Some(row) = tx.exec().fetch_optional(delete).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // The tombstone tells the next sync which device to remove, without a full anti-join.
        let tombstone =
            Query::new("INSERT INTO registration_tombstones (tenant_id, device_id, change_seq) VALUES ($1, $2, $3)")
                .bind(tenant)
                .bind(row.text("device_id")?)
                .bind(seq);
        tx.execute(tombstone).await?;
        tx.commit().await?;
        Ok(true)
    }
}

struct SqlRegistrationImport {
    tx: Tx,
    tenant: TenantId,
    dialect: Dialect,
}

#[async_trait]
impl RegistrationImport for SqlRegistrationImport {
    async fn stage(&mut self, rows: &[(u64, NewRegistration)]) -> StoreResult<()> {
        for chunk in rows.chunks(self.dialect.rows_per_insert(10)) {
            let mut insert = Query::new(
                "INSERT INTO registration_staging (line, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key) VALUES ",
            );
            for (i, (line, r)) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert.push_row([
                    Value::from(*line as i64),
                    Value::from(&r.serial_number),
                    Value::from(new_device_id()),
                    Value::from(r.hardware_hash.as_slice()),
                    Value::from(hash_digest(&r.hardware_hash)),
                    Value::from(&r.manufacturer),
                    Value::from(&r.model),
                    Value::from(&r.group_tag),
                    Value::from(&r.purchase_order_identifier),
                    Value::from(&r.product_key),
                ]);
            }
            self.tx.execute(insert).await?;
        }
        Ok(())
    }

    async fn commit(
        self: Box<Self>,
        now: OffsetDateTime,
    ) -> StoreResult<Result<RegistrationSummary, Vec<RegistrationRejection>>> {
        let SqlRegistrationImport { mut tx, tenant, dialect } = *self;
        // From here to the commit, registration writers are serialised (see
        // next_registration_seq), so the checks below see every registration they could
        // conflict with.
        let seq = next_registration_seq(&mut tx).await?;
        for statement in dialect.index_registration_staging() {
            tx.execute(Query::new(*statement)).await?;
        }
        let rejected = Query::new(
            "SELECT line, serial_number, problem FROM (
                SELECT line, serial_number, 'duplicateInRequest' AS problem FROM registration_staging
                 WHERE serial_number IN (SELECT serial_number FROM registration_staging
                                          GROUP BY serial_number HAVING count(*) > 1)
                    OR hash_digest IN (SELECT hash_digest FROM registration_staging
                                        GROUP BY hash_digest HAVING count(*) > 1)
                UNION ALL
                SELECT s.line, s.serial_number,
                       CASE WHEN r.tenant_id <> $1 THEN 'hashRegisteredToOtherTenant'
                            ELSE 'hashRegisteredToOtherSerial' END
                  FROM registration_staging s JOIN autopilot_registrations r ON r.hash_digest = s.hash_digest
                 WHERE r.tenant_id <> $1 OR r.serial_number <> s.serial_number
             ) AS refused ORDER BY line LIMIT $2",
        )
        .bind(tenant)
        .bind(MAX_REPORTED_REJECTIONS);
        let rejected = tx.exec().fetch_all(rejected).await?;
        if !rejected.is_empty() {
            tx.rollback().await?;
            return rejected
                .iter()
                .map(|r| {
                    Ok(RegistrationRejection {
                        line: r.int("line")? as u64,
                        serial_number: r.text("serial_number")?,
                        reason: match r.text("problem")?.as_str() {
                            "duplicateInRequest" => RegistrationProblem::DuplicateInRequest,
                            "hashRegisteredToOtherTenant" => RegistrationProblem::HashRegisteredToOtherTenant,
                            _ => RegistrationProblem::HashRegisteredToOtherSerial,
                        },
                    })
                })
                .collect::<StoreResult<Vec<_>>>()
                .map(Err);
        }

        let counts = Query::new(
            "SELECT
                count(*) AS total,
                coalesce(sum(CASE WHEN r.serial_number IS NULL THEN 1 ELSE 0 END), 0) AS created,
                coalesce(sum(CASE WHEN r.serial_number IS NOT NULL AND (r.hardware_hash <> s.hardware_hash
                    OR r.manufacturer <> s.manufacturer OR r.model <> s.model OR r.group_tag <> s.group_tag
                    OR r.purchase_order_identifier <> s.purchase_order_identifier
                    OR r.product_key <> s.product_key) THEN 1 ELSE 0 END), 0) AS updated
               FROM registration_staging s
               LEFT JOIN autopilot_registrations r ON r.tenant_id = $1 AND r.serial_number = s.serial_number",
        )
        .bind(tenant);
        let counts = tx.exec().fetch_one(counts).await?;
        let total = counts.int("total")? as u64;
        let created = counts.int("created")? as u64;
        let updated = counts.int("updated")? as u64;

        let upsert = Query::new(
            "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash, hash_digest,
                 manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at,
                 change_seq)
             SELECT $1, serial_number, device_id, hardware_hash, hash_digest, manufacturer, model, group_tag,
                    purchase_order_identifier, product_key, $2, $2, $3
               FROM registration_staging WHERE true
             ON CONFLICT (tenant_id, serial_number) DO UPDATE SET
                 hardware_hash = excluded.hardware_hash, hash_digest = excluded.hash_digest,
                 manufacturer = excluded.manufacturer, model = excluded.model, group_tag = excluded.group_tag,
                 purchase_order_identifier = excluded.purchase_order_identifier,
                 product_key = excluded.product_key, updated_at = excluded.updated_at,
                 change_seq = excluded.change_seq
             WHERE autopilot_registrations.hardware_hash <> excluded.hardware_hash
                OR autopilot_registrations.manufacturer <> excluded.manufacturer
                OR autopilot_registrations.model <> excluded.model
                OR autopilot_registrations.group_tag <> excluded.group_tag
                OR autopilot_registrations.purchase_order_identifier <> excluded.purchase_order_identifier
                OR autopilot_registrations.product_key <> excluded.product_key",
        )
        .bind(tenant)
        .bind(now)
        .bind(seq);
        tx.execute(upsert).await?;
        if let Some(drop) = dialect.drop_registration_staging() {
            tx.execute(Query::new(drop)).await?;
        }
        tx.commit().await?;
        Ok(Ok(RegistrationSummary { created, updated, unchanged: total - created - updated }))
    }
}
