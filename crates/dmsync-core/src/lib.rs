//! The dmsync domain: tenants and identities, the permission table, the Autopilot sync state
//! machine, durable jobs, the Clock, and the storage traits. This crate has no HTTP and no SQL;
//! `dmsync-store` implements the traits and `dmsync-server` speaks Graph.

pub mod autopilot;
pub mod autopilot_csv;
pub mod certificate;
pub mod clock;
pub mod deployment_profiles;
pub mod device_codes;
pub mod entra;
pub mod error;
pub mod exchange;
pub mod filter;
pub mod groups;
pub mod identity;
pub mod ids;
pub mod jobs;
pub mod limits;
pub mod membership_rule;
pub mod permissions;
pub mod profile_assignment;
pub mod query;
pub mod scope_tags;
pub mod snapshots;
pub mod store;

pub use clock::{Clock, SharedClock};
pub use error::{StoreError, StoreResult};
pub use ids::{
    AutopilotDeviceId, ConnectorId, DeploymentProfileId, EasDeviceId, EntraDeviceId, GroupId, Id, IdKind,
    ImportedDeviceId, JobId, RoleScopeTagId, TenantId,
};
pub use store::{Backend, Store};

/// The personal Microsoft account (MSA) tenant. Intune refuses every token issued in it.
pub const PERSONAL_ACCOUNT_TENANT: TenantId = TenantId::from_uuid(uuid::uuid!("9188040d-6c67-4c5b-b112-36a304b66dad"));
