//! The reset's benchmark (`POST /_dmsync/reset`, issue 19): a tenant of `--devices` synced
//! Autopilot devices (each with its registration, its device identity and its Entra object, as
//! a sync makes them), reset the way a test suite resets before each test, several rounds.
//!
//! The server runs in this process (`Application::build`, then `run_until_stopped`), on the
//! database `--db` names (a fresh SQLite file by default), and the resets are timed end to end
//! through HTTP with the admin client: the store's reset, then what the server does after it
//! (the caches, and the development identities recreated). The tenants are built through the
//! server's own store between rounds, so every round resets the same amount of data; on SQLite
//! the WAL is checkpointed before each timed reset, so that no round pays for the build before
//! it. A breakdown (the store's reset alone, then the development identities) is timed in
//! process on the main case.
//!
//! The cases: the big tenant beside a small one that also has devices (so no table holds only
//! the tenant being reset), the big tenant with the only devices, the same tenant once empty,
//! and `{}` (every tenant).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use dmsync_bench::dev;
use dmsync_bench::report::{Figure, figure, ms, render, secs};
use dmsync_bench::workload::hardware_hash;
use dmsync_client::AdminClient;
use dmsync_core::TenantId;
use dmsync_core::autopilot::NewRegistration;
use dmsync_core::identity::Tenant;
use dmsync_core::snapshots::ResetScope;
use dmsync_server::Config;
use dmsync_server::state::AppState;

#[derive(Parser)]
#[command(name = "dmsync-bench-reset", about = "Benchmark of POST /_dmsync/reset", args_override_self = true)]
struct Args {
    /// Autopilot devices in the big tenant.
    #[arg(long, default_value_t = 10_000)]
    devices: u64,
    /// Autopilot devices in the small tenant beside it.
    #[arg(long, default_value_t = 10)]
    small_devices: u64,
    /// Timed resets per case.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The database: a `postgres://` URL, or empty for a fresh SQLite file.
    #[arg(long, default_value = "")]
    db: String,
    /// Accepted for scripts/bench.sh, which passes them to every benchmark; unused, as this one
    /// runs the server in-process.
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    server_log: Option<String>,
}

const BIG: TenantId = TenantId::from_uuid(uuid::Uuid::from_u128(0x5e5e5e5e_5e5e_4e5e_8e5e_5e5e5e5e5e01));
const SMALL: TenantId = TenantId::from_uuid(uuid::Uuid::from_u128(0x5e5e5e5e_5e5e_4e5e_8e5e_5e5e5e5e5e02));
const BATCH: u64 = 50_000;
/// The target for a tenant of 10,000 devices on SQLite.
const TARGET_MS: f64 = 50.0;

fn main() {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("\nbenchmark FAILED: {e:#}");
        std::process::exit(1);
    }
}

/// The server under test and what reaches it.
struct Bench {
    state: AppState,
    admin: AdminClient,
    /// The SQLite file, checkpointed before each timed reset; `None` on PostgreSQL.
    sqlite_file: Option<std::path::PathBuf>,
    devices: u64,
    small_devices: u64,
    /// Serial numbers are never reused across builds, as hardware hashes are unique across tenants.
    next_serial: u64,
}

