//! What every handler and worker shares. The fields are private: handlers reach the store
//! through [`AppState::store`], which has no settings methods, and the settings through
//! [`AppState::settings`], the cache, so neither invariant depends on discipline.

use std::sync::Arc;

use axum::extract::FromRef;
use dmsync_core::clock::OffsetClock;
use dmsync_core::snapshots::{ResetScope, SnapshotName};
use dmsync_core::store::{AutopilotSettingsStore, Backend};
use dmsync_core::{Clock, Store, StoreResult, TenantId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::idp::Issuer;
use crate::auth::keys::KeyRing;
use crate::auth::{KnownTenants, Verifier};
use crate::config::Config;
use crate::control::faults::FaultRules;
use crate::control::journal::Journal;
use crate::control::throttling::Throttle;
use crate::error::ApiError;
use crate::http::page_cache::{PageCache, PageKey};
use crate::http::response::ODataBody;
use crate::settings_cache::SettingsCache;
use crate::tls::CertificateAuthority;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    backend: Arc<dyn Backend>,
    clock: Arc<OffsetClock>,
    keys: Arc<KeyRing>,
    verifier: Verifier,
    issuer: Issuer,
    /// The tenants' `windowsAutopilotSettings`; the only way to the backend's settings methods.
    settings: SettingsCache,
    /// Collection pages as last written, until the next write.
    pages: PageCache,
    tenants: Arc<KnownTenants>,
    /// The local CA, served at `/_dmsync/ca.pem` and signing the HTTPS leaves.
    certificate_authority: Arc<CertificateAuthority>,
    /// Whether one process owns the database (SQLite): no other writer exists.
    single_node: bool,
    /// The request journal (`control::journal`), empty and off with `--journal-entries 0`.
    journal: Arc<Journal>,
    /// Throttling's setting and buckets (in memory on a single node, else in the database).
    throttle: Throttle,
    /// Wakes the connector scheduler and idle workers when the Clock moves forward.
    clock_advanced: Notify,
    /// The fault rules of this process (`control::faults`).
    faults: FaultRules,
    shutdown: CancellationToken,
}

