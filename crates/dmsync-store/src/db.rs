//! The one narrow interface every domain file is written over: [`SqlStore`] holds the engine,
//! [`Query`] is SQL text with its bound [`Value`]s, and [`Exec`] runs a query on a pool or inside
//! a transaction ([`Tx`]) and returns engine-neutral [`Row`]s. Only this file (and the opener)
//! knows that sqlx has two database types; the domains see one store.
//!
//! Placeholders are `$N` on both engines: SQLite binds `$N` by position as PostgreSQL does, so
//! one SQL text serves both wherever the dialects agree (see [`Dialect`] for where they do not).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use dmsync_core::query::CursorId;
use dmsync_core::store::Topology;
use dmsync_core::{Id, IdKind, RoleScopeTagId, StoreError, StoreResult};

use crate::convert::{RECONCILE_CHUNK, to_ticks};
use crate::sql::Dialect;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL's SQLSTATEs for text it cannot hold: `character_not_in_repertoire` (a NUL in a
/// `text` value) and `untranslatable_character` (`\u0000` in `jsonb`).
const UNSTORABLE_TEXT: [&str; 2] = ["22021", "22P05"];

/// Maps a sqlx error to the store's: a unique violation is `AlreadyExists`, a pool that had no
/// connection to give in time is `Busy` (the server answers 503, not 500), and text PostgreSQL
/// cannot hold is `Unstorable` (a 400: SQLite keeps such text, so the refusal is the backend's,
/// but the request is what carried it).
pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::AlreadyExists(d.message().to_owned()),
        sqlx::Error::Database(d) if d.code().is_some_and(|code| UNSTORABLE_TEXT.contains(&code.as_ref())) => {
            StoreError::Unstorable(d.message().to_owned())
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

/// `.db()` on a sqlx result: the error mapped by [`db_err`].
pub trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_err)
    }
}

/// A value bound to a placeholder. Nulls are typed, since PostgreSQL types every parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Vec<u8>),
    /// A list parameter: an array on PostgreSQL, JSON text on SQLite (read with `json_each`);
    /// [`Dialect::in_list`] writes the matching SQL.
    TextList(Vec<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Some(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Value {
        Value::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        Value::Text(v.clone())
    }
}
/// Ids (tenant ids included: `TenantId` is a GUID) are stored as lowercase GUID text.
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Value {
        Value::Text(Some(v.to_string()))
    }
}
/// Typed ids bind as the GUID they wrap.
impl<K: IdKind> From<Id<K>> for Value {
    fn from(v: Id<K>) -> Value {
        Value::from(v.as_uuid())
    }
}
impl<K: IdKind> From<Option<Id<K>>> for Value {
    fn from(v: Option<Id<K>>) -> Value {
        Value::Text(v.map(|id| id.to_string()))
    }
}
/// A scope tag's id is an integer column.
impl From<RoleScopeTagId> for Value {
    fn from(v: RoleScopeTagId) -> Value {
        Value::Int(Some(v.number().into()))
    }
}
/// A keyset cursor's id binds as its column does: GUID text or an integer.
impl From<CursorId> for Value {
    fn from(v: CursorId) -> Value {
        match v {
            CursorId::Guid(uuid) => Value::from(uuid),
            CursorId::Number(number) => Value::from(number),
        }
    }
}
/// Timestamps are stored as ticks (see [`to_ticks`]).
impl From<OffsetDateTime> for Value {
    fn from(v: OffsetDateTime) -> Value {
        Value::Int(Some(to_ticks(v)))
    }
}
impl From<Option<OffsetDateTime>> for Value {
    fn from(v: Option<OffsetDateTime>) -> Value {
        Value::Int(v.map(to_ticks))
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}
impl From<&[String]> for Value {
    fn from(v: &[String]) -> Value {
        Value::TextList(v.to_vec())
    }
}

/// SQL text and the values of its placeholders, in order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    sql: String,
    values: Vec<Value>,
}

impl Query {
    /// A statement whose text already holds its `$N` placeholders; `bind` supplies them in order.
    pub fn new(sql: impl Into<String>) -> Query {
        Query { sql: sql.into(), values: Vec::new() }
    }

    pub fn bind(mut self, value: impl Into<Value>) -> Query {
        self.values.push(value.into());
        self
    }

    pub fn push(&mut self, sql: &str) -> &mut Query {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind(&mut self, value: impl Into<Value>) -> &mut Query {
        self.values.push(value.into());
        self.sql.push_str(&format!("${}", self.values.len()));
        self
    }

    /// Appends `(…, …)` with one placeholder per value: a row of a multi-row `VALUES`.
    pub fn push_row(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Query {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self.push(")")
    }

    #[cfg(test)]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    fn sqlite(self) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for value in self.values {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
                Value::TextList(v) => query.bind(serde_json::to_string(&v).expect("a list of strings serialises")),
            };
        }
        query
    }

    fn postgres(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for value in self.values {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
                Value::TextList(v) => query.bind(v),
            };
        }
        query
    }
}

