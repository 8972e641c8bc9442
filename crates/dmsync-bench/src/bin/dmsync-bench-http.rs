//! The HTTP benchmark. It loads the release server with wrk on loopback (1, 16 and 64
//! connections, a few seconds each) and, in the same run, a bare axum JSON handler in a process
//! of its own: the physical limit of the stack on this machine, so that each dmsync figure can
//! be read as a ratio that the machine's noise affects little. Each connection count runs a
//! few rounds of bare-then-dmsync loads, and reports the round with the median ratio. The loads
//! run with the server's defaults (the journal on, throttling off), and the settings GET once
//! more with throttling switched on too, at limits no run reaches. It also times RS256 token
//! verification alone, the server's start to its first `/healthz` 200 (empty and with a large
//! database), and its idle RSS. It prints a Markdown table; it is a program, not a test.
//! See docs/PERFORMANCE.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dmsync_client::GraphClient;
use reqwest::{Method, StatusCode};

use dmsync_bench::dev::{ADMIN_TOKEN, CLIENT_ID, PASSWORD, TENANT, USERNAME};
use dmsync_bench::probe;
use dmsync_bench::report::{Figure, figure, ms, render};
use dmsync_bench::server::{Server, sqlite_url};
use dmsync_bench::workload;
use dmsync_bench::wrk::{Load, which, wrk};

const SETTINGS: &str = "beta/deviceManagement/windowsAutopilotSettings";
const DEVICES_PAGE: &str = "beta/deviceManagement/windowsAutopilotDeviceIdentities?$top=100";

#[derive(Parser)]
#[command(
    name = "dmsync-bench-http",
    about = "HTTP throughput of dmsync against a bare axum handler, token verification, start-up and idle RSS",
    args_override_self = true
)]
struct Args {
    /// Seconds of load per wrk run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds per connection count. Each round loads the bare handler and then each dmsync
    /// URL back to back; a figure is the round with the median ratio, so one noisy second
    /// on this shared machine does not decide it.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Connection counts, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    connections: Vec<u32>,
    /// Devices registered and synced before the page benchmark.
    #[arg(long, default_value_t = 10_000)]
    devices: u64,
    /// Devices in the database for the start-up figure with a large database (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    startup_devices: u64,
    /// Token verifications timed in the verification figure.
    #[arg(long, default_value_t = 2_000)]
    verifications: u32,
    /// The server binary (default: `dmsync` beside this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// File that receives the server's output (default: server.log in a temporary directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Only the device pages (100 devices, 100 with `$select`, 1,000) at 16 connections against
    /// a bare axum handler and WireMock serving the same bytes, then their instruction counts
    /// under callgrind; nothing else.
    #[arg(long)]
    pages_only: bool,
    /// WireMock's standalone jar (default: the one `npm ci` puts under bench/wiremock).
    #[arg(long)]
    wiremock_jar: Option<PathBuf>,
    /// Requests per page measured under callgrind (0 skips callgrind).
    #[arg(long, default_value_t = 200)]
    callgrind_requests: u32,
    /// Internal: run the bare axum handler on this address instead of the benchmark.
    #[arg(long, hide = true)]
    bare_server: Option<String>,
    /// Internal: files the bare handler serves as `/bare/0`, `/bare/1`, … with Graph's
    /// content type.
    #[arg(long, hide = true)]
    bare_body: Vec<PathBuf>,
}

/// The same allocator as the dmsync binary, so that the bare handler is the limit of the same
/// stack.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let outcome = match &args.bare_server {
        Some(addr) => runtime.block_on(bare_server(addr, &args.bare_body)),
        None if args.pages_only => runtime.block_on(pages::run(&args)),
        None => runtime.block_on(run(&args)),
    };
    if let Err(e) = outcome {
        eprintln!("\nbenchmark FAILED: {e:#}");
        std::process::exit(1);
    }
}

