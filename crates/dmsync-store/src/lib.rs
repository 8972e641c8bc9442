//! Implementations of the dmsync storage traits. Each backend keeps its own SQL dialect and
//! migrations; the rest of dmsync sees only `dyn Store`. `tests/conformance.rs` runs one suite
//! against every backend.

mod common;
mod convert;
mod exchange_sql;
pub mod postgres;
mod postgres_exchange;
mod reconcile;
mod rows;
mod sql;
pub mod sqlite;
mod sqlite_exchange;
pub mod testdb;

use std::sync::Arc;

use dmsync_core::{Store, StoreError};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Opens the store named by a `--db` URL and runs its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == "sqlite://" || url == "sqlite:" {
        Err(StoreError::Database("a sqlite URL needs a path (sqlite://dmsync.db) or :memory: (sqlite::memory:)".into()))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Database(format!(
            "unsupported database URL '{url}': expected sqlite://PATH, sqlite::memory: or postgres://…"
        )))
    }
}

/// Whether a backend is single-node: one process owns the database, so jobs found running at
/// start-up belonged to a dead process and can be requeued at once.
pub fn is_single_node(url: &str) -> bool {
    url.starts_with("sqlite:")
}
