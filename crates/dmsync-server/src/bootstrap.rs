//! The well-known development identities an empty database gets, documented in the README the
//! way Azurite documents devstoreaccount1.

use uuid::{Uuid, uuid};

use dmsync_core::identity::{AppRegistration, Tenant, User};
use dmsync_core::permissions::{ALL_PERMISSIONS, APPLICATION_PERMISSIONS};
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

/// The development app's roles: every application permission dmsync serves, so that a
/// newcomer's first call of any route works with it. The 403 paths are tested with tokens minted
/// through the admin API with fewer.
pub const DEV_APP_ROLES: &[&str] = APPLICATION_PERMISSIONS;

/// The development user's scopes: every permission dmsync serves, including
/// `Directory.AccessAsUser.All`, the one delegated permission that deletes an Entra device.
pub const DEV_USER_SCOPES: &[&str] = ALL_PERMISSIONS;

/// Seeds the development tenant, app and user when the database has no tenant at all.
/// Returns whether it did.
pub async fn seed_if_empty(store: &dyn Store, now: time::OffsetDateTime) -> Result<bool, StoreError> {
    if store.tenant_count().await? > 0 {
        return Ok(false);
    }
    match store.create_tenant(&development_tenant(), now).await {
        Ok(()) => {}
        // Another replica seeded it first.
        Err(StoreError::AlreadyExists(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    create_development_identities(store).await?;
    Ok(true)
}

/// Creates whichever of the development tenant, app and user is missing, as after a reset
/// (`POST /_dmsync/reset`) or a restore of a snapshot taken without them.
pub async fn restore_development_identities(store: &dyn Store, now: time::OffsetDateTime) -> Result<(), StoreError> {
    match store.create_tenant(&development_tenant(), now).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    create_development_identities(store).await
}

fn development_tenant() -> Tenant {
    Tenant { id: DEV_TENANT_ID, domain: DEV_TENANT_DOMAIN.into() }
}

/// The development app and user, each unless it exists already.
async fn create_development_identities(store: &dyn Store) -> Result<(), StoreError> {
    let app = AppRegistration {
        tenant_id: DEV_TENANT_ID,
        client_id: DEV_CLIENT_ID,
        object_id: DEV_APP_OBJECT_ID,
        display_name: "dmsync development app".into(),
        secret_hash: hash_secret(DEV_CLIENT_SECRET),
        roles: DEV_APP_ROLES.iter().map(|p| p.to_string()).collect(),
        delegated_permissions: None,
        redirect_uris: Vec::new(),
    };
    match store.create_app(&app).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    let user = User {
        tenant_id: DEV_TENANT_ID,
        object_id: DEV_USER_OBJECT_ID,
        user_principal_name: DEV_USER_UPN.into(),
        display_name: "Contoso Admin".into(),
        password_hash: hash_secret(DEV_USER_PASSWORD),
        scopes: DEV_USER_SCOPES.iter().map(|p| p.to_string()).collect(),
    };
    match store.create_user(&user).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before the development identities held every permission is given them
    /// by a migration, which must name the same lists as the seed.
    #[test]
    fn the_migration_grants_the_development_identities_what_the_seed_does() {
        for migration in [
            include_str!("../../dmsync-store/migrations/sqlite/0014_app_credentials.sql"),
            include_str!("../../dmsync-store/migrations/postgres/0011_app_credentials.sql"),
        ] {
            let list = |slice: &[&str]| serde_json::to_string(slice).unwrap();
            assert!(migration.contains(&format!("SET roles = '{}'", list(DEV_APP_ROLES))));
            assert!(migration.contains(&format!("SET scopes = '{}'", list(DEV_USER_SCOPES))));
        }
    }
}
