//! Resets and snapshots of the whole state. Which tables hold tenant data is read from the
//! database's own catalogue (every table with a `tenant_id` column), so a table added by a
//! later migration is reset and snapshotted without anyone remembering to list it.
//!
//! SQLite keeps a snapshot as a database file of its own (`VACUUM INTO`, which writes a
//! consistent copy from a reader while writes go on), and restores it on the writer's
//! connection: the file is attached, and every table is emptied and refilled from it in one
//! transaction. PostgreSQL keeps a snapshot as a schema (`dmsnap_` and the name's hex), filled
//! by `CREATE TABLE … AS TABLE …` in one repeatable-read transaction, and restores it with one
//! `TRUNCATE` of every table and an `INSERT … SELECT` per table, in one transaction. Either way
//! a request running beside a restore sees the state before it or after it.

use std::path::PathBuf;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Sqlite};
use time::OffsetDateTime;

use dmsync_core::snapshots::{ResetScope, Snapshot, SnapshotName};
use dmsync_core::store::SnapshotStore;
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::db::{DbResult, Exec, Query, SqlStore};
use crate::rows::Columns;
use crate::scope_tags::insert_default_role_scope_tag;
use crate::sql::Dialect;

/// Tables a snapshot never holds and a restore never touches: the signing keys and the
/// certificate authority (so that tokens and trusted certificates outlive a restore, and no
/// snapshot file holds a private key), the Clock's offset (which only grows), the migrations'
/// own record, the client assertions already used (so that a restore cannot make a replay
/// succeed) and throttling's buckets (which count requests, not state).
const KEPT: &[&str] = &[
    "signing_keys",
    "certificate_authority",
    "system_state",
    "_sqlx_migrations",
    "consumed_assertions",
    "throttle_buckets",
];

/// Sign-in flows in progress: a snapshot does not hold them and a restore empties them, so that
/// a code redeemed after the snapshot cannot be redeemed again once it is restored.
const TRANSIENT: &[&str] = &["authorization_codes", "device_codes"];

/// The table a snapshot records when and from which schema version it was taken.
const SNAPSHOT_INFO: &str = "dmsync_snapshot";

/// PostgreSQL's schemas of snapshots start with this; the rest is the name in hex, since a
/// schema name is folded to lower case and a snapshot's is not.
const PG_SCHEMA_PREFIX: &str = "dmsnap_";

fn pg_schema(name: &SnapshotName) -> String {
    let hex: String = name.as_str().bytes().map(|b| format!("{b:02x}")).collect();
    format!("{PG_SCHEMA_PREFIX}{hex}")
}

fn name_of_pg_schema(schema: &str) -> Option<SnapshotName> {
    let hex = schema.strip_prefix(PG_SCHEMA_PREFIX)?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    SnapshotName::parse(&String::from_utf8(bytes?).ok()?).ok()
}

/// A table name from the catalogue, quoted for SQL. The names are our migrations', but quoting
/// keeps the statement right whatever they are.
fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// What a snapshot file is called while it is being written.
const PARTIAL: &str = ".partial-";

/// Attaches a snapshot file to the writer's connection as `snapshot`, first detaching one a
/// cancelled call may have left attached.
async fn attach(conn: &mut SqliteConnection, uri: &str) -> StoreResult<()> {
    let _ = detach(conn).await;
    Exec::on_sqlite_connection(conn).execute(Query::new("ATTACH DATABASE $1 AS snapshot").bind(uri.to_owned())).await?;
    Ok(())
}

async fn detach(conn: &mut SqliteConnection) -> StoreResult<()> {
    Exec::on_sqlite_connection(conn).execute(Query::new("DETACH DATABASE snapshot")).await.map(|_| ())
}

/// Creates the snapshots' directory readable by its owner only, like the data it holds.
fn private_dir(dir: &std::path::Path) -> StoreResult<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(StoreError::Database(format!("creating {}: {e}", dir.display()))),
    }
}