/// What [`AppState::new`] is built from.
pub struct Parts {
    pub config: Config,
    pub backend: Arc<dyn Backend>,
    pub clock: Arc<OffsetClock>,
    pub keys: Arc<KeyRing>,
    pub verifier: Verifier,
    pub issuer: Issuer,
    pub tenants: Arc<KnownTenants>,
    pub certificate_authority: Arc<CertificateAuthority>,
    pub single_node: bool,
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        let Parts {
            config,
            backend,
            clock,
            keys,
            verifier,
            issuer,
            tenants,
            certificate_authority,
            single_node,
            shutdown,
        } = parts;
        // Only a single-node backend has no other writer the cache could miss.
        let settings_store: Arc<dyn AutopilotSettingsStore> = backend.clone();
        let settings = SettingsCache::new(settings_store, single_node);
        let pages = PageCache::new(config.page_cache_bytes);
        let journal = Arc::new(Journal::new(config.journal_entries, config.journal_body_bytes));
        let throttle = if single_node {
            Throttle::in_memory(config.throttling.clone())
        } else {
            Throttle::shared(config.throttling.clone(), backend.clone())
        };
        AppState {
            inner: Arc::new(Inner {
                config,
                backend,
                clock,
                keys,
                verifier,
                issuer,
                settings,
                pages,
                tenants,
                certificate_authority,
                single_node,
                journal,
                throttle,
                clock_advanced: Notify::new(),
                faults: FaultRules::default(),
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A page of one of `tenant`'s collections, at the absolute URL `url`: from the page
    /// cache while nothing was written since it was read, or else from `produce` (and then
    /// kept). The store's generation is read before `produce` reads the store; see
    /// `http::page_cache`.
    pub async fn cached_page(
        &self,
        tenant: TenantId,
        url: &str,
        produce: impl AsyncFnOnce() -> Result<ODataBody, ApiError>,
    ) -> Result<ODataBody, ApiError> {
        let Some(generation) = self.inner.backend.write_generation() else { return produce().await };
        let key = PageKey::new(tenant, url);
        if let Some(page) = self.inner.pages.get(&key, generation) {
            return Ok(ODataBody::ok(page));
        }
        let body = produce().await?;
        self.inner.pages.insert(key, generation, body.bytes().clone());
        Ok(body)
    }

    /// The store, without the Autopilot settings: those go through [`Self::settings`].
    pub fn store(&self) -> &dyn Store {
        self.inner.backend.as_ref()
    }

    /// The Autopilot settings, read through the cache and written with it invalidated.
    pub fn settings(&self) -> &SettingsCache {
        &self.inner.settings
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.inner.keys
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    pub fn certificate_authority(&self) -> &Arc<CertificateAuthority> {
        &self.inner.certificate_authority
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.inner.journal
    }

    pub fn is_single_node(&self) -> bool {
        self.inner.single_node
    }

    /// The fault rules, which the control plane's gate and the jobs consult.
    pub fn faults(&self) -> &FaultRules {
        &self.inner.faults
    }

    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    pub fn clock_advanced(&self) -> &Notify {
        &self.inner.clock_advanced
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }

    /// How far the Clock is ahead of the system time.
    pub fn clock_offset(&self) -> time::Duration {
        self.inner.clock.offset()
    }

    /// Moves the Clock forward by `by`, after adopting any advance another replica stored, and
    /// persists the new offset. Jobs and schedules waiting for a time that has now come are
    /// woken. Returns the new offset.
    pub async fn advance_clock(&self, by: time::Duration) -> StoreResult<time::Duration> {
        self.inner.clock.catch_up(self.store().clock_offset().await?);
        let offset = self.inner.clock.advance(by);
        self.store().save_clock_offset(offset).await?;
        self.wake_on_clock_advance();
        Ok(offset)
    }

    /// Adopts an offset another replica stored, waking the workers and the scheduler when it
    /// moved time forward, as a local advance does.
    pub fn follow_clock(&self, offset: time::Duration) {
        if offset > self.inner.clock.offset() {
            self.inner.clock.catch_up(offset);
            self.wake_on_clock_advance();
        }
    }

    fn wake_on_clock_advance(&self) {
        self.inner.clock_advanced.notify_waiters();
    }

    /// Empties what `scope` names (see `SnapshotStore::reset`), then recreates the development
    /// identities.
    pub async fn reset(&self, scope: ResetScope) -> StoreResult<()> {
        let state = self.clone();
        Self::to_the_end(async move {
            state.inner.settings.reset(state.store().reset(scope)).await?;
            state.after_state_replaced().await
        })
        .await
    }

    /// Replaces the state with a snapshot's, then recreates any development identity it lacks.
    pub async fn restore_snapshot(&self, name: &SnapshotName) -> StoreResult<()> {
        let (state, name) = (self.clone(), name.clone());
        Self::to_the_end(async move {
            state.inner.settings.reset(state.store().restore_snapshot(&name)).await?;
            state.after_state_replaced().await
        })
        .await
    }

    /// Runs a reset or a restore on a task of its own, so that a client that hangs up cannot
    /// stop it between its commit and the caches' learning of it.
    async fn to_the_end(work: impl Future<Output = StoreResult<()>> + Send + 'static) -> StoreResult<()> {
        tokio::spawn(work)
            .await
            .unwrap_or_else(|e| Err(dmsync_core::StoreError::Database(format!("the reset task failed: {e}"))))
    }

    /// What every cache must learn after a reset or a restore: tenants may be gone. (The page
    /// cache needs nothing: the write generation moved.)
    async fn after_state_replaced(&self) -> StoreResult<()> {
        self.inner.tenants.forget_all();
        crate::bootstrap::restore_development_identities(self.store(), self.now()).await
    }

    /// Whether the tenant exists, reading the database only the first time.
    pub async fn tenant_exists(&self, tenant: TenantId) -> StoreResult<bool> {
        self.inner.tenants.exists(tenant).await
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.inner.verifier.clone()
    }
}

impl FromRef<AppState> for Issuer {
    fn from_ref(state: &AppState) -> Issuer {
        state.inner.issuer.clone()
    }
}
