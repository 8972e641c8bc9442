//! The Exchange connector benchmark. It starts the release server on a fresh SQLite database and
//! an Exchange mobile-device source inside this program (an HTTP endpoint that honours
//! `?changedSince=`, as an allow-listed connector source), then times a full sync of an
//! organization (200,000 devices by default) and a delta sync after 1,000 of them changed. The
//! same is repeated with a `Get-MobileDevice | Export-Csv` file as the source, where a delta must
//! still read the whole file. It prints the figures as a Markdown table; it is a program, not a
//! test. See docs/PERFORMANCE.md.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::extract::{Query, State};
use clap::Parser;
use dmsync_client::{AdminClient, GraphClient};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use dmsync_bench::dev::{ADMIN_TOKEN, TENANT};
use dmsync_bench::probe::{self, PhaseMeter};
use dmsync_bench::report::{Figure, bounded, figure, render, secs};
use dmsync_bench::server::{self, Server};

const CONNECTORS: &str = "v1.0/deviceManagement/exchangeConnectors";
const MANAGED_DEVICES: &str = "v1.0/deviceManagement/managedDevices";
/// How often a connector is read while its sync runs.
const SYNC_POLL: Duration = Duration::from_millis(50);

#[derive(Parser)]
#[command(
    name = "dmsync-bench-exchange",
    about = "Benchmark of dmsync's Exchange connector full and delta syncs against the release server",
    args_override_self = true
)]
struct Args {
    /// Mobile devices in the Exchange organization.
    #[arg(long, default_value_t = 200_000)]
    devices: u64,
    /// Devices changed between the full sync and the delta sync.
    #[arg(long, default_value_t = 1_000)]
    changes: u64,
    /// Also time the same syncs with a CSV file as the source.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    file_source: bool,
    /// The server binary (default: `dmsync` beside this program, i.e. target/release/dmsync).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Directory for the database and the source file (default: a new temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// File that receives the server's output (default: server.log in the work directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Deadline of each sync, in seconds.
    #[arg(long, default_value_t = 600)]
    phase_timeout: u64,
}

/// One device as `Get-MobileDevice` describes it (the JSON an HTTP source answers).
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MobileDevice {
    device_id: String,
    device_type: &'static str,
    device_model: &'static str,
    #[serde(rename = "DeviceOS")]
    device_os: &'static str,
    friendly_name: String,
    user_display_name: String,
    user_principal_name: String,
    primary_smtp_address: String,
    device_access_state: &'static str,
    device_access_state_reason: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    first_sync_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    when_changed: OffsetDateTime,
}

const KINDS: [(&str, &str, &str); 4] = [
    ("iPhone", "iPhone15,2", "iOS 17.1.2 21B101"),
    ("iPad", "iPad13,4", "iOS 17.0 21A329"),
    ("SAMSUNGSMG991B", "SM-G991B", "Android 14.0.0"),
    ("Android", "Pixel 8", "Android 15"),
];

/// The organization: `devices` allowed devices whose ids start with `prefix`, all last changed
/// a day before `base`.
fn organization(prefix: &str, devices: u64, base: OffsetDateTime) -> Vec<MobileDevice> {
    (0..devices)
        .map(|i| {
            let (device_type, device_model, device_os) = KINDS[(i % 4) as usize];
            let user = format!("user{:06}", i / 2);
            MobileDevice {
                device_id: format!("{prefix}{i:08X}"),
                device_type,
                device_model,
                device_os,
                friendly_name: format!("{user}'s {device_type}"),
                user_display_name: format!("contoso.com/Users/{user}"),
                user_principal_name: format!("{user}@contoso.com"),
                primary_smtp_address: format!("{user}@contoso.com"),
                device_access_state: "Allowed",
                device_access_state_reason: "Global",
                first_sync_time: base - time::Duration::days(30),
                when_changed: base - time::Duration::days(1),
            }
        })
        .collect()
}

/// Blocks `changes` devices spread over the organization, changed at `when`.
fn change(devices: &mut [MobileDevice], changes: u64, when: OffsetDateTime) {
    let step = (devices.len() as u64 / changes.max(1)).max(1) as usize;
    for d in devices.iter_mut().step_by(step).take(changes as usize) {
        d.device_access_state = "Blocked";
        d.device_access_state_reason = "Individual";
        d.when_changed = when;
    }
}

