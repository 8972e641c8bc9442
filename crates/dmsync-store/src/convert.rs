//! Conversions between domain values and column values shared by the backends.

use dmsync_core::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

/// Timestamps are stored as 100 ns ticks since the Unix epoch: Graph's own precision.
pub fn to_ticks(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 100) as i64
}

pub fn from_ticks(ticks: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ticks as i128 * 100).expect("stored ticks are in range")
}


pub fn opt_from_ticks(t: Option<i64>) -> Option<OffsetDateTime> {
    t.map(from_ticks)
}

pub fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Database(format!("stored id '{s}' is not a GUID: {e}")))
}

pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::AlreadyExists(d.message().to_owned()),
        _ => StoreError::Database(e.to_string()),
    }
}

pub fn hash_digest(hash: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(hash).to_vec()
}
