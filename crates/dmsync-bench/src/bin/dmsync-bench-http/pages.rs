//! The page benchmark (`--pages-only`): a page of Autopilot devices at 16 connections, served in
//! the same run by dmsync as it runs by default (the page cache on), by dmsync with the page
//! cache off (`--page-cache-bytes 0`, every request reads the database: the read path itself),
//! by a bare axum handler answering the same bytes from memory, and by WireMock answering the
//! same bytes as a stub body with its request journal off. Each round loads the four back to
//! back, so a ratio compares loads that saw the same machine; a figure is the round with the
//! median ratio. Then, with callgrind, the instructions each dmsync spends per request, which
//! other processes on the machine do not move.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dmsync_client::GraphClient;

use dmsync_bench::callgrind;
use dmsync_bench::dev::{CLIENT_ID, PASSWORD, TENANT, USERNAME};
use dmsync_bench::probe;
use dmsync_bench::server::{Server, sqlite_url};

use super::{Args, Load, register_and_sync, server_binary, which, wrk};

/// The content type dmsync sends with collections, which the peers send too.
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

const CONNECTIONS: u32 = 16;

/// The pages measured: a name and the path and query under the server's root.
const PAGES: &[(&str, &str)] = &[
    ("100-device page", "beta/deviceManagement/windowsAutopilotDeviceIdentities?$top=100"),
    (
        "100-device page, $select=id,serialNumber",
        "beta/deviceManagement/windowsAutopilotDeviceIdentities?$top=100&$select=id,serialNumber",
    ),
    ("1,000-device page", "beta/deviceManagement/windowsAutopilotDeviceIdentities?$top=1000"),
];

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The same-run figures of one page.
struct PageFigures {
    bare: Load,
    wiremock: Load,
    dmsync: Load,
    uncached: Load,
    over_wiremock: f64,
    over_bare: f64,
    uncached_over_wiremock: f64,
}

/// The page cache off: every request reads the database and writes the page.
fn cache_off() -> Vec<String> {
    vec!["--page-cache-bytes".into(), "0".into()]
}