/// The CSV that `Get-MobileDevice | Export-Csv` writes on an en-US machine.
fn write_csv(path: &Path, devices: &[MobileDevice]) -> Result<()> {
    fn stamp(t: OffsetDateTime) -> String {
        let hour = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let period = if t.hour() >= 12 { "PM" } else { "AM" };
        format!("{}/{}/{} {hour}:{:02}:{:02} {period}", u8::from(t.month()), t.day(), t.year(), t.minute(), t.second())
    }
    let mut out = String::with_capacity(devices.len() * 260);
    out.push_str("#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n");
    out.push_str("\"DeviceId\",\"DeviceType\",\"DeviceModel\",\"DeviceOS\",\"FriendlyName\",\"UserDisplayName\",\"UserPrincipalName\",\"PrimarySmtpAddress\",\"DeviceAccessState\",\"DeviceAccessStateReason\",\"FirstSyncTime\",\"WhenChanged\"\n");
    for d in devices {
        let _ = writeln!(
            out,
            "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            d.device_id,
            d.device_type,
            d.device_model,
            d.device_os,
            d.friendly_name,
            d.user_display_name,
            d.user_principal_name,
            d.primary_smtp_address,
            d.device_access_state,
            d.device_access_state_reason,
            stamp(d.first_sync_time),
            stamp(d.when_changed)
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// The HTTP source: the organization's devices, and what it has been asked for.
#[derive(Clone, Default)]
struct Source {
    devices: Arc<RwLock<Vec<MobileDevice>>>,
    requests: Arc<AtomicU64>,
    records_served: Arc<AtomicU64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceQuery {
    changed_since: Option<String>,
}

/// `GET /devices[?changedSince=RFC3339]`: the records changed after the instant, or all.
async fn serve_devices(State(source): State<Source>, Query(query): Query<SourceQuery>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let since = match query.changed_since.as_deref().map(|s| OffsetDateTime::parse(s, &Rfc3339)) {
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, format!("changedSince: {e}")).into_response(),
        Some(Ok(t)) => Some(t),
        None => None,
    };
    let body = {
        let devices = source.devices.read().unwrap();
        let selected: Vec<&MobileDevice> =
            devices.iter().filter(|d| since.is_none_or(|s| d.when_changed > s)).collect();
        source.requests.fetch_add(1, Ordering::Relaxed);
        source.records_served.fetch_add(selected.len() as u64, Ordering::Relaxed);
        serde_json::to_vec(&selected)
    };
    match body {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn start_source(source: Source) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/devices", axum::routing::get(serve_devices)).with_state(source);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn main() {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("\nbenchmark FAILED: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    ensure!(args.devices >= 1000, "--devices must be at least 1000");
    ensure!(args.changes >= 1 && args.changes <= args.devices, "--changes must be in 1..=--devices");
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.parent().context("program directory")?.join("dmsync"),
    };
    ensure!(
        server_bin.is_file(),
        "server binary {} not found; build it with `cargo build --release -p dmsync`",
        server_bin.display()
    );
    let temp = tempfile::Builder::new().prefix("dmsync-bench-exchange-").tempdir()?;
    let work_dir = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => temp.path().to_owned(),
    };
    let db_path = work_dir.join("bench-exchange.db");
    ensure!(!db_path.exists(), "{} exists; the benchmark needs a fresh database", db_path.display());
    let log_path = args.server_log.clone().unwrap_or_else(|| work_dir.join("server.log"));

    println!("# dmsync Exchange connector benchmark\n");
    println!("{}", probe::machine());
    println!("devices {}, changes {}, file source {}\n", args.devices, args.changes, args.file_source);

    let source = Source::default();
    let source_addr = start_source(source.clone()).await?;
    let extra = vec!["--exchange-source-allow-host".to_owned(), source_addr.to_string()];
    let server = Server::start_with(&server_bin, &server::sqlite_url(&db_path), &log_path, &extra).await?;
    let outcome = benchmark(&args, &server, &source, source_addr, &work_dir).await;
    let stopped = server.stop().await;
    match outcome {
        Ok(report) => {
            if let Err(e) = stopped {
                println!("\nserver did not stop cleanly: {e:#}");
            }
            print!("{report}");
            Ok(())
        }
        Err(e) => {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("\nlast server log lines:\n{}", lines[lines.len().saturating_sub(30)..].join("\n"));
            Err(e)
        }
    }
}

/// A sync as the benchmark saw it.
struct SyncRun {
    /// From the POST to the first read of the connector showing the new `lastSyncDateTime`.
    elapsed: Duration,
    /// What the server logged when it finished: records read, devices upserted and removed,
    /// and its own time from the job's start.
    logged: String,
    server_ms: Option<u64>,
}

/// POSTs the sync (204) and reads the connector until its `lastSyncDateTime` moves.
async fn timed_sync(
    graph: &GraphClient,
    server: &Server,
    id: &str,
    sync_type: &str,
    deadline: Duration,
) -> Result<SyncRun> {
    let path = format!("{CONNECTORS}/{id}");
    let before = get_json(graph, &path).await?["lastSyncDateTime"].clone();
    let mark = server.log.mark();
    let start = Instant::now();
    let response = bounded(
        Duration::from_secs(60),
        "POST sync",
        graph.request(Method::POST, &format!("{path}/sync")).json(&json!({ "syncType": sync_type })).send(),
    )
    .await??;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "POST {path}/sync answered {}: {}",
        response.status(),
        response.text().await?
    );
    loop {
        let connector = get_json(graph, &path).await?;
        if connector["status"] == "disconnected" {
            bail!("the {sync_type} failed: the connector is disconnected");
        }
        if connector["lastSyncDateTime"] != before {
            break;
        }
        if start.elapsed() > deadline {
            bail!("the {sync_type} did not finish within {deadline:?}");
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
    let elapsed = start.elapsed();
    // The server logs the sync just after committing it, so the line may trail the read that
    // saw the new lastSyncDateTime by a moment.
    let mut line = String::new();
    for _ in 0..100 {
        if let Some((_, l)) = server.log.find_after(mark, "exchange connector synced") {
            line = l;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server_ms = server::fields(&line, "elapsed_ms").strip_prefix("elapsed_ms=").and_then(|v| v.parse().ok());
    Ok(SyncRun {
        elapsed,
        logged: server::fields(&line, "records.") + " " + &server::fields(&line, "devices."),
        server_ms,
    })
}

async fn get_json(graph: &GraphClient, path: &str) -> Result<Value> {
    let response = bounded(Duration::from_secs(120), path, graph.request(Method::GET, path).send()).await??;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status == StatusCode::OK, "GET {path} answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// `@odata.count` of the managed devices matching `filter`.
async fn managed_count(graph: &GraphClient, filter: Option<&str>) -> Result<u64> {
    let mut path = format!("{MANAGED_DEVICES}?$count=true&$top=1&$select=id");
    if let Some(f) = filter {
        path.push_str("&$filter=");
        path.push_str(&f.replace(' ', "%20").replace('\'', "%27"));
    }
    get_json(graph, &path).await?["@odata.count"].as_u64().context("no @odata.count")
}

async fn create_connector(graph: &GraphClient, name: &str, source: Value) -> Result<String> {
    let response = graph
        .request(Method::POST, CONNECTORS)
        .json(&json!({ "exchangeConnectorType": "onPremises", "serverName": name, "exchangeOrganization": "contoso" }))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::CREATED, "creating a connector answered {}", response.status());
    let id = response.json::<Value>().await?["id"].as_str().context("connector id")?.to_owned();
    let url = format!("{}/_dmsync/tenants/{TENANT}/exchangeConnectors/{id}/source", graph.base_url());
    let response = reqwest::Client::new().put(url).bearer_auth(ADMIN_TOKEN).json(&source).send().await?;
    ensure!(
        response.status().is_success(),
        "setting the source answered {}: {}",
        response.status(),
        response.text().await?
    );
    Ok(id)
}

fn describe(run: &SyncRun) -> String {
    let server = run.server_ms.map(|ms| format!(", {ms} ms in the server's job")).unwrap_or_default();
    format!("{}{server} ({})", secs(run.elapsed), run.logged.trim())
}

async fn benchmark(
    args: &Args,
    server: &Server,
    source: &Source,
    source_addr: SocketAddr,
    work_dir: &Path,
) -> Result<String> {
    let deadline = Duration::from_secs(args.phase_timeout);
    let (n, k) = (args.devices, args.changes);
    let mut figures: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut meter = PhaseMeter::new(server.pid);
    let admin = AdminClient::new(&server.base_url, ADMIN_TOKEN);
    let token = admin
        .mint_token(
            TENANT,
            "delegated",
            &["DeviceManagementServiceConfig.ReadWrite.All", "DeviceManagementManagedDevices.Read.All"],
            "work",
            Some(24 * 3600),
        )
        .await
        .context("minting a token")?;
    let graph = GraphClient::new(&server.base_url).with_token(token);
    let base = OffsetDateTime::now_utc().replace_nanosecond(0)?;

    // 1. The HTTP source.
    *source.devices.write().unwrap() = organization("HTTP", n, base);
    let http =
        create_connector(&graph, "ex-http", json!({ "kind": "http", "url": format!("http://{source_addr}/devices") }))
            .await?;
    meter.begin("http source: full sync");
    let full = timed_sync(&graph, server, &http, "fullSync", deadline).await?;
    meter.end();
    println!("full sync of {n} devices (HTTP source): {}", describe(&full));
    let count = managed_count(&graph, None).await?;
    ensure!(count == n, "after the full sync managedDevices counts {count}, expected {n}");

    change(&mut source.devices.write().unwrap(), k, base + time::Duration::hours(1));
    let served_before = source.records_served.load(Ordering::Relaxed);
    meter.begin("http source: delta sync");
    let delta = timed_sync(&graph, server, &http, "deltaSync", deadline).await?;
    meter.end();
    let served = source.records_served.load(Ordering::Relaxed) - served_before;
    println!("delta sync of {k} changes (HTTP source, {served} records served): {}", describe(&delta));
    let blocked = managed_count(&graph, Some("exchangeAccessState eq 'blocked'")).await?;
    ensure!(blocked == k, "after the delta sync {blocked} devices are blocked, expected {k}");
    ensure!(served == k, "the delta asked the source for {served} records, expected {k}");

    let ratio = delta.elapsed.as_secs_f64() / full.elapsed.as_secs_f64();
    figures.push(figure(format!("full sync, {n} devices, HTTP source"), describe(&full), "—", None));
    figures.push(figure(format!("delta sync, {k} changes, HTTP source"), describe(&delta), "—", None));
    figures.push(figure(
        "delta / full, HTTP source, as the client sees it (POST to visible)",
        format!("{:.1}%", ratio * 100.0),
        "≤ 5%",
        Some(ratio <= 0.05),
    ));
    if let (Some(d), Some(f)) = (delta.server_ms, full.server_ms) {
        let job_ratio = d as f64 / f as f64;
        figures.push(figure(
            "delta / full, HTTP source, the server's job alone",
            format!("{:.1}%", job_ratio * 100.0),
            "≤ 5%",
            Some(job_ratio <= 0.05),
        ));
    }

    // 2. The same with a Get-MobileDevice CSV export as the source: the delta still parses the
    //    whole file, but writes only what changed.
    if args.file_source {
        let csv = work_dir.join("mobile-devices.csv");
        let mut devices = organization("FILE", n, base);
        write_csv(&csv, &devices)?;
        let file =
            create_connector(&graph, "ex-file", json!({ "kind": "file", "path": csv.display().to_string() })).await?;
        meter.begin("file source: full sync");
        let full_file = timed_sync(&graph, server, &file, "fullSync", deadline).await?;
        meter.end();
        println!("full sync of {n} devices (CSV file): {}", describe(&full_file));
        change(&mut devices, k, base + time::Duration::hours(1));
        write_csv(&csv, &devices)?;
        meter.begin("file source: delta sync");
        let delta_file = timed_sync(&graph, server, &file, "deltaSync", deadline).await?;
        meter.end();
        println!("delta sync of {k} changes (CSV file): {}", describe(&delta_file));
        let blocked = managed_count(&graph, Some("exchangeAccessState eq 'blocked'")).await?;
        ensure!(blocked == 2 * k, "after the file delta {blocked} devices are blocked, expected {}", 2 * k);
        let ratio = delta_file.elapsed.as_secs_f64() / full_file.elapsed.as_secs_f64();
        figures.push(figure(format!("full sync, {n} devices, CSV file"), describe(&full_file), "—", None));
        figures.push(figure(format!("delta sync, {k} changes, CSV file"), describe(&delta_file), "—", None));
        figures.push(figure(
            "delta / full, CSV file (the file is read whole)",
            format!("{:.1}%", ratio * 100.0),
            "—",
            None,
        ));
    }

    let hwm = probe::status_kb(server.pid, "VmHWM")?;
    figures.push(figure("server peak RSS (VmHWM)", format!("{:.1} MB", hwm as f64 / 1024.0), "—", None));
    notes.push(format!("source requests: {}", source.requests.load(Ordering::Relaxed)));
    Ok(render(&figures, &meter.phases, &notes))
}