/// A result row of either engine. Both schemas keep the same column names and value shapes.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// The column (by name or position) decoded as `T`.
    pub fn get<T, I>(&self, column: I) -> StoreResult<T>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
        I: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow>,
    {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(row) => row.try_get(column).db(),
            Row::Postgres(row) => row.try_get(column).db(),
        }
    }
}

/// Where a query runs: a pool, or the connection of an open transaction; and, for a statement
/// that writes outside a transaction, the counter it moves when it changed something.
pub struct Exec<'a> {
    on: On<'a>,
    writes: Option<&'a Writes>,
}

enum On<'a> {
    SqlitePool(&'a SqlitePool),
    Sqlite(&'a mut SqliteConnection),
    PostgresPool(&'a PgPool),
    Postgres(&'a mut PgConnection),
}

impl<'a> Exec<'a> {
    /// Statements on one SQLite connection held outside a transaction (see
    /// [`SqlStore::sqlite_writer_connection`]); they move no write generation of their own.
    pub(crate) fn on_sqlite_connection(conn: &'a mut SqliteConnection) -> Exec<'a> {
        Exec { on: On::Sqlite(conn), writes: None }
    }
}

impl Exec<'_> {
    /// Runs a statement; how many rows it changed.
    pub async fn execute(self, query: Query) -> StoreResult<u64> {
        let changed = match self.on {
            On::SqlitePool(pool) => query.sqlite().execute(pool).await.db()?.rows_affected(),
            On::Sqlite(conn) => query.sqlite().execute(conn).await.db()?.rows_affected(),
            On::PostgresPool(pool) => query.postgres().execute(pool).await.db()?.rows_affected(),
            On::Postgres(conn) => query.postgres().execute(conn).await.db()?.rows_affected(),
        };
        if changed > 0 {
            self.writes.map(Writes::committed);
        }
        Ok(changed)
    }

    pub async fn fetch_all(self, query: Query) -> StoreResult<Vec<Row>> {
        let rows: Vec<Row> = match self.on {
            On::SqlitePool(pool) => query.sqlite().fetch_all(pool).await.db()?.into_iter().map(Row::Sqlite).collect(),
            On::Sqlite(conn) => query.sqlite().fetch_all(conn).await.db()?.into_iter().map(Row::Sqlite).collect(),
            On::PostgresPool(pool) => {
                query.postgres().fetch_all(pool).await.db()?.into_iter().map(Row::Postgres).collect()
            }
            On::Postgres(conn) => query.postgres().fetch_all(conn).await.db()?.into_iter().map(Row::Postgres).collect(),
        };
        // A write that returns rows (`RETURNING`) changed what it returned.
        if !rows.is_empty() {
            self.writes.map(Writes::committed);
        }
        Ok(rows)
    }

    pub async fn fetch_optional(self, query: Query) -> StoreResult<Option<Row>> {
        let row = match self.on {
            On::SqlitePool(pool) => query.sqlite().fetch_optional(pool).await.db()?.map(Row::Sqlite),
            On::Sqlite(conn) => query.sqlite().fetch_optional(conn).await.db()?.map(Row::Sqlite),
            On::PostgresPool(pool) => query.postgres().fetch_optional(pool).await.db()?.map(Row::Postgres),
            On::Postgres(conn) => query.postgres().fetch_optional(conn).await.db()?.map(Row::Postgres),
        };
        if row.is_some() {
            self.writes.map(Writes::committed);
        }
        Ok(row)
    }

    pub async fn fetch_one(self, query: Query) -> StoreResult<Row> {
        self.fetch_optional(query).await?.ok_or_else(|| db_err(sqlx::Error::RowNotFound))
    }

    /// The first column of the one row the query returns, decoded as `T`.
    pub async fn scalar<T>(self, query: Query) -> StoreResult<T>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.fetch_one(query).await?.get(0)
    }
}

/// Counts the writes this process has committed: the generation of what its readers can see.
/// It moves after a commit, never before, so a reader that saw generation `n` before reading
/// read data at least as new as `n`.
#[derive(Debug, Default)]
pub(crate) struct Writes(AtomicU64);

impl Writes {
    pub(crate) fn committed(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// An open write transaction. Dropped without `commit`, it rolls back.
pub struct Tx {
    inner: TxInner,
    writes: Arc<Writes>,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub fn exec(&mut self) -> Exec<'_> {
        let on = match &mut self.inner {
            TxInner::Sqlite(tx) => On::Sqlite(&mut *tx),
            TxInner::Postgres(tx) => On::Postgres(&mut *tx),
        };
        Exec { on, writes: None }
    }

    pub async fn execute(&mut self, query: Query) -> StoreResult<u64> {
        self.exec().execute(query).await
    }

    pub async fn commit(self) -> StoreResult<()> {
        let committed = match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await.db(),
            TxInner::Postgres(tx) => tx.commit().await.db(),
        };
        // Also after a failed commit: whether it took effect is unknown, and moving the
        // generation once too often costs only a cache miss.
        self.writes.committed();
        committed
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await.db(),
            TxInner::Postgres(tx) => tx.rollback().await.db(),
        }
    }
}

/// The pools of one engine.
enum Engine {
    /// SQLite serialises writers, so every write goes through one writer connection and no
    /// transaction can fail with SQLITE_BUSY half-way; reads use a small pool of their own.
    Sqlite { writer: SqlitePool, reader: SqlitePool },
    /// One pool, shared by any number of dmsync replicas.
    Postgres(PgPool),
}

/// The store: both engines behind one implementation of every storage trait.
pub struct SqlStore {
    engine: Engine,
    pub(crate) reconcile_chunk: i64,
    /// Signalled after every commit that enqueued a job (see `JobStore::wait_for_enqueued_job`).
    enqueued: Notify,
    writes: Arc<Writes>,
    /// Where SQLite keeps snapshots: a directory beside the database file (or, for an
    /// in-memory database, one in the system's temporary directory). `None` on PostgreSQL,
    /// which keeps them in schemas of its own.
    pub(crate) snapshot_dir: Option<PathBuf>,
    /// Serialises the snapshot operations of this process: on SQLite it is the only one.
    pub(crate) snapshot_lock: tokio::sync::Mutex<()>,
    /// The tables a reset empties on SQLite, read from the catalogue at the first reset: the
    /// schema is the migrations' and does not change while this process holds the file.
    pub(crate) tenant_tables: tokio::sync::OnceCell<Vec<String>>,
}

impl SqlStore {
    /// Opens the store named by a `--db` URL (`sqlite://PATH`, `sqlite::memory:` or
    /// `postgres://…`) and runs its migrations.
    pub async fn open(url: &str) -> StoreResult<SqlStore> {
        let mut snapshot_dir = None;
        let engine = if url == "sqlite://" || url == "sqlite:" {
            return Err(StoreError::Database(
                "a sqlite URL needs a path (sqlite://dmsync.db) or :memory: (sqlite::memory:)".into(),
            ));
        } else if url.starts_with("sqlite:") {
            snapshot_dir = Some(sqlite_snapshot_dir(url)?);
            open_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url).await?
        } else {
            return Err(StoreError::Database(format!(
                "unsupported database URL '{url}': expected sqlite://PATH, sqlite::memory: or postgres://…"
            )));
        };
        Ok(SqlStore {
            engine,
            reconcile_chunk: RECONCILE_CHUNK,
            enqueued: Notify::new(),
            writes: Arc::default(),
            snapshot_dir,
            snapshot_lock: tokio::sync::Mutex::new(()),
            tenant_tables: tokio::sync::OnceCell::new(),
        })
    }

    /// Rows per reconciliation chunk (tests use small chunks to cover several).
    pub fn set_reconcile_chunk(&mut self, rows: i64) {
        self.reconcile_chunk = rows.max(1);
    }

    /// Commits a transaction that enqueued a job, then wakes a worker waiting for one.
    pub(crate) async fn commit_enqueued(&self, tx: Tx) -> StoreResult<()> {
        tx.commit().await?;
        self.enqueued.notify_one();
        Ok(())
    }

    /// Resolves once a job was enqueued since the previous call returned.
    pub(crate) async fn enqueued(&self) {
        self.enqueued.notified().await
    }

    pub(crate) fn topology(&self) -> Topology {
        match self.engine {
            Engine::Sqlite { .. } => Topology::SingleNode,
            Engine::Postgres(_) => Topology::Shared,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite { .. } => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Where reads outside a transaction run.
    pub(crate) fn read(&self) -> Exec<'_> {
        let on = match &self.engine {
            Engine::Sqlite { reader, .. } => On::SqlitePool(reader),
            Engine::Postgres(pool) => On::PostgresPool(pool),
        };
        Exec { on, writes: None }
    }

    /// Where single-statement writes run.
    pub(crate) fn write(&self) -> Exec<'_> {
        let on = match &self.engine {
            Engine::Sqlite { writer, .. } => On::SqlitePool(writer),
            Engine::Postgres(pool) => On::PostgresPool(pool),
        };
        Exec { on, writes: Some(&self.writes) }
    }

    /// The generation of this process's committed writes, where no other process writes.
    pub(crate) fn write_generation(&self) -> Option<u64> {
        match self.topology() {
            Topology::SingleNode => Some(self.writes.generation()),
            Topology::Shared => None,
        }
    }

    /// Records a write committed outside `write()` and `begin()` (a restore on the writer's
    /// own connection), so that nothing cached from before it is served.
    pub(crate) fn note_commit(&self) {
        self.writes.committed();
    }

    /// The SQLite writer's one connection, for statements that must share a connection
    /// outside a transaction (`ATTACH`); while it is held, no other write runs. `None` on
    /// PostgreSQL.
    pub(crate) async fn sqlite_writer_connection(&self) -> StoreResult<Option<PoolConnection<Sqlite>>> {
        match &self.engine {
            Engine::Sqlite { writer, .. } => Ok(Some(writer.acquire().await.db()?)),
            Engine::Postgres(_) => Ok(None),
        }
    }

    /// Begins a write transaction.
    pub(crate) async fn begin(&self) -> StoreResult<Tx> {
        let inner = match &self.engine {
            Engine::Sqlite { writer, .. } => TxInner::Sqlite(writer.begin().await.db()?),
            Engine::Postgres(pool) => TxInner::Postgres(pool.begin().await.db()?),
        };
        Ok(Tx { inner, writes: self.writes.clone() })
    }

    pub(crate) async fn close_pools(&self) {
        match &self.engine {
            Engine::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            // close() waits for every connection to come back, so a statement still running
            // after the shutdown deadline would hold the process; past a few seconds it is
            // dropped, and PostgreSQL rolls its transaction back when the connection goes.
            Engine::Postgres(pool) => {
                if tokio::time::timeout(StdDuration::from_secs(5), pool.close()).await.is_err() {
                    tracing::warn!("database connections still busy at shutdown; closing them");
                }
            }
        }
    }
}