/// The baseline: axum and tokio with their defaults, one route answering a JSON document the
/// size of `windowsAutopilotSettings`, no auth, no database, no middleware; and, for the page
/// benchmark, one route per file in `bodies` answering its bytes from memory.
async fn bare_server(addr: &str, bodies: &[PathBuf]) -> Result<()> {
    let body = serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotSettings/$entity",
        "id": "5d2ff1a2-2bd8-4b3c-9a8c-0f9a3b5c8d01",
        "lastManualSyncTriggerDateTime": "2026-11-30T20:00:00.0000000Z",
        "lastSyncDateTime": "2026-11-30T20:00:05.0000000Z",
        "syncStatus": "completed"
    });
    let mut app =
        axum::Router::new().route("/bare", axum::routing::get(move || std::future::ready(axum::Json(body.clone()))));
    for (i, path) in bodies.iter().enumerate() {
        let bytes = bytes::Bytes::from(std::fs::read(path)?);
        let answer = move || {
            let headers = [(axum::http::header::CONTENT_TYPE, pages::ODATA_JSON)];
            std::future::ready((headers, bytes.clone()))
        };
        app = app.route(&format!("/bare/{i}"), axum::routing::get(answer));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("bare listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[path = "dmsync-bench-http/pages.rs"]
mod pages;

fn server_binary(args: &Args) -> Result<PathBuf> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.parent().context("program directory")?.join("dmsync"),
    };
    ensure!(
        bin.is_file(),
        "server binary {} not found; build it with `cargo build --release -p dmsync`",
        bin.display()
    );
    Ok(bin)
}

