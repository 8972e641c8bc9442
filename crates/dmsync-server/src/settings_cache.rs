//! The tenants' `windowsAutopilotSettings` singletons, kept in memory when this process is the
//! only one that writes them (SQLite), so that the GET and the 429 of a retry storm need no
//! database round trip.
//!
//! [`SettingsCache`] wraps the backend's [`AutopilotSettingsStore`] and implements it itself, and
//! the server's state hands out only the cache, so no handler or job can read or write the
//! settings around it.
//!
//! The cache must never show a state older than one a client could already have seen. Every
//! store call that writes a settings row runs inside [`SettingsCache::write`]: while one runs,
//! reads of that tenant bypass the cache, and when it ends the entry is dropped and its
//! generation moves on, so a read that started before the write (and may have read the old row)
//! cannot store its result. A write is therefore visible to every read that starts after it
//! committed, as it is without the cache.
//!
//! With PostgreSQL other replicas write the same rows, and nothing here would hear of it, so the
//! cache is off and every read goes to the database (see docs/DEPLOYMENT.md).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dmsync_core::autopilot::{AutopilotSettings, ForcedImportError, ImportStats, SyncDecision, SyncOutcome};
use dmsync_core::jobs::{JobLease, NewJob};
use dmsync_core::store::AutopilotSettingsStore;
use dmsync_core::{StoreResult, TenantId};
use time::{Duration, OffsetDateTime};

pub struct SettingsCache {
    store: Arc<dyn AutopilotSettingsStore>,
    enabled: bool,
    tenants: Mutex<Tenants>,
}

#[derive(Default)]
struct Tenants {
    entries: foldhash::HashMap<TenantId, Entry>,
    /// Resets and restores (which write every tenant's row) that have started and not ended.
    resets_in_flight: u32,
    /// Moves on at the start and at the end of every reset, as an entry's generation does for
    /// a write of its row.
    reset_generation: u64,
}

#[derive(Default)]
struct Entry {
    settings: Option<AutopilotSettings>,
    /// Moves on at the start and at the end of every write, so that a read can tell whether a
    /// write overlapped it.
    generation: u64,
    /// Writes of this tenant's row that have started and not ended.
    writes_in_flight: u32,
}

impl SettingsCache {
    /// A cache over `store` that holds settings only when `enabled`; otherwise every read is the
    /// store's.
    pub fn new(store: Arc<dyn AutopilotSettingsStore>, enabled: bool) -> SettingsCache {
        SettingsCache { store, enabled, tenants: Mutex::new(Tenants::default()) }
    }

    fn tenants(&self) -> MutexGuard<'_, Tenants> {
        // The map holds no invariant a panicking holder could break half-way.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's settings (created on first read, as the store does).
    async fn read(&self, tenant: TenantId) -> StoreResult<AutopilotSettings> {
        if !self.enabled {
            return self.store.autopilot_settings(tenant).await;
        }
        let (generation, reset_generation) = {
            let mut tenants = self.tenants();
            let resetting = tenants.resets_in_flight > 0;
            let reset_generation = tenants.reset_generation;
            let entry = tenants.entries.entry(tenant).or_default();
            if entry.writes_in_flight == 0
                && !resetting
                && let Some(settings) = &entry.settings
            {
                return Ok(settings.clone());
            }
            (entry.generation, reset_generation)
        };
        let settings = self.store.autopilot_settings(tenant).await?;
        let mut tenants = self.tenants();
        let unchanged = tenants.resets_in_flight == 0 && tenants.reset_generation == reset_generation;
        let entry = tenants.entries.entry(tenant).or_default();
        if unchanged && entry.writes_in_flight == 0 && entry.generation == generation {
            entry.settings = Some(settings.clone());
        }
        Ok(settings)
    }

    /// Runs a store call that may write the tenant's settings row. The cache holds nothing for
    /// the tenant until the call has ended, whether it finished, failed or was dropped.
    async fn write<T>(&self, tenant: TenantId, store_call: impl Future<Output = T>) -> T {
        let _guard = self.enabled.then(|| {
            let mut tenants = self.tenants();
            let entry = tenants.entries.entry(tenant).or_default();
            entry.settings = None;
            entry.generation += 1;
            entry.writes_in_flight += 1;
            WriteGuard { cache: self, tenant }
        });
        store_call.await
    }

