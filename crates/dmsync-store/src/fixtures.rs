//! TEST-ONLY: what the tests of the assignment engine need written and no store writes. Groups,
//! their members, deployment profiles and their assignments go through their stores, as the
//! server writes them; a device's last contact with the service stays here because dmsync models
//! no device check-in, so nothing but a test ever sets it. Nothing in the server calls this.

use time::OffsetDateTime;

use dmsync_core::{AutopilotDeviceId, StoreResult, TenantId};

use crate::db::{Query, SqlStore};

/// Records that the device contacted the service at `at`, which makes the engine assign it
/// `assignedInSync` rather than `assignedUnkownSyncState`.
pub async fn set_last_contacted(
    store: &SqlStore,
    tenant: TenantId,
    device: AutopilotDeviceId,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let query = Query::new("UPDATE autopilot_devices SET last_contacted = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(device)
        .bind(at);
    store.write().execute(query).await?;
    Ok(())
}
