//! Collection pages kept as the bytes last written, for as long as nothing has been written
//! since. A client that pages through a tenant's devices, or a dashboard that polls one page,
//! then costs a lookup instead of a query, a decode of every row and a serialisation.
//!
//! Correctness rests on the store's write generation (`SystemStore::write_generation`), which
//! moves after every committed write of this process and exists only where no other process
//! writes (SQLite). A page is filed under the generation read *before* its query ran, so it is
//! at least as new as that generation, and it is served only while the generation is still the
//! same: the first write after it empties the cache. On PostgreSQL, where replicas write behind
//! each other's backs, there is no generation and every page is read from the database.
//!
//! What a page depends on is its key: the tenant (every collection is tenant-scoped), and the
//! absolute URL the client addressed, which carries the version, the collection, the query
//! options and the origin that the nextLink names. Authorization runs before the cache is
//! asked, and no page depends on who the caller is within the tenant.

use std::sync::Mutex;

use bytes::Bytes;
use dmsync_core::TenantId;

/// The key of one page: the tenant and the absolute URL the client addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    tenant: TenantId,
    url: String,
}

impl PageKey {
    pub fn new(tenant: TenantId, url: &str) -> PageKey {
        PageKey { tenant, url: url.to_owned() }
    }

    fn cost(&self, page: &Bytes) -> usize {
        self.url.len() + page.len()
    }
}

/// The cache, bounded in bytes. Once full it keeps what it has until the next write empties
/// it: pages of one generation are all equally fresh, and dropping some for others would
/// cost more bookkeeping than it saves.
pub struct PageCache {
    max_bytes: usize,
    pages: Mutex<Pages>,
}

#[derive(Default)]
struct Pages {
    generation: u64,
    bytes: usize,
    /// foldhash (randomly seeded per map) rather than SipHash: every cached GET hashes its URL.
    by_key: foldhash::HashMap<PageKey, Bytes>,
}

impl PageCache {
    /// A cache of at most `max_bytes` of pages; zero keeps none.
    pub fn new(max_bytes: usize) -> PageCache {
        PageCache { max_bytes, pages: Mutex::new(Pages::default()) }
    }

    /// The page filed under `key` at `generation`, the store's current one.
    pub fn get(&self, key: &PageKey, generation: u64) -> Option<Bytes> {
        if self.max_bytes == 0 {
            return None;
        }
        let pages = self.pages.lock().expect("page cache lock");
        (pages.generation == generation).then(|| pages.by_key.get(key).cloned()).flatten()
    }

    /// Files a page read after the store's generation was `generation`. A page from before
    /// a newer generation the cache already holds is dropped; a newer generation empties it.
    pub fn insert(&self, key: PageKey, generation: u64, page: Bytes) {
        let cost = key.cost(&page);
        if cost > self.max_bytes {
            return;
        }
        let mut pages = self.pages.lock().expect("page cache lock");
        if generation < pages.generation {
            return;
        }
        if generation > pages.generation {
            pages.by_key.clear();
            pages.bytes = 0;
            pages.generation = generation;
        }
        if pages.bytes + cost > self.max_bytes {
            return;
        }
        if let Some(previous) = pages.by_key.insert(key.clone(), page) {
            pages.bytes -= key.cost(&previous);
        }
        pages.bytes += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn key(path: &str) -> PageKey {
        PageKey::new(TenantId::from_uuid(Uuid::nil()), &format!("http://localhost{path}"))
    }

    #[test]
    fn a_page_is_served_only_at_the_generation_it_was_read_at() {
        let cache = PageCache::new(1024);
        cache.insert(key("/beta/a"), 3, Bytes::from_static(b"page"));
        assert_eq!(cache.get(&key("/beta/a"), 3).as_deref(), Some(&b"page"[..]));
        assert_eq!(cache.get(&key("/beta/a"), 4), None, "a later write hides it");
        assert_eq!(cache.get(&key("/beta/b"), 3), None);
    }

    #[test]
    fn a_newer_generation_empties_the_cache_and_an_older_page_is_dropped() {
        let cache = PageCache::new(1024);
        cache.insert(key("/beta/a"), 3, Bytes::from_static(b"old"));
        cache.insert(key("/beta/b"), 4, Bytes::from_static(b"new"));
        assert_eq!(cache.get(&key("/beta/a"), 4), None);
        // Read before the write that made generation 4: it may be older than what 4 shows.
        cache.insert(key("/beta/a"), 3, Bytes::from_static(b"old"));
        assert_eq!(cache.get(&key("/beta/a"), 4), None);
        assert_eq!(cache.get(&key("/beta/b"), 4).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn the_cache_keeps_within_its_bytes_and_zero_keeps_nothing() {
        let cache = PageCache::new(64);
        cache.insert(key("/a"), 1, Bytes::from(vec![b'x'; 40]));
        cache.insert(key("/b"), 1, Bytes::from(vec![b'y'; 40]));
        assert!(cache.get(&key("/a"), 1).is_some());
        assert!(cache.get(&key("/b"), 1).is_none(), "it did not fit beside the first");
        let off = PageCache::new(0);
        off.insert(key("/a"), 1, Bytes::from_static(b"x"));
        assert!(off.get(&key("/a"), 1).is_none());
    }

    #[test]
    fn the_tenant_is_part_of_the_key() {
        let cache = PageCache::new(1024);
        cache.insert(key("/beta/a"), 1, Bytes::from_static(b"page"));
        let other = PageKey::new(TenantId::from_uuid(Uuid::from_u128(1)), "http://localhost/beta/a");
        assert_eq!(cache.get(&other, 1), None);
    }
}
