//! [`SystemStore`]: the liveness check, the persisted clock offset and shutdown.

use async_trait::async_trait;
use time::Duration;

use dmsync_core::StoreResult;
use dmsync_core::store::{SystemStore, Topology};

use crate::convert::CLOCK_OFFSET_KEY;
use crate::db::{Query, SqlStore};

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

    async fn close(&self) {
        self.close_pools().await;
    }
}
