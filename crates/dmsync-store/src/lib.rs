//! The dmsync storage traits, implemented once over SQLite and PostgreSQL. [`SqlStore`] holds
//! the engine; each domain file writes its trait's SQL once over the narrow interface of
//! `db.rs`, and [`Dialect`](sql::Dialect) holds the few statements that truly differ per engine.
//! The server holds a `dyn Backend`; its handlers see only `dyn Store`. `tests/conformance.rs` runs one suite against
//! every engine.

mod authorization_codes;
mod autopilot;
mod convert;
mod db;
mod deployment_profiles;
mod device_codes;
mod entra;
mod exchange;
/// Test-only: a device's last contact with the service, which no store writes; see the module.
pub mod fixtures;
mod groups;
mod identity;
mod imports;
mod jobs;
mod profile_assignment;
mod query;
mod reconcile;
mod registrations;
mod rows;
mod scope_tags;
mod snapshots;
mod sql;
mod system;
pub mod testdb;
mod throttling;

use std::sync::Arc;

use dmsync_core::{Backend, StoreError};

pub use db::SqlStore;

/// Opens the store named by a `--db` URL and runs its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Backend>, StoreError> {
    Ok(Arc::new(SqlStore::open(url).await?))
}
