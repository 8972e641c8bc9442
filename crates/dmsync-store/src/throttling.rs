//! [`ThrottleStore`]: throttling's buckets on PostgreSQL, one function call per request (see
//! the `0014_throttle_buckets` migration). SQLite has no table for them: its one process keeps
//! them in memory, and the server never asks this store.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use dmsync_core::store::{ThrottleBucket, ThrottleStore};
use dmsync_core::{StoreError, StoreResult};

use crate::convert::to_ticks;
use crate::db::{Query, SqlStore, Value};
use crate::sql::Dialect;

/// Ticks (the stored unit of time) in a duration.
fn duration_ticks(d: Duration) -> i64 {
    (d.whole_nanoseconds() / 100).clamp(0, i64::MAX as i128) as i64
}

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn take_throttle_tokens(
        &self,
        buckets: &[ThrottleBucket],
        window: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Duration>> {
        if self.dialect() == Dialect::Sqlite {
            return Err(StoreError::Database(
                "throttling buckets are kept in the server's memory on SQLite, not in the database".into(),
            ));
        }
        if buckets.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = buckets.iter().map(|b| b.key.clone()).collect();
        let capacities: Vec<String> = buckets.iter().map(|b| b.capacity.to_string()).collect();
        let query = Query::new("SELECT dmsync_take_throttle_tokens($1, CAST($2 AS TEXT[])::BIGINT[], $3, $4)")
            .bind(Value::TextList(keys))
            .bind(Value::TextList(capacities))
            .bind(duration_ticks(window))
            .bind(to_ticks(now));
        let wait: i64 = self.write().scalar(query).await?;
        Ok((wait > 0).then(|| Duration::nanoseconds(wait.saturating_mul(100))))
    }
}
