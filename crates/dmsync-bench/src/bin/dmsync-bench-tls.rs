//! The HTTPS and proxy benchmark (issue 16, part 5). In one run it starts two release servers
//! on fresh databases, one serving plain HTTP and one serving HTTPS (`--tls`) with the proxy
//! (`--proxy-listen`), and loads an authenticated GET of `windowsAutopilotSettings` over each
//! transport with the bench crate's own HTTP/1.1 generator (`loadgen.rs`): plain HTTP, direct
//! HTTPS trusting the local CA, and HTTPS through the proxy to `graph.microsoft.com`, each with
//! keep-alive; then a new connection per request, to count TLS handshakes per second. Each
//! round loads every transport back to back, so a ratio compares loads that saw the same
//! machine; a figure is the median of the rounds, printed with their range. wrk, where it is
//! installed, loads plain HTTP and HTTPS beside. Last, both servers run again under callgrind on
//! the same databases, for the instructions they spend per request and per connection. It
//! prints a Markdown report; it is a program, not a test. See docs/PERFORMANCE.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use dmsync_client::GraphClient;

use dmsync_bench::callgrind;
use dmsync_bench::dev::{CLIENT_ID, PASSWORD, TENANT, USERNAME};
use dmsync_bench::loadgen::{self, Measured, Reuse, Route, Target};
use dmsync_bench::probe;
use dmsync_bench::report::{figure, ms, render};
use dmsync_bench::server::{Server, sqlite_url};
use dmsync_bench::wrk::{which, wrk};

const SETTINGS: &str = "/beta/deviceManagement/windowsAutopilotSettings";

/// The host a tool with `HTTPS_PROXY` asks the proxy for.
const GRAPH_HOST: &str = "graph.microsoft.com";

/// The targets of issue 16: HTTPS with keep-alive at least this share of plain HTTP, and the
/// proxy at least this share of direct HTTPS.
const HTTPS_OVER_HTTP_TARGET: f64 = 0.7;
const PROXY_OVER_HTTPS_TARGET: f64 = 0.5;

#[derive(Parser)]
#[command(
    name = "dmsync-bench-tls",
    about = "Authenticated GET throughput over plain HTTP, HTTPS and the proxy, and TLS handshakes per second",
    args_override_self = true
)]
struct Args {
    /// Seconds of each load.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds; each loads every transport back to back.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Connections (one task each) of every load.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of each load under callgrind, one connection at a time, for the instructions the
    /// server spends per request and per connection (0 skips callgrind).
    #[arg(long, default_value_t = 3)]
    callgrind_seconds: u64,
    /// Skip wrk's plain-HTTP and HTTPS loads even where wrk is installed.
    #[arg(long)]
    no_wrk: bool,
    /// The server binary (default: `dmsync` beside this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// File that receives the plain server's output; the TLS server's goes beside it, with
    /// the extension `tls.log` (default: a temporary directory).
    #[arg(long)]
    server_log: Option<PathBuf>,
}

/// The same allocator as the dmsync binary and the other benchmark programs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(&args)) {
        eprintln!("\nbenchmark FAILED: {e:#}");
        std::process::exit(1);
    }
}

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

