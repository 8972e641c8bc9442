//! The storage baseline: the same database engine, with the server's durability settings,
//! inserting rows about as wide as a device in transactions of a sync chunk's size, with nothing
//! of dmsync in between. Measured in the same run as the pipeline figures, it lets a sync's time
//! be read as a ratio that the machine's speed of the day affects little, as the bare axum
//! handler does for the HTTP figures.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyPoolOptions;

/// Rows a transaction, as the sync's reconciliation chunks.
const ROWS_PER_TRANSACTION: u64 = 50_000;
/// Rows a statement (five binds each, inside both engines' limits).
const ROWS_PER_STATEMENT: u64 = 2_000;

/// Inserts `rows` rows into a new table of `db_url` (a `sqlite://` file, created, or a
/// `postgres://` database, where the table is dropped again) and returns the time the inserts
/// took, the generation of the rows' text included.
pub async fn bulk_insert(db_url: &str, rows: u64) -> Result<Duration> {
    sqlx::any::install_default_drivers();
    let sqlite = db_url.starts_with("sqlite:");
    let url = if sqlite { format!("{db_url}?mode=rwc") } else { db_url.to_owned() };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {db_url}"))?;
    if sqlite {
        // The server's settings (dmsync-store's sqlite.rs): WAL, and an fsync at every commit.
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&pool).await?;
    }
    sqlx::query("DROP TABLE IF EXISTS dmsync_bench_baseline").execute(&pool).await?;
    sqlx::query(
        "CREATE TABLE dmsync_bench_baseline (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, serial_number TEXT NOT NULL, \
         hardware_hash TEXT NOT NULL, properties TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;

    let started = Instant::now();
    let mut next = 0;
    while next < rows {
        let end = (next + ROWS_PER_TRANSACTION).min(rows);
        let mut tx = pool.begin().await?;
        while next < end {
            let stop = (next + ROWS_PER_STATEMENT).min(end);
            // `$N` placeholders, which both engines read (the Any driver's QueryBuilder writes
            // `?`, which PostgreSQL does not).
            let mut sql = String::from(
                "INSERT INTO dmsync_bench_baseline (id, tenant_id, serial_number, hardware_hash, properties) VALUES ",
            );
            for row in 0..stop - next {
                let p = row * 5;
                sql.push_str(&format!(
                    "{}(${}, ${}, ${}, ${}, ${})",
                    if row == 0 { "" } else { ", " },
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                ));
            }
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for i in next..stop {
                insert = insert
                    .bind(format!("{:08x}-0000-7000-8000-{:012x}", i >> 16, i))
                    .bind("11111111-1111-4111-8111-111111111111")
                    .bind(format!("SN-{:07}", i + 1))
                    .bind(format!("{:0>88}", i))
                    .bind(format!("{{\"groupTag\":\"Fleet\",\"manufacturer\":\"Contoso\",\"model\":\"Model {}\",\"enrollmentState\":\"notContacted\"}}", i % 97));
            }
            insert.execute(&mut *tx).await?;
            next = stop;
        }
        tx.commit().await?;
    }
    let elapsed = started.elapsed();
    if !sqlite {
        sqlx::query("DROP TABLE dmsync_bench_baseline").execute(&pool).await?;
    }
    pool.close().await;
    Ok(elapsed)
}
