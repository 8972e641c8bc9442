//! Fresh PostgreSQL databases for tests, usable by any test suite (the conformance suite, the
//! integration suite, a crash harness): [`TestDatabase::create`] makes `dmsync_t_<uuid>` on the
//! server named by `DMSYNC_TEST_POSTGRES_URL` (default [`DEFAULT_URL`]) and returns its URL;
//! dropping the value drops the database.
//!
//! When the server cannot be reached, tests fail if `CI=true` (a missing service must never
//! pass silently in CI); elsewhere `create` prints a loud notice and returns `None`, and the
//! test returns early, so that a machine without PostgreSQL can still run the SQLite half.

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

pub const URL_VAR: &str = "DMSYNC_TEST_POSTGRES_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    /// The `postgres://` URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `admin_url` with its database replaced by `name`.
fn url_for(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDatabase {
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) if !in_ci() => {
                eprintln!(
                    "\n*** SKIPPED: PostgreSQL at {admin_url} is unreachable ({e}); set {URL_VAR} or start \
                     PostgreSQL (see README). With CI=true this fails instead. ***\n"
                );
                return None;
            }
            Err(e) => panic!("PostgreSQL at {admin_url} is unreachable ({e}); CI=true requires it (set {URL_VAR})"),
        };
        let name = format!("dmsync_t_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let _ = admin.close().await;
        Some(TestDatabase { url: url_for(&admin_url, &name), admin_url, name })
    }
}

impl Drop for TestDatabase {
    /// Drops the database, closing whatever still uses it, on a thread of its own: `Drop`
    /// cannot await, and the test's runtime may be shutting down.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_for;

    #[test]
    fn url_for_replaces_only_the_database() {
        assert_eq!(url_for("postgres://postgres@127.0.0.1:5432/postgres", "x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(url_for("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(url_for("postgresql://u@h/db?sslmode=disable", "x"), "postgresql://u@h/x?sslmode=disable");
    }
}