async fn run(args: Args) -> Result<()> {
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let dir = tempfile::tempdir()?;
    let (url, backend, sqlite_file) = if args.db.is_empty() {
        let file = dir.path().join("reset.db");
        (format!("sqlite://{}", file.display()), "SQLite", Some(file))
    } else {
        (args.db.clone(), "PostgreSQL", None)
    };
    let config = Config { admin_token: Some(dev::ADMIN_TOKEN.into()), ..Config::for_tests(url) };
    let shutdown = CancellationToken::new();
    let app = dmsync_server::Application::build(config, shutdown.clone()).await.context("building the server")?;
    let state = app.state().clone();
    let admin = AdminClient::new(app.url(), dev::ADMIN_TOKEN);
    let server = tokio::spawn(app.run_until_stopped());
    let now = state.now();
    for (id, domain) in [(BIG, "bench-big.onmicrosoft.com"), (SMALL, "bench-small.onmicrosoft.com")] {
        state.store().create_tenant(&Tenant { id, domain: domain.into() }, now).await?;
    }
    let mut bench =
        Bench { state, admin, sqlite_file, devices: args.devices, small_devices: args.small_devices, next_serial: 0 };

    let started = Instant::now();
    bench.build(BIG, args.devices).await?;
    let build_time = started.elapsed();
    eprintln!("{} devices synced in {}", args.devices, secs(build_time));

    let big = BIG.to_string();
    let (mut mixed, mut alone, mut empty, mut all) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut store_part, mut identities_part) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // The big tenant beside a small one with devices of its own.
        bench.build(SMALL, bench.small_devices).await?;
        if round > 0 {
            bench.build(BIG, bench.devices).await?;
        }
        mixed.push(bench.timed_reset(Some(&big)).await?);
        bench.expect_devices(BIG, 0).await?;
        bench.expect_devices(SMALL, bench.small_devices).await?;

        // The same, timed in process: the store's reset, then the development identities.
        bench.build(BIG, bench.devices).await?;
        let (store, identities) = bench.timed_reset_in_parts(ResetScope::Tenant(BIG)).await?;
        store_part.push(store);
        identities_part.push(identities);

        // The big tenant with the only devices.
        bench.admin.reset(Some(&SMALL.to_string())).await?;
        bench.build(BIG, bench.devices).await?;
        alone.push(bench.timed_reset(Some(&big)).await?);

        // The same tenant again, now empty.
        empty.push(bench.timed_reset(Some(&big)).await?);

        // Every tenant.
        bench.build(BIG, bench.devices).await?;
        bench.build(SMALL, bench.small_devices).await?;
        all.push(bench.timed_reset(None).await?);
        ensure!(bench.state.store().tenant(BIG).await?.is_none(), "the big tenant outlived a full reset");
        let now = bench.state.now();
        for (id, domain) in [(BIG, "bench-big.onmicrosoft.com"), (SMALL, "bench-small.onmicrosoft.com")] {
            bench.state.store().create_tenant(&Tenant { id, domain: domain.into() }, now).await?;
        }
        eprintln!("round {} of {} done", round + 1, args.rounds);
    }

    let target = |d: &[Duration]| {
        if backend == "SQLite" {
            (format!("< {TARGET_MS} ms"), Some(median(d).as_secs_f64() * 1000.0 < TARGET_MS))
        } else {
            ("—".to_owned(), None)
        }
    };
    let row = |name: String, d: &[Duration], targeted: bool| {
        let value = format!("median {}, min {}", ms(median(d)), ms(min(d)));
        let (goal, met) = if targeted { target(d) } else { ("—".to_owned(), None) };
        figure(name, value, goal, met)
    };
    let n = args.devices;
    let m = args.small_devices;
    let figures: Vec<Figure> = vec![
        row(format!("reset of a tenant of {n} devices, beside a tenant of {m} ({backend})"), &mixed, true),
        row(format!("reset of a tenant of {n} devices, the only one with devices ({backend})"), &alone, true),
        row(format!("reset of `{{}}`: that tenant, the small one and the development tenant ({backend})"), &all, true),
        row("reset of the same tenant, now empty".into(), &empty, false),
        row("  of the first case: the store's reset alone (in process)".into(), &store_part, false),
        row("  of the first case: the development identities after it (in process)".into(), &identities_part, false),
    ];
    let build = if cfg!(debug_assertions) { "debug build (dependencies at opt-level 2)" } else { "release build" };
    let mut notes = vec![
        format!(
            "{}, {} rounds per case; each reset is an HTTP request to the server in this process",
            build, args.rounds
        ),
        format!("build of the tenant (registrations and sync of {n} devices): {}", secs(build_time)),
        format!("load average at the end: {}", load_average()),
    ];
    if backend == "SQLite" {
        notes.push("the WAL is checkpointed before each timed reset".into());
    }
    println!("# Reset ({backend})\n{}", render(&figures, &[], &notes));
    shutdown.cancel();
    server.await.context("the server task")??;
    Ok(())
}

impl Bench {
    /// Registers `devices` devices in `tenant` and syncs them: each gets its registration, its
    /// device identity and its Entra object.
    async fn build(&mut self, tenant: TenantId, devices: u64) -> Result<()> {
        let store = self.state.store();
        let mut upload = store.begin_registrations(tenant).await?;
        let mut start = 0;
        while start < devices {
            let rows: Vec<(u64, NewRegistration)> = (start..(start + BATCH).min(devices))
                .map(|i| {
                    let serial = self.next_serial + i;
                    let row = NewRegistration {
                        serial_number: format!("RS-{serial:08}"),
                        hardware_hash: hardware_hash(0xD7, serial).to_vec(),
                        manufacturer: "Contoso".into(),
                        model: "M1".into(),
                        group_tag: "Fleet".into(),
                        purchase_order_identifier: String::new(),
                        product_key: String::new(),
                    };
                    (i + 1, row)
                })
                .collect();
            upload.stage(&rows).await?;
            start += BATCH;
        }
        self.next_serial += devices;
        match upload.commit(self.state.now()).await? {
            Ok(_) => {}
            Err(refused) => anyhow::bail!("{} registrations refused", refused.len()),
        }
        store.reconcile_autopilot_devices(tenant, self.state.now()).await?;
        self.expect_devices(tenant, devices).await
    }

    async fn expect_devices(&self, tenant: TenantId, devices: u64) -> Result<()> {
        let counted = self.state.store().count_autopilot_devices(tenant, None).await?;
        ensure!(counted == devices, "tenant {tenant} has {counted} devices, not {devices}");
        Ok(())
    }

    /// Writes what the WAL holds into the database file, so that a timed reset does not
    /// checkpoint the build before it.
    async fn checkpoint(&self) -> Result<()> {
        use sqlx::Connection;
        let Some(file) = &self.sqlite_file else { return Ok(()) };
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file);
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// `POST /_dmsync/reset` of one tenant (or `{}`), timed.
    async fn timed_reset(&self, tenant: Option<&str>) -> Result<Duration> {
        self.checkpoint().await?;
        let started = Instant::now();
        self.admin.reset(tenant).await?;
        Ok(started.elapsed())
    }

    /// What `AppState::reset` does, in its two parts, each timed.
    async fn timed_reset_in_parts(&self, scope: ResetScope) -> Result<(Duration, Duration)> {
        self.checkpoint().await?;
        let started = Instant::now();
        self.state.store().reset(scope).await?;
        let store = started.elapsed();
        let started = Instant::now();
        dmsync_server::bootstrap::restore_development_identities(self.state.store(), self.state.now()).await?;
        Ok((store, started.elapsed()))
    }
}

fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn min(durations: &[Duration]) -> Duration {
    durations.iter().copied().min().unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
