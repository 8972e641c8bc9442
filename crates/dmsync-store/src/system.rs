//! [`SystemStore`]: the liveness check, the persisted clock offset, the local certificate
//! authority and shutdown.

use async_trait::async_trait;
use time::Duration;

use dmsync_core::StoreResult;
use dmsync_core::certificate::StoredCertificateAuthority;
use dmsync_core::store::{SystemStore, Topology};

use crate::convert::CLOCK_OFFSET_KEY;
use crate::db::{Query, Row, SqlStore};
use crate::rows::Columns;

const SELECT_CERTIFICATE_AUTHORITY: &str =
    "SELECT certificate_pem, private_key_pem, created_at FROM certificate_authority WHERE id = 1";

#[async_trait]
impl SystemStore for SqlStore {
    fn topology(&self) -> Topology {
        SqlStore::topology(self)
    }

    fn write_generation(&self) -> Option<u64> {
        SqlStore::write_generation(self)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read().execute(Query::new("SELECT 1")).await?;
        Ok(())
    }

    async fn clock_offset(&self) -> StoreResult<Duration> {
        let query = Query::new("SELECT value FROM system_state WHERE key = $1").bind(CLOCK_OFFSET_KEY);
        let value: Option<i64> = match self.read().fetch_optional(query).await? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        Ok(Duration::nanoseconds(value.unwrap_or(0)))
    }

    async fn save_clock_offset(&self, offset: Duration) -> StoreResult<()> {
        // The offset only grows, so a late write of an older value cannot move time back.
        let query = Query::new(
            "INSERT INTO system_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = CASE WHEN excluded.value > system_state.value
                                                      THEN excluded.value ELSE system_state.value END",
        )
        .bind(CLOCK_OFFSET_KEY)
        .bind(offset.whole_nanoseconds() as i64);
        self.write().execute(query).await?;
        Ok(())
    }

    async fn certificate_authority(&self) -> StoreResult<Option<StoredCertificateAuthority>> {
        let row = self.read().fetch_optional(Query::new(SELECT_CERTIFICATE_AUTHORITY)).await?;
        row.as_ref().map(certificate_authority_from_row).transpose()
    }

    async fn insert_certificate_authority(
        &self,
        ca: &StoredCertificateAuthority,
    ) -> StoreResult<StoredCertificateAuthority> {
        // The row's key is fixed, so of replicas inserting at once exactly one row lands and
        // the others' inserts do nothing; all of them then read the winner back.
        let insert = Query::new(
            "INSERT INTO certificate_authority (id, certificate_pem, private_key_pem, created_at)
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ca.certificate_pem)
        .bind(&ca.private_key_pem)
        .bind(ca.created_at);
        self.write().execute(insert).await?;
        let row = self.write().fetch_optional(Query::new(SELECT_CERTIFICATE_AUTHORITY)).await?;
        match row {
            Some(row) => certificate_authority_from_row(&row),
            None => {
                Err(dmsync_core::StoreError::Database("the certificate authority row vanished after its insert".into()))
            }
        }
    }

    async fn close(&self) {
        self.close_pools().await;
    }
}

fn certificate_authority_from_row(row: &Row) -> StoreResult<StoredCertificateAuthority> {
    Ok(StoredCertificateAuthority {
        certificate_pem: row.text("certificate_pem")?,
        private_key_pem: row.text("private_key_pem")?,
        created_at: row.time("created_at")?,
    })
}