/// The snapshots' directory of a SQLite database URL: `PATH.snapshots` beside the file.
fn sqlite_snapshot_dir(url: &str) -> StoreResult<PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(std::env::temp_dir().join(format!("dmsync-snapshots-{}", Uuid::new_v4())));
    }
    let options = SqliteConnectOptions::from_str(url).db()?;
    let mut dir = options.get_filename().as_os_str().to_owned();
    dir.push(".snapshots");
    Ok(PathBuf::from(dir))
}

/// One file (or memory), WAL, `synchronous=FULL`, one writer connection and a small pool of
/// readers.
async fn open_sqlite(url: &str) -> StoreResult<Engine> {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .db()?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(StdDuration::from_secs(5))
        // FULL makes a commit durable on power loss, not only on a process crash (WAL with
        // NORMAL is already crash-safe). Bulk work is batched into few transactions, so the
        // fsync per commit costs little. See ARCHITECTURE.md, "Durability".
        .synchronous(SqliteSynchronous::Full);
    let options = if memory { options } else { options.journal_mode(SqliteJournalMode::Wal) };
    // Readers and the writer alike, since list queries run on both.
    let options = crate::sql::sqlite_case_hooks(options);

    // An in-memory database exists per connection, so it gets exactly one, shared by readers
    // and the writer.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone())
        .await
        .db()?;
    SQLITE_MIGRATOR.run(&writer).await.map_err(|e| StoreError::Database(e.to_string()))?;
    let reader = if memory {
        writer.clone()
    } else {
        SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await.db()?
    };
    Ok(Engine::Sqlite { writer, reader })
}

/// Replicas starting together are safe: sqlx's migrator holds an advisory lock while it
/// migrates.
async fn open_postgres(url: &str) -> StoreResult<Engine> {
    let pool =
        PgPoolOptions::new().max_connections(16).acquire_timeout(StdDuration::from_secs(30)).connect(url).await.db()?;
    POSTGRES_MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(e.to_string()))?;
    Ok(Engine::Postgres(pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_is_busy_not_a_database_failure() {
        assert!(matches!(db_err(sqlx::Error::PoolTimedOut), StoreError::Busy(_)));
        assert!(matches!(db_err(sqlx::Error::RowNotFound), StoreError::Database(_)));
    }

    #[test]
    fn push_bind_numbers_placeholders_in_order() {
        let mut query = Query::new("SELECT 1 WHERE a = $1").bind(1i64);
        query.push(" AND b = ").push_bind("x").push(" AND c IN ").push_row([Value::from(2i64), Value::from(3i64)]);
        assert_eq!(query.sql(), "SELECT 1 WHERE a = $1 AND b = $2 AND c IN ($3, $4)");
    }
}
