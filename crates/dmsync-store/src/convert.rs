//! Conversions between domain values and column values shared by the engines.

use dmsync_core::autopilot::{AutopilotSettings, SyncDecision, SyncStatus};
use dmsync_core::{AutopilotDeviceId, StoreError};
use time::{Duration, OffsetDateTime};
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

/// A new Autopilot device id. Version 7 GUIDs grow with time, so devices registered together get
/// neighbouring ids: reconciliation walks registrations in device-id order and inserts devices in
/// key order, and neighbouring ids keep both walks on neighbouring pages instead of one random
/// page per device. To a client they are ordinary GUIDs.
pub fn new_device_id() -> AutopilotDeviceId {
    AutopilotDeviceId::now_v7()
}

pub fn hash_digest(hash: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(hash).to_vec()
}

pub fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).expect("a list of strings serialises")
}

pub fn parse_json_list(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Database(e.to_string()))
}

pub const CLOCK_OFFSET_KEY: &str = "clock_offset_nanos";

/// Rows per reconciliation chunk: each chunk is one short write transaction.
pub const RECONCILE_CHUNK: i64 = 50_000;

/// How many refused rows one registration request reports at most.
pub const MAX_REPORTED_REJECTIONS: i64 = 1000;

/// Why a sync that could not start was refused: 409 beats 429, as the docs order them.
pub fn refusal(settings: &AutopilotSettings, now: OffsetDateTime, cooldown: Duration) -> SyncDecision {
    if settings.sync_status == SyncStatus::InProgress {
        return SyncDecision::AlreadyInProgress;
    }
    let anchor = settings.cooldown_anchor.unwrap_or(now - cooldown);
    SyncDecision::CoolingDown { remaining: (anchor + cooldown - now).max(Duration::ZERO) }
}
