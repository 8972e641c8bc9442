//! [`EntraDeviceStore`]: Entra ID device objects. The Autopilot paths create them (reconciliation
//! and import processing, with [`insert_for_devices`], in the transaction that creates the
//! Autopilot devices) and keep their `[OrderId]` and `[PurchaseOrderId]` in step with the
//! devices' group tag and purchase order; this file reads and deletes them (a deleted object
//! leaves every group it was a member of).

use async_trait::async_trait;

use dmsync_core::entra::{
    AUTOPILOT_OPERATING_SYSTEM, AUTOPILOT_TRUST_TYPE, EntraDevice, EntraDeviceField, EntraDeviceQuery,
};
use dmsync_core::filter::Filter;
use dmsync_core::store::EntraDeviceStore;
use dmsync_core::{EntraDeviceId, StoreResult, TenantId};

use crate::db::{Query, SqlStore};
use crate::rows::entra_device_from_row;
use crate::sql::{Dialect, entra_device_column};

/// The statement that creates the Entra objects of Autopilot devices: `from` names
/// `autopilot_devices d` and `autopilot_registrations r` (the device's registration, for the
/// hardware id) and whatever else selects the devices; `condition` selects them. A device that
/// already has its object keeps it (the `deviceId` is unique in a tenant).
pub(crate) fn insert_for_devices(dialect: Dialect, from: &str, condition: &str) -> String {
    let id = dialect.guid_like("d.id");
    let hardware_id = dialect.hardware_id("r.hash_digest");
    format!(
        "INSERT INTO entra_devices (tenant_id, id, device_id, display_name, operating_system, account_enabled,
             trust_type, ztdid, order_id, purchase_order_id, hardware_id, created_at)
         SELECT d.tenant_id, {id}, d.azure_ad_device_id, d.serial_number, '{AUTOPILOT_OPERATING_SYSTEM}', 1,
                '{AUTOPILOT_TRUST_TYPE}', d.id, d.group_tag, d.purchase_order_identifier, {hardware_id}, d.created_at
           FROM {from}
          WHERE {condition}
         ON CONFLICT (tenant_id, device_id) DO NOTHING"
    )
}

#[async_trait]
impl EntraDeviceStore for SqlStore {
    async fn list_entra_devices(&self, tenant: TenantId, query: &EntraDeviceQuery) -> StoreResult<Vec<EntraDevice>> {
        self.list_page("entra_devices", tenant, query, entra_device_column, &[], entra_device_from_row).await
    }

    async fn count_entra_devices(
        &self,
        tenant: TenantId,
        filter: Option<&Filter<EntraDeviceField>>,
    ) -> StoreResult<u64> {
        self.count("entra_devices", tenant, filter, entra_device_column).await
    }

    async fn entra_device(&self, tenant: TenantId, id: EntraDeviceId) -> StoreResult<Option<EntraDevice>> {
        self.by_id("entra_devices", tenant, id, entra_device_from_row).await
    }

    async fn delete_entra_device(&self, tenant: TenantId, id: EntraDeviceId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let memberships =
            Query::new("DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2").bind(tenant).bind(id);
        tx.execute(memberships).await?;
        let query = Query::new("DELETE FROM entra_devices WHERE tenant_id = $1 AND id = $2").bind(tenant).bind(id);
        let deleted = tx.execute(query).await? == 1;
        tx.commit().await?;
        Ok(deleted)
    }
}