/// Creates an empty file readable by its owner only; refuses one that exists.
fn private_file(path: &std::path::Path) -> StoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))
}

/// Removes what an interrupted snapshot left behind.
fn remove_partials(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.contains(PARTIAL)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file path as the path of a SQLite URI: the characters a URI gives a meaning escaped.
fn uri_path(path: &str) -> String {
    path.replace('%', "%25").replace('?', "%3f").replace('#', "%23")
}

/// Sorts tables so that every parent comes before the tables whose foreign keys point at it:
/// the tenants, then the applications (their certificates' parent), then the rest, which
/// reference only those two. Rows are inserted in this order and deleted in its reverse;
/// SQLite counts a deferred violation made by deleting a parent first even once its children
/// are gone.
fn parents_first(tables: &mut [String]) {
    tables.sort_by_key(|t| match t.as_str() {
        "tenants" => 0,
        "app_registrations" => 1,
        _ => 2,
    });
}

impl SqlStore {
    /// Every table of the current schema but SQLite's own and those in `KEPT` and `TRANSIENT`:
    /// what a snapshot holds, parents first.
    async fn state_tables(&self) -> StoreResult<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY name"
            }
            Dialect::Postgres => {
                "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
            }
        };
        let rows = self.read().fetch_all(Query::new(sql)).await?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.get("name")?;
            if !KEPT.contains(&name.as_str()) && !TRANSIENT.contains(&name.as_str()) {
                tables.push(name);
            }
        }
        parents_first(&mut tables);
        Ok(tables)
    }

    /// The tables a reset empties: those with a `tenant_id` column but the kept ones (a used
    /// client assertion stays used, so a reset cannot make a replay succeed), parents first
    /// (read once on SQLite, whose file only this process opens; on PostgreSQL at every reset,
    /// since a replica of a newer version may have added a table since this one started).
    async fn tenant_tables(&self) -> StoreResult<Vec<String>> {
        match self.dialect() {
            Dialect::Sqlite => self.tenant_tables.get_or_try_init(|| self.read_tenant_tables()).await.cloned(),
            Dialect::Postgres => self.read_tenant_tables().await,
        }
    }

    async fn read_tenant_tables(&self) -> StoreResult<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT m.name AS name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND p.name = 'tenant_id' ORDER BY m.name"
            }
            Dialect::Postgres => {
                "SELECT c.table_name::text AS name FROM information_schema.columns c \
                 JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' \
                 AND t.table_type = 'BASE TABLE' ORDER BY c.table_name"
            }
        };
        let rows = self.read().fetch_all(Query::new(sql)).await?;
        let mut tables = rows.iter().map(|row| row.get("name")).collect::<StoreResult<Vec<String>>>()?;
        tables.retain(|table| !KEPT.contains(&table.as_str()));
        parents_first(&mut tables);
        Ok(tables)
    }

    /// The last migration applied, in the database `qualifier` names (`main.`, or `""` for the
    /// current one).
    async fn schema_version(exec: Exec<'_>, qualifier: &str) -> StoreResult<i64> {
        exec.scalar::<i64>(Query::new(format!("SELECT max(version) FROM {qualifier}_sqlx_migrations"))).await
    }

    fn snapshot_file(&self, name: &SnapshotName) -> StoreResult<PathBuf> {
        let dir = self.snapshot_dir.as_ref().ok_or_else(|| StoreError::Database("no snapshot directory".into()))?;
        Ok(dir.join(format!("{name}.sqlite")))
    }

    async fn sqlite_snapshot_info(file: &std::path::Path) -> StoreResult<(OffsetDateTime, i64)> {
        let options = SqliteConnectOptions::new().filename(file).read_only(true);
        let mut conn = SqliteConnection::connect_with(&options).await.db()?;
        let row = Exec::on_sqlite_connection(&mut conn)
            .fetch_one(Query::new(format!("SELECT created_at, version FROM {SNAPSHOT_INFO}")))
            .await;
        let _ = conn.close().await;
        let row = row?;
        Ok((row.time("created_at")?, row.int("version")?))
    }

    /// Copies the state tables into a new file attached to the writer's connection, in one
    /// transaction, so the copy is consistent and holds nothing of `KEPT` (no key is ever
    /// written to it). Writes wait while it runs; reads do not.
    async fn create_sqlite_snapshot(&self, name: &SnapshotName, now: OffsetDateTime) -> StoreResult<Snapshot> {
        let file = self.snapshot_file(name)?;
        let dir = file.parent().map(PathBuf::from).unwrap_or_default();
        private_dir(&dir)?;
        if file.exists() {
            return Err(StoreError::AlreadyExists(format!("snapshot {name}")));
        }
        // Written under a name of its own and renamed when complete, so a crash leaves no
        // half-written snapshot under the real name (and the next snapshot removes it).
        remove_partials(&dir);
        let partial = dir.join(format!("{name}{PARTIAL}{}", uuid::Uuid::new_v4()));
        private_file(&partial)?;
        let path = partial.to_str().ok_or_else(|| StoreError::Database("snapshot path is not UTF-8".into()))?;
        // As a URI with its mode, since an in-memory database's connection would otherwise
        // open the file in memory too.
        let target = format!("file:{}?mode=rw", uri_path(path));
        let tables = self.state_tables().await?;
        let Some(mut conn) = self.sqlite_writer_connection().await? else { unreachable!("a SQLite store") };
        let result = async {
            attach(&mut conn, &target).await?;
            let mut tx = conn.begin().await.db()?;
            let mut statements = Vec::new();
            for table in tables.iter().chain(std::iter::once(&"_sqlx_migrations".to_owned())) {
                let table = quoted(table);
                statements.push(Query::new(format!("CREATE TABLE snapshot.{table} AS SELECT * FROM main.{table}")));
            }
            statements.push(Query::new(format!(
                "CREATE TABLE snapshot.{SNAPSHOT_INFO} (created_at INTEGER NOT NULL, version INTEGER NOT NULL)"
            )));
            statements.push(
                Query::new(format!(
                    "INSERT INTO snapshot.{SNAPSHOT_INFO} (created_at, version) \
                     SELECT $1, max(version) FROM main._sqlx_migrations"
                ))
                .bind(now),
            );
            for statement in statements {
                Exec::on_sqlite_connection(&mut tx).execute(statement).await?;
            }
            tx.commit().await.db()
        }
        .await;
        let detached = detach(&mut conn).await;
        drop(conn);
        let result = result.and(detached).and_then(|()| {
            std::fs::rename(&partial, &file).map_err(|e| StoreError::Database(format!("renaming the snapshot: {e}")))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result?;
        Ok(Snapshot { name: name.clone(), created: now })
    }

    async fn restore_sqlite_snapshot(&self, name: &SnapshotName) -> StoreResult<()> {
        let file = self.snapshot_file(name)?;
        if !file.exists() {
            return Err(StoreError::NotFound);
        }
        let (_, version) = Self::sqlite_snapshot_info(&file).await?;
        let tables = self.state_tables().await?;
        let path = file.to_str().ok_or_else(|| StoreError::Database("snapshot path is not UTF-8".into()))?;
        // A URI with its mode, as for `VACUUM INTO`.
        let path = format!("file:{}?mode=ro", uri_path(path));
        let Some(mut conn) = self.sqlite_writer_connection().await? else { unreachable!("a SQLite store") };
        let restored = async {
            attach(&mut conn, &path).await?;
            if Self::schema_version(Exec::on_sqlite_connection(&mut conn), "main.").await? != version {
                return Err(StoreError::Database(format!("snapshot {name} was taken by another schema version")));
            }
            let mut tx = conn.begin().await.db()?;
            // Foreign keys are checked at the commit, once every table is whole again.
            let mut statements = vec![Query::new("PRAGMA defer_foreign_keys = ON")];
            for table in TRANSIENT.iter().map(|t| t.to_string()).chain(tables.iter().rev().cloned()) {
                statements.push(Query::new(format!("DELETE FROM main.{}", quoted(&table))));
            }
            for table in &tables {
                let table = quoted(table);
                statements.push(Query::new(format!("INSERT INTO main.{table} SELECT * FROM snapshot.{table}")));
            }
            for statement in statements {
                Exec::on_sqlite_connection(&mut tx).execute(statement).await?;
            }
            tx.commit().await.db()
        }
        .await;
        let detached = detach(&mut conn).await;
        if restored.is_ok() {
            self.note_commit();
        }
        restored.and(detached)
    }

    /// Resets on the SQLite writer's connection with its foreign keys off, so that SQLite can
    /// empty a whole table by freeing its pages instead of deleting row by row with every
    /// index (its truncate optimisation, which foreign keys disable even on a child table).
    /// Nothing is left dangling: a reset only deletes, and it deletes a tenant's rows from
    /// every table that has them. The work runs on a task of its own, so that a caller that
    /// stops waiting cannot return the connection to the pool with its foreign keys off.
    async fn reset_sqlite(&self, scope: ResetScope, tables: Vec<String>) -> StoreResult<()> {
        let Some(conn) = self.sqlite_writer_connection().await? else { unreachable!("a SQLite store") };
        let mut conn = ForeignKeysOff(Some(conn));
        let result = tokio::spawn(async move {
            let result = match conn.turn_off().await {
                Ok(()) => reset_on_sqlite_connection(conn.connection(), scope, &tables).await,
                Err(e) => Err(e),
            };
            result.and(conn.restore().await)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Database(format!("the reset task failed: {e}"))));
        // Also after a failure: whether the commit took effect is unknown, and moving the
        // generation once too often costs only a cache miss.
        self.note_commit();
        result
    }

    async fn reset_pg(&self, scope: ResetScope, tables: &[String]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // The tenants' rows first: a write that references one (a job, another replica's
        // request) waits for the reset instead of slipping a row in beside it.
        let lock = match scope {
            ResetScope::All => Query::new("SELECT id FROM tenants FOR UPDATE"),
            ResetScope::Tenant(tenant) => Query::new("SELECT id FROM tenants WHERE id = $1 FOR UPDATE").bind(tenant),
        };
        let locked = tx.exec().fetch_all(lock).await?;
        if locked.is_empty() && matches!(scope, ResetScope::Tenant(_)) {
            return Err(StoreError::NotFound);
        }
        for table in tables.iter().rev() {
            let table = quoted(table);
            let query = match scope {
                ResetScope::All => Query::new(format!("DELETE FROM {table}")),
                ResetScope::Tenant(tenant) => {
                    Query::new(format!("DELETE FROM {table} WHERE tenant_id = $1")).bind(tenant)
                }
            };
            tx.execute(query).await?;
        }
        match scope {
            ResetScope::All => {
                tx.execute(Query::new("DELETE FROM tenants")).await?;
            }
            // The tenant stays, with the built-in tag every tenant has.
            ResetScope::Tenant(tenant) => {
                tx.execute(insert_default_role_scope_tag(tenant)).await?;
            }
        }
        tx.commit().await
    }

    async fn create_pg_snapshot(&self, name: &SnapshotName, now: OffsetDateTime) -> StoreResult<Snapshot> {
        let schema = pg_schema(name);
        let tables = self.state_tables().await?;
        let mut tx = self.begin().await?;
        // One consistent view of every table, whatever commits meanwhile.
        tx.execute(Query::new("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")).await?;
        match tx.execute(Query::new(format!("CREATE SCHEMA {schema}"))).await {
            Err(StoreError::Database(e)) if e.contains("already exists") => {
                return Err(StoreError::AlreadyExists(format!("snapshot {name}")));
            }
            other => other?,
        };
        for table in &tables {
            let table = quoted(table);
            tx.execute(Query::new(format!("CREATE TABLE {schema}.{table} AS TABLE {table}"))).await?;
        }
        tx.execute(Query::new(format!(
            "CREATE TABLE {schema}.{SNAPSHOT_INFO} (created_at BIGINT NOT NULL, version BIGINT NOT NULL)"
        )))
        .await?;
        tx.execute(
            Query::new(format!(
                "INSERT INTO {schema}.{SNAPSHOT_INFO} (created_at, version) SELECT $1, max(version) FROM _sqlx_migrations"
            ))
            .bind(now),
        )
        .await?;
        tx.commit().await?;
        Ok(Snapshot { name: name.clone(), created: now })
    }

    async fn pg_snapshot_exists(&self, schema: &str) -> StoreResult<bool> {
        let query = Query::new("SELECT count(*) FROM pg_namespace WHERE nspname = $1").bind(schema.to_owned());
        Ok(self.read().scalar::<i64>(query).await? > 0)
    }

    async fn restore_pg_snapshot(&self, name: &SnapshotName) -> StoreResult<()> {
        let schema = pg_schema(name);
        if !self.pg_snapshot_exists(&schema).await? {
            return Err(StoreError::NotFound);
        }
        let tables = self.state_tables().await?;
        let mut tx = self.begin().await?;
        let version =
            tx.exec().scalar::<i64>(Query::new(format!("SELECT version FROM {schema}.{SNAPSHOT_INFO}"))).await?;
        if Self::schema_version(tx.exec(), "").await? != version {
            return Err(StoreError::Database(format!("snapshot {name} was taken by another schema version")));
        }
        let list = tables
            .iter()
            .map(String::as_str)
            .chain(TRANSIENT.iter().copied())
            .map(quoted)
            .collect::<Vec<_>>()
            .join(", ");
        tx.execute(Query::new(format!("TRUNCATE {list}"))).await?;
        for table in &tables {
            let table = quoted(table);
            tx.execute(Query::new(format!("INSERT INTO {table} SELECT * FROM {schema}.{table}"))).await?;
        }
        tx.commit().await
    }
}

/// The SQLite writer's connection while a reset turns its foreign keys off. `restore` turns
/// them on again and checks that they are; a connection dropped without that (a panic
/// half-way) or whose foreign keys stay off is closed rather than returned to the pool, which
/// opens a new one with the store's options. (For `sqlite::memory:` that new connection is a new,
/// empty database: a loud failure, where a pool connection without foreign keys would be a
/// silent one.)
struct ForeignKeysOff(Option<PoolConnection<Sqlite>>);

impl ForeignKeysOff {
    fn connection(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("held until restored")
    }

    async fn turn_off(&mut self) -> StoreResult<()> {
        Exec::on_sqlite_connection(self.connection()).execute(Query::new("PRAGMA foreign_keys = OFF")).await?;
        Ok(())
    }

    async fn restore(mut self) -> StoreResult<()> {
        let mut conn = self.0.take().expect("held until restored");
        // Outside a transaction only: inside one SQLite ignores the pragma, hence the check.
        let on = async {
            Exec::on_sqlite_connection(&mut conn).execute(Query::new("PRAGMA foreign_keys = ON")).await?;
            Exec::on_sqlite_connection(&mut conn).scalar::<i64>(Query::new("PRAGMA foreign_keys")).await
        }
        .await;
        match on {
            Ok(1) => Ok(()),
            Ok(_) => {
                conn.close_on_drop();
                Err(StoreError::Database("the writer's foreign keys stayed off after a reset".into()))
            }
            Err(e) => {
                conn.close_on_drop();
                Err(e)
            }
        }
    }
}

impl Drop for ForeignKeysOff {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// How a tenant reset empties one table on SQLite, from how many rows the tenant and the others
/// have in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emptying {
    /// The tenant has no row in it.
    Skip,
    /// Only the tenant has rows in it: the whole table is emptied, page by page.
    Truncate,
    /// The other tenants have fewer rows in it than the tenant: theirs are set aside, the
    /// table is emptied page by page, and theirs are put back. Cheaper than deleting the
    /// tenant's rows one by one with each index entry, since every row costs about the same
    /// to insert as to delete and a page costs far less to free than its rows to delete.
    KeepOthers,
    /// The others have as many rows as the tenant or more: the tenant's rows are deleted.
    DeleteRows,
}

impl Emptying {
    /// `others` is counted only up to `mine` in each key range (see `count_others`).
    fn choose(mine: i64, others: i64) -> Emptying {
        if mine == 0 {
            Emptying::Skip
        } else if others == 0 {
            Emptying::Truncate
        } else if others < mine {
            Emptying::KeepOthers
        } else {
            Emptying::DeleteRows
        }
    }
}

/// A table name as an SQL string literal.
fn literal(table: &str) -> String {
    format!("'{}'", table.replace('\'', "''"))
}

/// The other tenants' rows, as three index ranges (and the rows with no tenant, which a
/// nullable `tenant_id` may hold); `$1` is the tenant.
fn others_ranges(table: &str) -> [String; 3] {
    let table = quoted(table);
    [
        format!("SELECT * FROM main.{table} WHERE tenant_id < $1"),
        format!("SELECT * FROM main.{table} WHERE tenant_id > $1"),
        format!("SELECT * FROM main.{table} WHERE tenant_id IS NULL"),
    ]
}

/// Empties what `scope` names on a SQLite connection whose foreign keys are off, in one
/// transaction.
async fn reset_on_sqlite_connection(
    conn: &mut SqliteConnection,
    scope: ResetScope,
    tables: &[String],
) -> StoreResult<()> {
    let mut tx = conn.begin().await.db()?;
    match scope {
        ResetScope::All => {
            for table in tables.iter().map(String::as_str).chain(["tenants"]) {
                let query = Query::new(format!("DELETE FROM main.{}", quoted(table)));
                Exec::on_sqlite_connection(&mut tx).execute(query).await?;
            }
        }
        ResetScope::Tenant(tenant) => {
            // With foreign keys off nothing else would notice a tenant that a concurrent reset
            // of every tenant removed, and the default tag below would outlive it.
            let exists = Query::new("SELECT 1 AS present FROM tenants WHERE id = $1").bind(tenant);
            if Exec::on_sqlite_connection(&mut tx).fetch_optional(exists).await?.is_none() {
                return Err(StoreError::NotFound);
            }
            for (table, emptying) in emptyings(&mut tx, tenant, tables).await? {
                let quoted = quoted(&table);
                let statements = match emptying {
                    Emptying::Skip => Vec::new(),
                    Emptying::Truncate => vec![Query::new(format!("DELETE FROM main.{quoted}"))],
                    Emptying::KeepOthers => vec![
                        Query::new(format!(
                            "CREATE TEMP TABLE dmsync_reset_kept AS {}",
                            others_ranges(&table).join(" UNION ALL ")
                        ))
                        .bind(tenant),
                        Query::new(format!("DELETE FROM main.{quoted}")),
                        Query::new(format!("INSERT INTO main.{quoted} SELECT * FROM temp.dmsync_reset_kept")),
                        Query::new("DROP TABLE temp.dmsync_reset_kept"),
                    ],
                    Emptying::DeleteRows => {
                        vec![Query::new(format!("DELETE FROM main.{quoted} WHERE tenant_id = $1")).bind(tenant)]
                    }
                };
                for statement in statements {
                    Exec::on_sqlite_connection(&mut tx).execute(statement).await?;
                }
            }
            // The tenant stays, with the built-in tag every tenant has.
            Exec::on_sqlite_connection(&mut tx).execute(insert_default_role_scope_tag(tenant)).await?;
        }
    }
    tx.commit().await.db()
}

/// How each table is emptied of `tenant`'s rows, children first, from two queries over every
/// table: how many rows the tenant has in each, then, where it has any, how many the others
/// have, counted only up to the tenant's in each index range so that a big neighbour costs no
/// more to count than the tenant's own rows.
async fn emptyings(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tables: &[String],
) -> StoreResult<Vec<(String, Emptying)>> {
    let mine_sql = tables
        .iter()
        .map(|t| format!("SELECT {} AS name, count(*) AS n FROM main.{} WHERE tenant_id = $1", literal(t), quoted(t)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut mine = std::collections::HashMap::new();
    for row in Exec::on_sqlite_connection(conn).fetch_all(Query::new(mine_sql).bind(tenant)).await? {
        mine.insert(row.get::<String, _>("name")?, row.get::<i64, _>("n")?);
    }
    let present: Vec<(&String, i64)> =
        tables.iter().filter_map(|t| mine.get(t).filter(|n| **n > 0).map(|n| (t, *n))).collect();
    let mut others = std::collections::HashMap::new();
    if !present.is_empty() {
        let others_sql = present
            .iter()
            .map(|(t, n)| {
                let counts = others_ranges(t).map(|range| format!("(SELECT count(*) FROM ({range} LIMIT {n}))"));
                format!("SELECT {} AS name, {} AS n", literal(t), counts.join(" + "))
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for row in Exec::on_sqlite_connection(conn).fetch_all(Query::new(others_sql).bind(tenant)).await? {
            others.insert(row.get::<String, _>("name")?, row.get::<i64, _>("n")?);
        }
    }
    Ok(tables
        .iter()
        .rev()
        .map(|t| {
            let mine = mine.get(t).copied().unwrap_or(0);
            (t.clone(), Emptying::choose(mine, others.get(t).copied().unwrap_or(0)))
        })
        .collect())
}

#[async_trait]
impl SnapshotStore for SqlStore {
    async fn reset(&self, scope: ResetScope) -> StoreResult<()> {
        let tables = self.tenant_tables().await?;
        match self.dialect() {
            Dialect::Sqlite => self.reset_sqlite(scope, tables).await,
            Dialect::Postgres => self.reset_pg(scope, &tables).await,
        }
    }

    async fn create_snapshot(&self, name: &SnapshotName, now: OffsetDateTime) -> StoreResult<Snapshot> {
        let _serialised = self.snapshot_lock.lock().await;
        match self.dialect() {
            Dialect::Sqlite => self.create_sqlite_snapshot(name, now).await,
            Dialect::Postgres => self.create_pg_snapshot(name, now).await,
        }
    }

    async fn snapshots(&self) -> StoreResult<Vec<Snapshot>> {
        let mut snapshots = Vec::new();
        match self.dialect() {
            Dialect::Sqlite => {
                let Some(dir) = &self.snapshot_dir else { return Ok(snapshots) };
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(snapshots),
                    Err(e) => return Err(StoreError::Database(format!("reading {}: {e}", dir.display()))),
                };
                for entry in entries.flatten() {
                    let file_name = entry.file_name();
                    let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".sqlite")) else { continue };
                    let Ok(name) = SnapshotName::parse(name) else { continue };
                    let (created, _) = Self::sqlite_snapshot_info(&entry.path()).await?;
                    snapshots.push(Snapshot { name, created });
                }
            }
            Dialect::Postgres => {
                let query =
                    Query::new("SELECT nspname::text AS name FROM pg_namespace WHERE nspname LIKE 'dmsnap\\_%'");
                for row in self.read().fetch_all(query).await? {
                    let schema: String = row.get("name")?;
                    let Some(name) = name_of_pg_schema(&schema) else { continue };
                    let info = Query::new(format!("SELECT created_at FROM {schema}.{SNAPSHOT_INFO}"));
                    let created = self.read().fetch_one(info).await?.time("created_at")?;
                    snapshots.push(Snapshot { name, created });
                }
            }
        }
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(snapshots)
    }

    async fn delete_snapshot(&self, name: &SnapshotName) -> StoreResult<()> {
        let _serialised = self.snapshot_lock.lock().await;
        match self.dialect() {
            Dialect::Sqlite => match std::fs::remove_file(self.snapshot_file(name)?) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
                Err(e) => Err(StoreError::Database(format!("deleting snapshot {name}: {e}"))),
            },
            Dialect::Postgres => {
                let schema = pg_schema(name);
                if !self.pg_snapshot_exists(&schema).await? {
                    return Err(StoreError::NotFound);
                }
                self.write().execute(Query::new(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await?;
                Ok(())
            }
        }
    }

    async fn restore_snapshot(&self, name: &SnapshotName) -> StoreResult<()> {
        let _serialised = self.snapshot_lock.lock().await;
        match self.dialect() {
            Dialect::Sqlite => self.restore_sqlite_snapshot(name).await,
            Dialect::Postgres => self.restore_pg_snapshot(name).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_core::store::{IdentityStore, SystemStore};

    /// No key reaches a snapshot file, its directory and file are the owner's alone, and an
    /// interrupted snapshot's leftovers are removed by the next one.
    #[tokio::test]
    async fn a_sqlite_snapshot_file_holds_no_key_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(&format!("sqlite://{}", dir.path().join("d.db").display())).await.unwrap();
        let key = dmsync_core::identity::SigningKey {
            kid: "kid-1".into(),
            private_pem: "PRIVATE".into(),
            n: "n".into(),
            e: "AQAB".into(),
            created_at: OffsetDateTime::now_utc(),
        };
        store.insert_signing_key(&key).await.unwrap();
        let snapshots = dir.path().join("d.db.snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        std::fs::write(snapshots.join("old.partial-1"), "left by a crash").unwrap();
        let name = SnapshotName::parse("s").unwrap();
        store.create_snapshot(&name, OffsetDateTime::now_utc()).await.unwrap();
        let file = snapshots.join("s.sqlite");
        assert!(
            !std::fs::read(&file).unwrap().windows(7).any(|w| w == b"PRIVATE"),
            "the key's text is not in the file"
        );
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display())).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for kept in ["signing_keys", "certificate_authority", "system_state", "consumed_assertions", "device_codes"] {
            assert!(!tables.iter().any(|t| t == kept), "{kept} in {tables:?}");
        }
        assert!(tables.iter().any(|t| t == "tenants"), "{tables:?}");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!snapshots.join("old.partial-1").exists());
        store.restore_snapshot(&name).await.unwrap();
        assert_eq!(store.signing_keys().await.unwrap().len(), 1, "a restore leaves the keys alone");
        store.close().await;
    }

    /// A table is emptied whole only when no other tenant has a row in it, and the others' rows
    /// are set aside only when they are fewer than the tenant's.
    #[test]
    fn a_reset_empties_a_table_whole_only_without_other_tenants_rows() {
        assert_eq!(Emptying::choose(0, 0), Emptying::Skip);
        assert_eq!(Emptying::choose(0, 5), Emptying::Skip);
        assert_eq!(Emptying::choose(10_000, 0), Emptying::Truncate);
        assert_eq!(Emptying::choose(10_000, 10), Emptying::KeepOthers);
        assert_eq!(Emptying::choose(3, 3), Emptying::DeleteRows);
        assert_eq!(Emptying::choose(1, 20), Emptying::DeleteRows);
    }

    #[test]
    fn a_postgres_schema_name_round_trips_and_fits_an_identifier() {
        for name in ["a", "Before-Import_2", &"z".repeat(SnapshotName::MAX_LEN)] {
            let name = SnapshotName::parse(name).unwrap();
            let schema = pg_schema(&name);
            assert!(schema.len() <= 63, "{schema}");
            assert!(schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(name_of_pg_schema(&schema), Some(name));
        }
        assert_eq!(name_of_pg_schema("dmsnap_2e2e2f"), None, "../ is no name");
        assert_eq!(name_of_pg_schema("public"), None);
    }
}