fn free_port() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `dmsync ca`: the CA of a database, made there now if it has none, which the TLS server
/// then presents.
fn ca_pem(server_bin: &Path, db: &str) -> Result<String> {
    let output = Command::new(server_bin).args(["ca", "--db", db]).output().context("running `dmsync ca`")?;
    ensure!(output.status.success(), "`dmsync ca` failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

/// The address in a server's base URL (`http://127.0.0.1:PORT`).
fn address(base_url: &str) -> Result<SocketAddr> {
    let authority = base_url.split_once("://").map_or(base_url, |(_, rest)| rest);
    authority.parse().with_context(|| format!("no address in {base_url}"))
}

/// One load of a round: what it is, what it loads, and how.
struct Load {
    name: &'static str,
    target: Target,
    reuse: Reuse,
    server_pid: u32,
}

/// A load's rounds, sorted by rate, and the median.
struct Rounds {
    sorted: Vec<Measured>,
}

impl Rounds {
    fn new(mut rounds: Vec<Measured>, rate: fn(&Measured) -> f64) -> Rounds {
        rounds.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        Rounds { sorted: rounds }
    }

    fn median(&self) -> &Measured {
        &self.sorted[self.sorted.len() / 2]
    }
}

/// The median of `values` and their range.
fn median_and_range(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

async fn run(args: &Args) -> Result<()> {
    ensure!(args.rounds > 0 && args.seconds > 0 && args.connections > 0, "rounds, seconds and connections must be > 0");
    let server_bin = server_binary(args)?;
    let dir = tempfile::Builder::new().prefix("dmsync-bench-tls-").tempdir()?;
    let log_path = args.server_log.clone().unwrap_or_else(|| dir.path().join("server.log"));
    let use_wrk = !args.no_wrk && which("wrk");
    println!("# dmsync HTTPS and proxy benchmark\n");
    println!("{}", probe::machine());

    let plain_db = sqlite_url(&dir.path().join("plain.db"));
    let tls_db = sqlite_url(&dir.path().join("tls.db"));
    let ca = ca_pem(&server_bin, &tls_db)?;
    let setup = Setup::start(&[], &server_bin, &plain_db, &tls_db, &log_path, ca.clone(), None).await?;
    let outcome = measure(args, use_wrk, &setup).await;
    let tokens = setup.tokens.clone();
    setup.stop().await?;
    outcome?;

    if args.callgrind_seconds > 0 {
        if callgrind::available() {
            // The same databases: their signing keys exist, which a first start under callgrind
            // would spend minutes making, and the tokens stay valid.
            let wrappers =
                [callgrind::wrapper(&dir.path().join("plain"))?, callgrind::wrapper(&dir.path().join("tls"))?];
            let log = log_path.with_extension("callgrind.log");
            let setup = Setup::start(&wrappers, &server_bin, &plain_db, &tls_db, &log, ca, Some(tokens)).await?;
            let outcome = instructions(args, &setup, dir.path()).await;
            setup.stop().await?;
            outcome?;
        } else {
            println!("callgrind: skipped (valgrind is not installed)");
        }
    }
    Ok(())
}

/// The two servers under test, and what a client needs to load them.
struct Setup {
    plain: Server,
    secure: Server,
    proxy_address: SocketAddr,
    ca: String,
    tokens: Tokens,
}

#[derive(Clone)]
struct Tokens {
    plain: String,
    secure: String,
}

impl Setup {
    /// Starts the plain server and the TLS server with the proxy (each under its wrapper, if
    /// `wrappers` has two), and takes a token from each unless `tokens` are given.
    async fn start(
        wrappers: &[Vec<String>],
        server_bin: &Path,
        plain_db: &str,
        tls_db: &str,
        log_path: &Path,
        ca: String,
        tokens: Option<Tokens>,
    ) -> Result<Setup> {
        let (plain_wrapper, tls_wrapper) = match wrappers {
            [plain, tls] => (plain.as_slice(), tls.as_slice()),
            _ => (&[][..], &[][..]),
        };
        let plain = Server::start_wrapped(plain_wrapper, server_bin, plain_db, log_path, &[]).await?;
        let proxy_address = free_port()?;
        let tls_args = ["--tls".into(), "--proxy-listen".into(), proxy_address.to_string()];
        let tls_log = log_path.with_extension("tls.log");
        let secure = Server::start_wrapped(tls_wrapper, server_bin, tls_db, &tls_log, &tls_args).await?;
        ensure!(secure.base_url.starts_with("https://"), "the --tls server listens on {}", secure.base_url);
        let tokens = match tokens {
            Some(tokens) => tokens,
            None => {
                let trusting = reqwest::Client::builder()
                    .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
                    .build()?;
                Tokens {
                    plain: GraphClient::new(&plain.base_url)
                        .token_password(&plain.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD)
                        .await?
                        .access_token,
                    secure: GraphClient::new(&secure.base_url)
                        .with_http(trusting)
                        .token_password(&secure.base_url, TENANT, CLIENT_ID, USERNAME, PASSWORD)
                        .await?
                        .access_token,
                }
            }
        };
        Ok(Setup { plain, secure, proxy_address, ca, tokens })
    }

    async fn stop(self) -> Result<()> {
        self.plain.stop().await?;
        self.secure.stop().await?;
        Ok(())
    }

    /// The keep-alive loads (plain HTTP, HTTPS, the proxy) and the loads with a new connection
    /// per request (plain HTTP, HTTPS with full and with resumed handshakes, the proxy).
    fn loads(&self) -> Result<(Vec<Load>, Vec<Load>)> {
        let plain_address = address(&self.plain.base_url)?;
        let secure_address = address(&self.secure.base_url)?;
        let to_plain = |route| Target {
            address: plain_address,
            route,
            host: plain_address.to_string(),
            server_name: plain_address.ip().to_string(),
            path: SETTINGS.into(),
            bearer_token: self.tokens.plain.clone(),
        };
        let direct = |route| Target {
            address: secure_address,
            route,
            host: secure_address.to_string(),
            server_name: secure_address.ip().to_string(),
            path: SETTINGS.into(),
            bearer_token: self.tokens.secure.clone(),
        };
        let proxied = |route| Target {
            address: self.proxy_address,
            route,
            host: GRAPH_HOST.into(),
            server_name: GRAPH_HOST.into(),
            path: SETTINGS.into(),
            bearer_token: self.tokens.secure.clone(),
        };
        let resuming = || loadgen::client_config(&self.ca, true);
        let fresh = || loadgen::client_config(&self.ca, false);
        let (plain_pid, secure_pid) = (self.plain.pid, self.secure.pid);
        let keep_alive = vec![
            Load { name: "plain HTTP", target: to_plain(Route::Plain), reuse: Reuse::KeepAlive, server_pid: plain_pid },
            Load {
                name: "HTTPS",
                target: direct(Route::Tls(resuming()?)),
                reuse: Reuse::KeepAlive,
                server_pid: secure_pid,
            },
            Load {
                name: "HTTPS through the proxy",
                target: proxied(Route::Proxy(resuming()?)),
                reuse: Reuse::KeepAlive,
                server_pid: secure_pid,
            },
        ];
        let per_request = Reuse::ConnectionPerRequest;
        let handshakes = vec![
            Load { name: "plain HTTP", target: to_plain(Route::Plain), reuse: per_request, server_pid: plain_pid },
            Load {
                name: "HTTPS, full handshakes",
                target: direct(Route::Tls(fresh()?)),
                reuse: per_request,
                server_pid: secure_pid,
            },
            Load {
                name: "HTTPS, resumed handshakes",
                target: direct(Route::Tls(resuming()?)),
                reuse: per_request,
                server_pid: secure_pid,
            },
            Load {
                name: "through the proxy (CONNECT, then a full handshake)",
                target: proxied(Route::Proxy(fresh()?)),
                reuse: per_request,
                server_pid: secure_pid,
            },
        ];
        Ok((keep_alive, handshakes))
    }
}

async fn measure(args: &Args, use_wrk: bool, setup: &Setup) -> Result<()> {
    let (plain, secure) = (&setup.plain, &setup.secure);
    let (plain_token, secure_token) = (&setup.tokens.plain, &setup.tokens.secure);
    let (keep_alive, handshakes) = setup.loads()?;
    let seconds = Duration::from_secs(args.seconds);
    let connections = args.connections;
    let run_load = |load: &Load, duration: Duration| {
        let load_target = load.target.clone();
        let (reuse, pid, name) = (load.reuse, load.server_pid, load.name);
        async move {
            let measured = loadgen::load(&load_target, reuse, connections, duration, pid).await.context(name)?;
            if measured.non_2xx > 0 {
                bail!("{name}: {} of {} responses were not 2xx", measured.non_2xx, measured.requests);
            }
            Ok(measured)
        }
    };
    let wrk_https = use_wrk && https_wrk_works(&secure.base_url, secure_token);

    // Every server, connection path and cache sees traffic before anything is measured.
    for load in keep_alive.iter().chain(&handshakes) {
        run_load(load, Duration::from_secs(1)).await?;
    }
    let load_before = load_average();
    let mut kept: Vec<Vec<Measured>> = keep_alive.iter().map(|_| Vec::new()).collect();
    let mut opened: Vec<Vec<Measured>> = handshakes.iter().map(|_| Vec::new()).collect();
    let mut wrk_rounds: Vec<(f64, Option<f64>)> = Vec::new();
    for _ in 0..args.rounds {
        for (load, rounds) in keep_alive.iter().zip(&mut kept) {
            rounds.push(run_load(load, seconds).await?);
        }
        for (load, rounds) in handshakes.iter().zip(&mut opened) {
            rounds.push(run_load(load, seconds).await?);
        }
        if use_wrk {
            let c = connections as u32;
            let settings = format!("{}{SETTINGS}", plain.base_url);
            let plain_wrk = wrk(&settings, c, args.seconds, Some(plain_token.as_str()), None)?;
            let https_wrk = if wrk_https {
                let settings = format!("{}{SETTINGS}", secure.base_url);
                Some(wrk(&settings, c, args.seconds, Some(secure_token.as_str()), None)?.requests_per_second)
            } else {
                None
            };
            wrk_rounds.push((plain_wrk.requests_per_second, https_wrk));
        }
    }
    let load_after = load_average();

    // The ratios of each round, from loads made seconds apart.
    let https_over_http: Vec<f64> =
        (0..kept[0].len()).map(|i| kept[1][i].requests_per_second() / kept[0][i].requests_per_second()).collect();
    let proxy_over_https: Vec<f64> =
        (0..kept[0].len()).map(|i| kept[2][i].requests_per_second() / kept[1][i].requests_per_second()).collect();
    let tls = kept[1][0].tls.clone().unwrap_or_default();
    let proxy_tls = kept[2][0].tls.clone().unwrap_or_default();
    println!(
        "Load generator: the bench crate's own (hyper's HTTP/1.1 client connection, tokio-rustls with rustls's \
         default provider), {connections} connections, {} s per load, {} rounds; HTTP/1.1 everywhere (the client \
         offers only http/1.1 by ALPN). TLS negotiated: {tls} direct; {proxy_tls} through the proxy. The plain \
         server and the TLS server are two processes of the same binary on databases of their own; each is idle \
         while the other is loaded.\n",
        args.seconds, args.rounds
    );

    // What TLS and the tunnel cost the server itself per request, relative to plain HTTP in the
    // same round: a figure that the client's share of the two cores moves less than a rate.
    let server_cpu_ratio = |transport: usize| {
        median_and_range(
            (0..kept[0].len())
                .map(|i| kept[transport][i].server_cpu_per_request_us() / kept[0][i].server_cpu_per_request_us())
                .collect(),
        )
    };
    let (https_cpu, https_cpu_low, https_cpu_high) = server_cpu_ratio(1);
    let (proxy_cpu, proxy_cpu_low, proxy_cpu_high) = server_cpu_ratio(2);
    println!("## Keep-alive: GET windowsAutopilotSettings, one connection per task for the whole load\n");
    println!(
        "| transport | req/s (median of {}) | range | p50 | p99 | server CPU per request | client CPU per request | bytes per response |",
        args.rounds
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (load, rounds) in keep_alive.iter().zip(kept) {
        let rounds = Rounds::new(rounds, Measured::requests_per_second);
        let m = rounds.median();
        println!(
            "| {} | {:.0} | {:.0}–{:.0} | {} | {} | {:.1} µs | {:.1} µs | {} |",
            load.name,
            m.requests_per_second(),
            rounds.sorted[0].requests_per_second(),
            rounds.sorted[rounds.sorted.len() - 1].requests_per_second(),
            ms(m.p50),
            ms(m.p99),
            m.server_cpu_per_request_us(),
            m.client_cpu_per_request_us(),
            m.response_bytes / m.requests.max(1),
        );
    }
    if !wrk_rounds.is_empty() {
        let (plain_wrk, _, _) = median_and_range(wrk_rounds.iter().map(|r| r.0).collect());
        let https = wrk_rounds.iter().filter_map(|r| r.1).collect::<Vec<_>>();
        let https_text = if https.is_empty() {
            "HTTPS not measured (this wrk does not speak TLS)".to_owned()
        } else {
            let ratios = wrk_rounds.iter().filter_map(|r| Some(r.1? / r.0)).collect();
            let (ratio, low, high) = median_and_range(ratios);
            let (https_wrk, _, _) = median_and_range(https);
            format!("HTTPS {https_wrk:.0} req/s, HTTPS ÷ plain {ratio:.2} ({low:.2}–{high:.2})")
        };
        println!(
            "\nwrk beside, same connections and seconds, median of {} rounds: plain HTTP {plain_wrk:.0} req/s; {https_text}.",
            wrk_rounds.len()
        );
    }

    println!("\n## A new connection per request (connect, handshake, one GET with `Connection: close`)\n");
    println!(
        "| connection | connections/s (median of {}) | range | full / resumed handshakes | p50, p99 of a connection | server CPU per connection | client CPU per connection |",
        args.rounds
    );
    println!("|---|---|---|---|---|---|---|");
    let mut handshake_rates = Vec::new();
    for (load, rounds) in handshakes.iter().zip(opened) {
        let rounds = Rounds::new(rounds, Measured::connections_per_second);
        let m = rounds.median();
        println!(
            "| {} | {:.0} | {:.0}–{:.0} | {} / {} | {}, {} | {:.0} µs | {:.0} µs |",
            load.name,
            m.connections_per_second(),
            rounds.sorted[0].connections_per_second(),
            rounds.sorted[rounds.sorted.len() - 1].connections_per_second(),
            m.full_handshakes,
            m.resumed_handshakes,
            ms(m.p50),
            ms(m.p99),
            m.server_cpu * 1e6 / m.connections.max(1) as f64,
            m.client_cpu * 1e6 / m.connections.max(1) as f64,
        );
        handshake_rates.push(m.connections_per_second());
    }
    println!("\nload average (1, 5, 15 min): {load_before} before the measured loads, {load_after} after");

    let (ratio, low, high) = median_and_range(https_over_http);
    let (proxy_ratio, proxy_low, proxy_high) = median_and_range(proxy_over_https);
    let figures = vec![
        figure(
            format!("HTTPS ÷ plain HTTP, keep-alive, HTTP/1.1, {connections} connections"),
            format!("{ratio:.2} (range {low:.2}–{high:.2} over {} rounds)", args.rounds),
            format!("≥ {HTTPS_OVER_HTTP_TARGET:.1}"),
            Some(ratio >= HTTPS_OVER_HTTP_TARGET),
        ),
        figure(
            format!("through the proxy ÷ direct HTTPS, keep-alive, HTTP/1.1, {connections} connections"),
            format!("{proxy_ratio:.2} (range {proxy_low:.2}–{proxy_high:.2})"),
            format!("≥ {PROXY_OVER_HTTPS_TARGET:.1}"),
            Some(proxy_ratio >= PROXY_OVER_HTTPS_TARGET),
        ),
        figure(
            "server CPU per request relative to plain HTTP, same round: HTTPS, through the proxy",
            format!(
                "{https_cpu:.2}× ({https_cpu_low:.2}–{https_cpu_high:.2}), {proxy_cpu:.2}× ({proxy_cpu_low:.2}–{proxy_cpu_high:.2})"
            ),
            "— (reported)",
            None,
        ),
        figure(
            "TLS handshakes per second (new TCP and TLS connection per GET): full, resumed, full through the proxy",
            format!("{:.0}, {:.0}, {:.0}", handshake_rates[1], handshake_rates[2], handshake_rates[3]),
            "— (reported)",
            None,
        ),
    ];
    print!("{}", render(&figures, &[], &[]));
    Ok(())
}

/// The instructions the server spends per request with keep-alive and per connection with a
/// new connection per request, under callgrind, one connection at a time: what TLS and the
/// tunnel cost the server, in a figure that other processes on the machine do not move.
async fn instructions(args: &Args, setup: &Setup, dir: &Path) -> Result<()> {
    let (keep_alive, handshakes) = setup.loads()?;
    let seconds = Duration::from_secs(args.callgrind_seconds);
    println!(
        "\n## Server instructions (callgrind, one connection, {} s of load after 1 s of warm-up; from scripts/bench.sh, dump N is kept as target/bench/callgrind-tlsN.out)\n",
        args.callgrind_seconds
    );
    println!(
        "| dump | load | requests measured (full / resumed handshakes) | instructions per request | relative to plain HTTP |"
    );
    println!("|---|---|---|---|---|");
    let mut dumps = [0usize; 2];
    let mut kept = 0;
    let groups = [&keep_alive, &handshakes];
    for group in groups {
        let mut plain_per_request = None;
        for load in group {
            let (which, dump_dir) = if load.server_pid == setup.plain.pid { (0, "plain") } else { (1, "tls") };
            let pid = load.server_pid;
            callgrind::control(pid, &["--instr=on"])?;
            loadgen::load(&load.target, load.reuse, 1, Duration::from_secs(1), pid).await.context(load.name)?;
            callgrind::control(pid, &["--zero"])?;
            let measured = loadgen::load(&load.target, load.reuse, 1, seconds, pid).await.context(load.name)?;
            callgrind::control(pid, &["--dump"])?;
            callgrind::control(pid, &["--instr=off"])?;
            dumps[which] += 1;
            let dump = callgrind::nth_dump(&dir.join(dump_dir), dumps[which])?;
            let total = callgrind::instructions(&dump)?;
            kept += 1;
            let keep = PathBuf::from(format!("target/bench/callgrind-tls{kept}.out"));
            if keep.parent().is_some_and(Path::is_dir) {
                let _ = std::fs::copy(&dump, &keep);
            }
            let per_request = total as f64 / measured.requests as f64;
            let plain = *plain_per_request.get_or_insert(per_request);
            let name = match load.reuse {
                Reuse::KeepAlive => format!("{}, keep-alive", load.name),
                Reuse::ConnectionPerRequest => format!("{}, a new connection per request", load.name),
            };
            println!(
                "| {kept} | {name} | {} ({} / {}) | {per_request:.0} | {:.2}× |",
                measured.requests,
                measured.full_handshakes,
                measured.resumed_handshakes,
                per_request / plain
            );
        }
    }
    Ok(())
}

/// Whether wrk gets a 200 over HTTPS (Debian's wrk is built with OpenSSL; another may not be):
/// a one-second, one-connection load.
fn https_wrk_works(base_url: &str, token: &str) -> bool {
    wrk(&format!("{base_url}{SETTINGS}"), 1, 1, Some(token), None)
        .is_ok_and(|load| load.requests_per_second > 0.0 && load.non_2xx == 0)
}
