//! Entra ID device objects (`devices`, v1.0 and beta). Windows Autopilot creates one for every
//! device it registers, before the device is ever enrolled: its `deviceId` is the Autopilot
//! identity's `azureActiveDirectoryDeviceId`, its name is the serial number, and its
//! `physicalIds` carry the Autopilot facts that dynamic group rules match (the ZTDID, the group
//! tag as `[OrderId]`, the purchase order, a hardware id). The object outlives the Autopilot
//! identity: deleting the identity leaves it, as in Intune, and deleting it leaves the identity.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::TenantId;
use crate::ids::{AutopilotDeviceId, EntraDeviceId};
use crate::query::ListQuery;

/// `operatingSystem` of every object Autopilot creates.
pub const AUTOPILOT_OPERATING_SYSTEM: &str = "Windows";

/// `trustType` of every object Autopilot creates: Entra shows them as Microsoft Entra joined
/// (`AzureAd`) from the registration on, since the device joins Entra during its deployment.
pub const AUTOPILOT_TRUST_TYPE: &str = "AzureAd";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraDevice {
    pub tenant_id: TenantId,
    /// The object id (`id`).
    pub id: EntraDeviceId,
    /// `deviceId`, the id the device itself presents, which Autopilot shows as
    /// `azureActiveDirectoryDeviceId`.
    pub device_id: Uuid,
    pub display_name: String,
    pub operating_system: String,
    pub account_enabled: bool,
    pub trust_type: String,
    /// The Autopilot identity the object was created for, written as `[ZTDID]`.
    pub ztdid: Option<AutopilotDeviceId>,
    /// The group tag, written as `[OrderId]`; empty writes nothing.
    pub order_id: String,
    /// The purchase order, written as `[PurchaseOrderId]`; empty writes nothing.
    pub purchase_order_id: String,
    /// The hardware id, written as `[HWID]`; empty writes nothing.
    pub hardware_id: String,
    pub created_at: OffsetDateTime,
}

impl EntraDevice {
    /// `physicalIds` in the spellings Autopilot writes them. An empty group tag or purchase order
    /// leaves its entry out rather than writing `[OrderId]:` with nothing after it, so that a rule
    /// such as `-startsWith "[OrderId]"` matches only tagged devices.
    pub fn physical_ids(&self) -> Vec<String> {
        let mut ids = Vec::with_capacity(4);
        if let Some(ztdid) = self.ztdid {
            ids.push(format!("[ZTDID]:{ztdid}"));
        }
        if !self.order_id.is_empty() {
            ids.push(format!("[OrderId]:{}", self.order_id));
        }
        if !self.purchase_order_id.is_empty() {
            ids.push(format!("[PurchaseOrderId]:{}", self.purchase_order_id));
        }
        if !self.hardware_id.is_empty() {
            ids.push(format!("[HWID]:{}", self.hardware_id));
        }
        ids
    }
}

/// The device properties a list can be filtered and ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntraDeviceField {
    Id,
    DeviceId,
    DisplayName,
    OperatingSystem,
}

pub type EntraDeviceQuery = ListQuery<EntraDeviceField>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_ids_leave_out_what_is_empty() {
        let ztdid = AutopilotDeviceId::new();
        let mut device = EntraDevice {
            tenant_id: TenantId::new(),
            id: EntraDeviceId::new(),
            device_id: Uuid::new_v4(),
            display_name: "S1".into(),
            operating_system: AUTOPILOT_OPERATING_SYSTEM.into(),
            account_enabled: true,
            trust_type: AUTOPILOT_TRUST_TYPE.into(),
            ztdid: Some(ztdid),
            order_id: String::new(),
            purchase_order_id: String::new(),
            hardware_id: "h:123".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(device.physical_ids(), [format!("[ZTDID]:{ztdid}"), "[HWID]:h:123".to_owned()]);
        device.order_id = "Sales".into();
        device.purchase_order_id = "PO-1".into();
        assert_eq!(
            device.physical_ids(),
            [
                format!("[ZTDID]:{ztdid}"),
                "[OrderId]:Sales".to_owned(),
                "[PurchaseOrderId]:PO-1".to_owned(),
                "[HWID]:h:123".to_owned()
            ]
        );
    }
}