/// Waits for the first 200 of `/healthz`, polling every millisecond; the time from `start`.
async fn first_health(base_url: &str, start: Instant) -> Result<Duration> {
    let client = reqwest::Client::new();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(r) = client.get(format!("{base_url}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("no /healthz 200 within 120 s")
}

async fn run(args: &Args) -> Result<()> {
    ensure!(which("wrk"), "wrk is not installed (apt-get install wrk); scripts/bench.sh installs it");
    let server_bin = server_binary(args)?;
    let dir = tempfile::Builder::new().prefix("dmsync-bench-http-").tempdir()?;
    let log_path = args.server_log.clone().unwrap_or_else(|| dir.path().join("server.log"));
    println!("# dmsync HTTP benchmark\n");
    println!("{}", probe::machine());
    println!("wrk {} s per run, connections {:?}\n", args.seconds, args.connections);

    let mut figures: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // Start-up with an empty database: process spawn to the first /healthz 200.
    let empty_db = dir.path().join("empty.db");
    let started = Instant::now();
    let server =
        Server::start_with(&server_bin, &sqlite_url(&empty_db), &log_path, &["--sync-cooldown".into(), "600s".into()])
            .await?;
    let empty_start = first_health(&server.base_url, started).await?;
    figures.push(figure(
        "start to first /healthz 200, empty database (first start: migrations, key)",
        ms(empty_start),
        "≤ 100 ms",
        Some(empty_start <= Duration::from_millis(100)),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = probe::status_kb(server.pid, "VmRSS")?;
    figures.push(figure(
        "idle RSS after start",
        format!("{:.1} MB", idle as f64 / 1024.0),
        "≤ 30 MB",
        Some(idle <= 30 * 1024),
    ));

    let outcome = load(args, &server, &mut figures, &mut notes).await;
    server.stop().await?;
    outcome?;

    // The first start generates the RSA signing key; later starts read it. Time one of those
    // on a database with no devices (the one above holds only the page benchmark's).
    let restart_db = dir.path().join("restart.db");
    Server::start(&server_bin, &sqlite_url(&restart_db), &log_path).await?.stop().await?;
    let started = Instant::now();
    let server = Server::start(&server_bin, &sqlite_url(&restart_db), &log_path).await?;
    let restart = first_health(&server.base_url, started).await?;
    server.stop().await?;
    figures.push(figure(
        "start to first /healthz 200, empty database, later start (key exists)",
        ms(restart),
        "≤ 100 ms",
        Some(restart <= Duration::from_millis(100)),
    ));

    if args.startup_devices > 0 {
        let start = startup_with_devices(args, &server_bin, dir.path(), &log_path).await?;
        figures.push(figure(
            format!("start to first /healthz 200, {} devices", args.startup_devices),
            ms(start),
            "≤ 300 ms",
            Some(start <= Duration::from_millis(300)),
        ));
    }
    print!("{}", render(&figures, &[], &notes));
    Ok(())
}

async fn load(args: &Args, server: &Server, figures: &mut Vec<Figure>, notes: &mut Vec<String>) -> Result<()> {
    let graph = GraphClient::new(&server.base_url);
    let token = graph.token_password(&server.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;
    let graph = graph.with_token(token.clone());

    // Devices for the page benchmark, and one completed sync, so that a sync POST is a 429.
    register_and_sync(&server.base_url, &graph, args.devices).await?;
    let r = graph.request(Method::POST, &format!("{SETTINGS}/sync")).send().await?;
    ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS, "a sync inside the cooldown answered {}", r.status());

    // The baseline in its own process.
    let bare_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let mut bare = Command::new(std::env::current_exe()?)
        .args(["--bare-server", &bare_addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let bare_url = format!("http://{bare_addr}/bare");
    let ready = Instant::now();
    while reqwest::get(&bare_url).await.is_err() {
        ensure!(ready.elapsed() < Duration::from_secs(10), "the bare server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let script = tempfile::Builder::new().suffix(".lua").tempfile()?;
    std::fs::write(script.path(), "wrk.method = \"POST\"\n")?;
    let admin = reqwest::Client::new();
    let outcome = async {
        let settings_url = format!("{}/{SETTINGS}", server.base_url);
        let page_url = format!("{}/{DEVICES_PAGE}", server.base_url);
        let sync_url = format!("{}/{SETTINGS}/sync", server.base_url);
        println!(
            "| load | connections | req/s | p50 | p99 | / bare req/s (range over {} rounds) |\n|---|---|---|---|---|---|",
            args.rounds
        );
        // The last load is issue 19's figure: the journal (on by default) and throttling both
        // on, throttling with limits no run reaches, so that its check runs in full and never
        // refuses. It is switched on through the admin API for that load alone.
        let loads = [
            ("GET windowsAutopilotSettings", &settings_url, None, true, Some(0.5), false),
            ("GET 100-device page", &page_url, None, true, None, false),
            ("POST sync (429 in the cooldown)", &sync_url, Some(script.path()), false, Some(0.5), false),
            ("GET windowsAutopilotSettings, journal and throttling on", &settings_url, None, true, Some(0.6), true),
        ];
        for &c in &args.connections {
            let mut bares = Vec::new();
            let mut measured: Vec<Vec<(Load, f64)>> = loads.iter().map(|_| Vec::new()).collect();
            for _ in 0..args.rounds.max(1) {
                let base = wrk(&bare_url, c, args.seconds, None, None)?;
                for (i, (name, url, script, want_2xx, _, throttled)) in loads.iter().enumerate() {
                    if *throttled {
                        switch_throttling(&admin, &server.base_url, true).await?;
                    }
                    let l = wrk(url, c, args.seconds, Some(&token), *script);
                    if *throttled {
                        switch_throttling(&admin, &server.base_url, false).await?;
                    }
                    let l = l?;
                    if *want_2xx && l.non_2xx > 0 {
                        bail!("{name}: {} responses were not 2xx", l.non_2xx);
                    }
                    let ratio = l.requests_per_second / base.requests_per_second;
                    measured[i].push((l, ratio));
                }
                bares.push(base);
            }
            bares.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
            let base = &bares[bares.len() / 2];
            println!(
                "| bare axum JSON handler (median) | {c} | {:.0} | {} | {} | 100% |",
                base.requests_per_second,
                ms(base.p50),
                ms(base.p99)
            );
            for ((name, _, _, _, target, _), mut rounds) in loads.iter().zip(measured) {
                rounds.sort_by(|a, b| a.1.total_cmp(&b.1));
                let (low, high) = (rounds[0].1, rounds[rounds.len() - 1].1);
                let (l, ratio) = &rounds[rounds.len() / 2];
                println!(
                    "| {name} | {c} | {:.0} | {} | {} | {:.0}% ({:.0}–{:.0}%) |",
                    l.requests_per_second,
                    ms(l.p50),
                    ms(l.p99),
                    ratio * 100.0,
                    low * 100.0,
                    high * 100.0
                );
                figures.push(figure(
                    format!(
                        "{name}, {c} conn: {:.0} req/s, p50 {}, p99 {}",
                        l.requests_per_second,
                        ms(l.p50),
                        ms(l.p99)
                    ),
                    format!(
                        "{:.0}% of bare, median of {} rounds ({:.0}–{:.0}%)",
                        ratio * 100.0,
                        rounds.len(),
                        low * 100.0,
                        high * 100.0
                    ),
                    target.map(|t| format!("≥ {:.0}%", t * 100.0)).unwrap_or_else(|| "—".into()),
                    target.map(|t| *ratio >= t),
                ));
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = bare.kill();
    let _ = bare.wait();
    outcome?;

    // Token verification alone: the RS256 check every Graph request pays, timed in this process
    // with the server's own published key and the same crate.
    let per = verification_cost(&server.base_url, &token, args.verifications).await?;
    figures.push(figure(
        "RS256 token verification alone (jsonwebtoken, the server's key)",
        format!("{:.1} µs ({:.0}/s on one core)", per.as_secs_f64() * 1e6, 1.0 / per.as_secs_f64()),
        "—",
        None,
    ));
    notes.push(format!("{} devices registered and synced for the page load", args.devices));
    Ok(())
}

/// Switches throttling on, with limits no benchmark run reaches (the most the server accepts,
/// per day), or off again, through the admin API.
async fn switch_throttling(admin: &reqwest::Client, base_url: &str, on: bool) -> Result<()> {
    let body = if on {
        let most = serde_json::json!({
            "tenantWrites": 10_000_000, "appWrites": 10_000_000,
            "tenantRequests": 10_000_000, "appRequests": 10_000_000,
            "windowSeconds": 86_400
        });
        serde_json::json!({ "limits": { "enrollment": most, "devices": most } })
    } else {
        serde_json::json!({ "mode": "off" })
    };
    admin
        .put(format!("{base_url}/_dmsync/throttling"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("switching throttling through the admin API")?;
    Ok(())
}

async fn verification_cost(base_url: &str, token: &str, n: u32) -> Result<Duration> {
    let jwks: serde_json::Value =
        reqwest::get(format!("{base_url}/{TENANT}/discovery/v2.0/keys")).await?.error_for_status()?.json().await?;
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.context("the token has no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .context("the token's key is not in the JWKS")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().context("n")?,
        jwk["e"].as_str().context("e")?,
    )?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let start = Instant::now();
    for _ in 0..n {
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)?;
    }
    Ok(start.elapsed() / n)
}

/// Registers and syncs `--startup-devices` devices, stops the server, then times a restart on
/// that database to its first `/healthz` 200.
async fn startup_with_devices(args: &Args, server_bin: &Path, dir: &Path, log_path: &Path) -> Result<Duration> {
    let db = dir.join("large.db");
    let server = Server::start(server_bin, &sqlite_url(&db), log_path).await?;
    let graph = GraphClient::new(&server.base_url);
    let token = graph.token_password(&server.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;
    let graph = graph.with_token(token);
    register_and_sync(&server.base_url, &graph, args.startup_devices).await?;
    server.stop().await?;
    let started = Instant::now();
    let server = Server::start(server_bin, &sqlite_url(&db), log_path).await?;
    let elapsed = first_health(&server.base_url, started).await?;
    server.stop().await?;
    Ok(elapsed)
}

/// Registers `devices` devices with one streamed CSV upload and waits for a sync of them to
/// complete.
pub(crate) async fn register_and_sync(base_url: &str, graph: &GraphClient, devices: u64) -> Result<()> {
    let upload = reqwest::Client::new()
        .post(format!("{base_url}/_dmsync/tenants/{TENANT}/autopilot/registrations"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "text/csv")
        .body(reqwest::Body::wrap_stream(workload::csv_stream(devices, None)))
        .send()
        .await?;
    ensure!(upload.status().is_success(), "registration upload answered {}", upload.status());
    graph.sync_windows_autopilot_settings().await.context("the sync")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while graph.get_windows_autopilot_settings().await?.last_sync_date_time.0.is_none() {
        ensure!(Instant::now() < deadline, "the sync of {devices} devices did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
