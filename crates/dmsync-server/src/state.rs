//! What every handler and worker shares.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use dmsync_core::clock::OffsetClock;
use dmsync_core::store::Topology;
use dmsync_core::{Backend, TenantId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Verifier;
use crate::auth::keys::KeyRing;
use crate::config::Config;
use crate::settings_cache::SettingsCache;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    /// The backend, settings methods included; those go through `autopilot_settings`.
    pub store: Arc<dyn Backend>,
    pub clock: Arc<OffsetClock>,
    pub keys: Arc<KeyRing>,
    pub verifier: Verifier,
    /// The tenants' `windowsAutopilotSettings`; every store call that writes them goes through
    /// its `write`.
    pub autopilot_settings: SettingsCache,
    /// Wakes the connector scheduler and idle workers when the Clock moves forward.
    pub clock_advanced: Notify,
    pub shutdown: CancellationToken,
    /// Tenants known to exist. Tenants are never deleted, so a positive cache is always right.
    known_tenants: RwLock<HashSet<TenantId>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Backend>,
        clock: Arc<OffsetClock>,
        keys: Arc<KeyRing>,
        verifier: Verifier,
        shutdown: CancellationToken,
    ) -> AppState {
        // Only a single-node backend has no other writer the cache could miss.
        let autopilot_settings = SettingsCache::new(store.topology() == Topology::SingleNode);
        AppState {
            inner: Arc::new(Inner {
                config,
                store,
                clock,
                keys,
                verifier,
                autopilot_settings,
                clock_advanced: Notify::new(),
                shutdown,
                known_tenants: RwLock::new(HashSet::new()),
            }),
        }
    }

    pub fn now(&self) -> time::OffsetDateTime {
        use dmsync_core::Clock;
        self.clock.now()
    }

    /// Whether the tenant exists, reading the database only the first time.
    pub async fn tenant_exists(&self, tenant: TenantId) -> Result<bool, dmsync_core::StoreError> {
        if self.known_tenants.read().expect("tenant cache lock").contains(&tenant) {
            return Ok(true);
        }
        let exists = self.store.tenant(tenant).await?.is_some();
        if exists {
            self.known_tenants.write().expect("tenant cache lock").insert(tenant);
        }
        Ok(exists)
    }
}