    /// Runs a store call that may write every tenant's row (a reset, a restore): while it
    /// runs nothing is served from the cache or stored in it, and when it ends every entry is
    /// gone.
    pub async fn reset<T>(&self, store_call: impl Future<Output = T>) -> T {
        let _guard = self.enabled.then(|| {
            let mut tenants = self.tenants();
            tenants.entries.clear();
            tenants.reset_generation += 1;
            tenants.resets_in_flight += 1;
            ResetGuard { cache: self }
        });
        store_call.await
    }
}

#[async_trait]
impl AutopilotSettingsStore for SettingsCache {
    async fn autopilot_settings(&self, tenant: TenantId) -> StoreResult<AutopilotSettings> {
        self.read(tenant).await
    }

    async fn trigger_autopilot_sync(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
        cooldown: Duration,
        job: &NewJob,
    ) -> StoreResult<SyncDecision> {
        self.write(tenant, self.store.trigger_autopilot_sync(tenant, now, cooldown, job)).await
    }

    async fn finish_autopilot_sync(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        outcome: SyncOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.write(tenant, self.store.finish_autopilot_sync(lease, tenant, outcome, error, now)).await
    }

    async fn process_imports(
        &self,
        lease: &JobLease,
        tenant: TenantId,
        now: OffsetDateTime,
        counts_as_sync: bool,
        follow_up: &NewJob,
        forced: &[ForcedImportError],
    ) -> StoreResult<Option<ImportStats>> {
        self.write(tenant, self.store.process_imports(lease, tenant, now, counts_as_sync, follow_up, forced)).await
    }
}

/// Ends a write when dropped, so that a request cancelled mid-write leaves the cache consistent.
struct WriteGuard<'a> {
    cache: &'a SettingsCache,
    tenant: TenantId,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut tenants = self.cache.tenants();
        let entry = tenants.entries.entry(self.tenant).or_default();
        entry.settings = None;
        entry.generation += 1;
        entry.writes_in_flight -= 1;
    }
}

/// Ends a reset when dropped, as [`WriteGuard`] ends a write.
struct ResetGuard<'a> {
    cache: &'a SettingsCache,
}

impl Drop for ResetGuard<'_> {
    fn drop(&mut self) {
        let mut tenants = self.cache.tenants();
        tenants.entries.clear();
        tenants.reset_generation += 1;
        tenants.resets_in_flight -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_core::autopilot::{SyncDecision, SyncStatus};
    use dmsync_core::identity::Tenant;
    use dmsync_core::store::IdentityStore;
    use dmsync_store::SqlStore;

    async fn store_with_tenant(tenant: TenantId) -> Arc<SqlStore> {
        let store = SqlStore::open("sqlite::memory:").await.unwrap();
        store
            .create_tenant(&Tenant { id: tenant, domain: "a.example".into() }, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        Arc::new(store)
    }

    fn sync_job() -> NewJob {
        NewJob::new(&crate::jobs::autopilot_sync::AutopilotSync {})
    }

    #[tokio::test]
    async fn a_read_during_a_write_sees_the_database_and_a_read_after_it_the_new_state() {
        let tenant = TenantId::new();
        let store = store_with_tenant(tenant).await;
        let cache = SettingsCache::new(store.clone(), true);
        let now = time::OffsetDateTime::now_utc();
        let cooldown = time::Duration::minutes(10);
        assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::Unknown);
        assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::Unknown);
        cache
            .write(tenant, async {
                let decision = store.trigger_autopilot_sync(tenant, now, cooldown, &sync_job()).await.unwrap();
                assert!(matches!(decision, SyncDecision::Started { .. }));
                // Committed but the write has not ended: the old entry is not served.
                assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::InProgress);
            })
            .await;
        assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::InProgress);
    }

    #[tokio::test]
    async fn a_write_dropped_half_way_leaves_no_stale_entry() {
        let tenant = TenantId::new();
        let store = store_with_tenant(tenant).await;
        let cache = SettingsCache::new(store.clone(), true);
        assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::Unknown);
        let now = time::OffsetDateTime::now_utc();
        // The store call commits, then the future is dropped before the write ends (a client
        // that hung up): the guard still ends the write.
        let write = cache.write(tenant, async {
            store.trigger_autopilot_sync(tenant, now, time::Duration::minutes(10), &sync_job()).await.unwrap();
            std::future::pending::<()>().await;
        });
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), write).await;
        assert_eq!(cache.autopilot_settings(tenant).await.unwrap().sync_status, SyncStatus::InProgress);
    }
}