pub async fn run(args: &Args) -> Result<()> {
    ensure!(which("wrk"), "wrk is not installed (apt-get install wrk); scripts/bench.sh installs it");
    ensure!(which("java"), "java is not installed (WireMock needs Java 17)");
    let jar = wiremock_jar(args)?;
    let server_bin = server_binary(args)?;
    let dir = tempfile::Builder::new().prefix("dmsync-bench-pages-").tempdir()?;
    let log_path = args.server_log.clone().unwrap_or_else(|| dir.path().join("server.log"));
    println!("# dmsync page benchmark\n");
    println!("{}", probe::machine());
    println!(
        "wrk {} s per run, {CONNECTIONS} connections, {} rounds; peers: a bare axum handler and WireMock ({}, request journal off) serving dmsync's own bytes\n",
        args.seconds,
        args.rounds,
        jar.file_name().and_then(|n| n.to_str()).unwrap_or("wiremock")
    );

    let db = dir.path().join("pages.db");
    let cooldown = ["--sync-cooldown".to_string(), "600s".to_string()];
    let setup = Server::start_with(&server_bin, &sqlite_url(&db), &log_path, &cooldown).await?;
    let graph = GraphClient::new(&setup.base_url);
    let token = graph.token_password(&setup.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;
    register_and_sync(&setup.base_url, &graph.with_token(token), args.devices.max(1001)).await?;
    setup.stop().await?;
    // The same database twice, since a SQLite file has one server: one for dmsync as it runs by
    // default, one for dmsync with the page cache off.
    let uncached_db = dir.path().join("pages-uncached.db");
    std::fs::copy(&db, &uncached_db)?;
    let wal = db.with_extension("db-wal");
    if wal.is_file() {
        std::fs::copy(&wal, uncached_db.with_extension("db-wal"))?;
    }
    let server = Server::start_with(&server_bin, &sqlite_url(&db), &log_path, &cooldown).await?;
    let uncached_log = log_path.with_extension("uncached.log");
    let uncached = Server::start_with(&server_bin, &sqlite_url(&uncached_db), &uncached_log, &cache_off()).await?;
    let graph = GraphClient::new(&server.base_url);
    let token = graph.token_password(&server.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;
    let graph = GraphClient::new(&uncached.base_url);
    let uncached_token =
        graph.token_password(&uncached.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;

    // The bytes dmsync answers are what both peers serve.
    let http = reqwest::Client::new();
    let mut body_paths = Vec::new();
    let mut sizes = Vec::new();
    for (i, (_, path)) in PAGES.iter().enumerate() {
        let response = http.get(format!("{}/{path}", server.base_url)).bearer_auth(&token).send().await?;
        ensure!(response.status().is_success(), "{path} answered {}", response.status());
        let bytes = response.bytes().await?;
        let file = dir.path().join(format!("page{i}.json"));
        std::fs::write(&file, &bytes)?;
        sizes.push(bytes.len());
        body_paths.push(file);
    }

    let bare_addr = free_port()?;
    let mut bare = Command::new(std::env::current_exe()?)
        .args(["--bare-server", &bare_addr])
        .args(body_paths.iter().flat_map(|p| [std::ffi::OsString::from("--bare-body"), p.clone().into_os_string()]))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let wiremock_addr = free_port()?;
    let mut wiremock = start_wiremock(&jar, dir.path(), &wiremock_addr, &body_paths)?;
    let outcome = async {
        wait_for(&format!("http://{bare_addr}/bare/0")).await.context("the bare handler did not start")?;
        wait_for(&format!("http://{wiremock_addr}/page/0")).await.context("WireMock did not start")?;
        let load_before = load_average();
        // WireMock's JIT and dmsync's caches see traffic before anything is measured.
        for (i, (_, path)) in PAGES.iter().enumerate() {
            wrk(&format!("http://{wiremock_addr}/page/{i}"), CONNECTIONS, 3, None, None)?;
            wrk(&format!("{}/{path}", server.base_url), CONNECTIONS, 1, Some(&token), None)?;
            wrk(&format!("{}/{path}", uncached.base_url), CONNECTIONS, 1, Some(&uncached_token), None)?;
        }
        let mut figures = Vec::new();
        for (i, (name, path)) in PAGES.iter().enumerate() {
            let mut rounds = Vec::new();
            for _ in 0..args.rounds.max(1) {
                let bare = wrk(&format!("http://{bare_addr}/bare/{i}"), CONNECTIONS, args.seconds, None, None)?;
                let wiremock = wrk(&format!("http://{wiremock_addr}/page/{i}"), CONNECTIONS, args.seconds, None, None)?;
                let dmsync = wrk(&format!("{}/{path}", server.base_url), CONNECTIONS, args.seconds, Some(&token), None)?;
                let uncached_url = format!("{}/{path}", uncached.base_url);
                let uncached = wrk(&uncached_url, CONNECTIONS, args.seconds, Some(&uncached_token), None)?;
                for (peer, l) in
                    [("bare", &bare), ("WireMock", &wiremock), ("dmsync", &dmsync), ("dmsync, cache off", &uncached)]
                {
                    if l.non_2xx > 0 {
                        bail!("{name} from {peer}: {} responses were not 2xx", l.non_2xx);
                    }
                }
                let over_wiremock = dmsync.requests_per_second / wiremock.requests_per_second;
                let over_bare = dmsync.requests_per_second / bare.requests_per_second;
                let uncached_over_wiremock = uncached.requests_per_second / wiremock.requests_per_second;
                rounds.push(PageFigures { bare, wiremock, dmsync, uncached, over_wiremock, over_bare, uncached_over_wiremock });
            }
            rounds.sort_by(|a, b| a.over_wiremock.total_cmp(&b.over_wiremock));
            let low = rounds[0].over_wiremock;
            let high = rounds[rounds.len() - 1].over_wiremock;
            let median = rounds.swap_remove(rounds.len() / 2);
            figures.push((name, median, low, high));
        }
        let load_after = load_average();
        println!(
            "| page | bytes | bare axum req/s | WireMock req/s | dmsync req/s (p50, p99) | dmsync ÷ WireMock (range) | dmsync ÷ bare | cache off: req/s (p50) | cache off ÷ WireMock |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for ((name, f, low, high), size) in figures.iter().zip(&sizes) {
            println!(
                "| {name} | {size} | {:.0} | {:.0} | {:.0} ({}, {}) | {:.2} ({:.2}–{:.2}) | {:.0}% | {:.0} ({}) | {:.2} |",
                f.bare.requests_per_second,
                f.wiremock.requests_per_second,
                f.dmsync.requests_per_second,
                dmsync_bench::report::ms(f.dmsync.p50),
                dmsync_bench::report::ms(f.dmsync.p99),
                f.over_wiremock,
                low,
                high,
                f.over_bare * 100.0,
                f.uncached.requests_per_second,
                dmsync_bench::report::ms(f.uncached.p50),
                f.uncached_over_wiremock,
            );
        }
        let time_ratio = figures[0].1.uncached.requests_per_second / figures[2].1.uncached.requests_per_second;
        println!(
            "\n1,000-device page time ÷ 100-device page time (dmsync with the page cache off, at {CONNECTIONS} connections): {time_ratio:.2} (target ≤ 10)"
        );
        println!(
            "100-device page: dmsync ÷ WireMock {:.2} (target ≥ 1), dmsync ÷ bare {:.0}% (target ≥ 25%); with the page cache off ÷ WireMock {:.2}",
            figures[0].1.over_wiremock,
            figures[0].1.over_bare * 100.0,
            figures[0].1.uncached_over_wiremock,
        );
        println!("load average (1, 5, 15 min): {load_before} before the loads, {load_after} after\n");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = bare.kill();
    let _ = bare.wait();
    let _ = wiremock.kill();
    let _ = wiremock.wait();
    server.stop().await?;
    uncached.stop().await?;
    outcome?;

    if args.callgrind_requests > 0 {
        if callgrind::available() {
            println!("| page | instructions per request, page cache on | page cache off |");
            println!("|---|---|---|");
            let cached = callgrind(args, &server_bin, &db, &dir.path().join("cached"), &[]).await?;
            let uncached =
                callgrind(args, &server_bin, &uncached_db, &dir.path().join("uncached"), &cache_off()).await?;
            for ((name, _), (on, off)) in PAGES.iter().zip(cached.iter().zip(&uncached)) {
                println!("| {name} | {on:.0} | {off:.0} |");
            }
            println!(
                "\n(callgrind, {} sequential requests after 5 of warm-up; callgrind_annotate target/bench/callgrind-pageN[-uncached].out shows where they go, when run from scripts/bench.sh)",
                args.callgrind_requests
            );
        } else {
            println!("callgrind: skipped (valgrind is not installed)");
        }
    }
    Ok(())
}

fn wiremock_jar(args: &Args) -> Result<PathBuf> {
    if let Some(jar) = &args.wiremock_jar {
        return Ok(jar.clone());
    }
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/wiremock/node_modules/wiremock/build");
    std::fs::read_dir(&build)
        .with_context(|| format!("{} (run `npm ci` in bench/wiremock)", build.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jar"))
        .with_context(|| format!("no WireMock jar in {}", build.display()))
}

fn free_port() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

async fn wait_for(url: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "no 200 from {url} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// WireMock standalone with one stub per page (`GET /page/N`, the file as its body) and no
/// request journal, so that it keeps nothing per request.
fn start_wiremock(jar: &Path, dir: &Path, addr: &str, bodies: &[PathBuf]) -> Result<Child> {
    let root = dir.join("wiremock");
    std::fs::create_dir_all(root.join("mappings"))?;
    std::fs::create_dir_all(root.join("__files"))?;
    for (i, body) in bodies.iter().enumerate() {
        std::fs::copy(body, root.join("__files").join(format!("page{i}.json")))?;
        let mapping = serde_json::json!({
            "request": { "method": "GET", "urlPath": format!("/page/{i}") },
            "response": {
                "status": 200,
                "headers": { "Content-Type": ODATA_JSON },
                "bodyFileName": format!("page{i}.json"),
            },
        });
        std::fs::write(root.join("mappings").join(format!("page{i}.json")), serde_json::to_vec(&mapping)?)?;
    }
    let port = addr.rsplit(':').next().context("port")?;
    let log = std::fs::File::create(dir.join("wiremock.log"))?;
    Command::new("java")
        .arg("-jar")
        .arg(jar)
        .args(["--port", port, "--bind-address", "127.0.0.1", "--no-request-journal", "--disable-banner"])
        .arg("--root-dir")
        .arg(&root)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting WireMock")
}

/// Instructions per request of each page: the server (with `extra` arguments) under callgrind
/// with instrumentation off (so it starts at nearly full speed), switched on for a warm-up,
/// counters zeroed, then `--callgrind-requests` sequential requests, then dumped.
async fn callgrind(args: &Args, server_bin: &Path, db: &Path, dir: &Path, extra: &[String]) -> Result<Vec<f64>> {
    let wrapper = callgrind::wrapper(dir)?;
    let log = dir.join("callgrind-server.log");
    let server = Server::start_wrapped(&wrapper, server_bin, &sqlite_url(db), &log, extra).await?;
    let graph = GraphClient::new(&server.base_url);
    let token = graph.token_password(&server.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD).await?.access_token;
    let http = reqwest::Client::new();
    let control = |words: &[&str]| callgrind::control(server.pid, words);
    let suffix = if extra.is_empty() { "" } else { "-uncached" };
    let mut figures = Vec::new();
    let outcome = async {
        for (i, (_, path)) in PAGES.iter().enumerate() {
            let url = format!("{}/{path}", server.base_url);
            control(&["--instr=on"])?;
            for _ in 0..5 {
                http.get(&url).bearer_auth(&token).send().await?.error_for_status()?.bytes().await?;
            }
            control(&["--zero"])?;
            for _ in 0..args.callgrind_requests {
                http.get(&url).bearer_auth(&token).send().await?.error_for_status()?.bytes().await?;
            }
            control(&["--dump"])?;
            control(&["--instr=off"])?;
            let dump = callgrind::nth_dump(dir, i + 1)?;
            let total = callgrind::instructions(&dump)?;
            figures.push(total as f64 / f64::from(args.callgrind_requests));
            let keep = PathBuf::from(format!("target/bench/callgrind-page{i}{suffix}.out"));
            if keep.parent().is_some_and(Path::is_dir) {
                let _ = std::fs::copy(&dump, &keep);
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    server.stop().await?;
    outcome?;
    Ok(figures)
}
