//! The well-known development identities an empty database gets, documented in the README the
//! way Azurite documents devstoreaccount1.

use uuid::{Uuid, uuid};

use dmsync_core::identity::{AppRegistration, Tenant, User};
use dmsync_core::permissions::{
    CONFIGURATION_READ, DEVICE_READ_WRITE, DIRECTORY_ACCESS_AS_USER, GROUP_READ_WRITE, RBAC_READ_WRITE,
    SERVICE_CONFIG_READ_WRITE,
};
use dmsync_core::{Store, StoreError, TenantId};

use crate::auth::secrets::hash_secret;

pub const DEV_TENANT_ID: TenantId = TenantId::from_uuid(uuid!("11111111-1111-4111-8111-111111111111"));
pub const DEV_TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
pub const DEV_CLIENT_ID: Uuid = uuid!("22222222-2222-4222-8222-222222222222");
pub const DEV_CLIENT_SECRET: &str = "dmsync-dev-secret";
pub const DEV_APP_OBJECT_ID: Uuid = uuid!("33333333-3333-4333-8333-333333333333");
pub const DEV_USER_UPN: &str = "admin@contoso.onmicrosoft.com";
pub const DEV_USER_PASSWORD: &str = "dmsync-dev-password";
pub const DEV_USER_OBJECT_ID: Uuid = uuid!("44444444-4444-4444-8444-444444444444");

/// The development app's roles: the Autopilot and Exchange connector operations, the role scope
/// tags that IntuneCD's backup reads first, and the Entra devices that Get-WindowsAutopilotInfo
/// looks up and deletes (`Device.ReadWrite.All`, which an application needs for both), and the
/// groups it creates, reads and adds devices to (`Group.ReadWrite.All`, which covers members),
/// and the assignment filters IntuneCD reads before it writes an assignment
/// (`DeviceManagementConfiguration.Read.All`).
pub const DEV_APP_ROLES: &[&str] =
    &[SERVICE_CONFIG_READ_WRITE, RBAC_READ_WRITE, DEVICE_READ_WRITE, GROUP_READ_WRITE, CONFIGURATION_READ];

/// The development user's scopes: the app's, and `Directory.AccessAsUser.All`, the one
/// delegated permission that deletes an Entra device.
pub const DEV_USER_SCOPES: &[&str] = &[
    SERVICE_CONFIG_READ_WRITE,
    RBAC_READ_WRITE,
    DEVICE_READ_WRITE,
    DIRECTORY_ACCESS_AS_USER,
    GROUP_READ_WRITE,
    CONFIGURATION_READ,
];

/// Seeds the development tenant, app and user when the database has no tenant at all.
/// Returns whether it did.
pub async fn seed_if_empty(store: &dyn Store, now: time::OffsetDateTime) -> Result<bool, StoreError> {
    if store.tenant_count().await? > 0 {
        return Ok(false);
    }
    match store.create_tenant(&Tenant { id: DEV_TENANT_ID, domain: DEV_TENANT_DOMAIN.into() }, now).await {
        Ok(()) => {}
        // Another replica seeded it first.
        Err(StoreError::AlreadyExists(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    store
        .create_app(&AppRegistration {
            tenant_id: DEV_TENANT_ID,
            client_id: DEV_CLIENT_ID,
            object_id: DEV_APP_OBJECT_ID,
            display_name: "dmsync development app".into(),
            secret_hash: hash_secret(DEV_CLIENT_SECRET),
            roles: DEV_APP_ROLES.iter().map(|p| p.to_string()).collect(),
        })
        .await?;
    store
        .create_user(&User {
            tenant_id: DEV_TENANT_ID,
            object_id: DEV_USER_OBJECT_ID,
            user_principal_name: DEV_USER_UPN.into(),
            display_name: "Contoso Admin".into(),
            password_hash: hash_secret(DEV_USER_PASSWORD),
            scopes: DEV_USER_SCOPES.iter().map(|p| p.to_string()).collect(),
        })
        .await?;
    Ok(true)
}
