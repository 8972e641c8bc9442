//! The dmsync binary. `dmsync serve` runs the server and `dmsync ca` prints its certificate
//! authority from the database; the client subcommands (`token`, `autopilot`, `exchange`) live
//! in `cli/` and talk Graph over HTTP.

mod cli;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use dmsync_server::bootstrap::{
    DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_TENANT_DOMAIN, DEV_TENANT_ID, DEV_USER_PASSWORD, DEV_USER_UPN,
};
use dmsync_server::config::{Config, ExternalIssuer, PermissionProfile, PublicUrl, ThrottlingSetting, TlsCertificate};

#[derive(Parser)]
#[command(
    name = "dmsync",
    version,
    about = "A self-hostable Microsoft Graph Intune sync server, and a client for it and for real Graph",
    after_help = cli::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print the local certificate authority (PEM) from the database, without a server: the
    /// CA that `serve --tls` leaves chain to and GET /_dmsync/ca.pem serves. If the database has
    /// none yet, it is created and stored, as the first `serve` would.
    Ca(CaArgs),
    /// Print an access token, for curl: -H "Authorization: Bearer $(dmsync token)".
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Token(cli::TokenArgs),
    /// Windows Autopilot: the sync, its status, CSV imports, the device list.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Autopilot(cli::autopilot::Args),
    /// Exchange connectors and their syncs.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Exchange(cli::exchange::Args),
    /// Empty one tenant or every tenant of a running dmsync (the admin API), as a test suite
    /// does before each test.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Reset(cli::admin::ResetArgs),
    /// Take, list, restore and delete snapshots of a running dmsync's whole state.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Snapshot(cli::admin::SnapshotArgs),
    /// Create tenants, users, apps, devices, groups and profiles in a running dmsync from a seed
    /// file, or load an IntuneCD backup folder.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Seed(cli::admin::SeedArgs),
    /// The server's request journal: `list` what it recorded, `tail` it live.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Requests(cli::requests::Args),
    /// Switch a running dmsync's throttling (Intune's documented limits) on or off, or show it.
    #[command(after_help = cli::EXIT_CODES_HELP)]
    Throttling(cli::throttling::Args),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    Original,
    Current,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("'{s}' is not an address to listen on (try 127.0.0.1:8080 or localhost:8080): {e}"))?
        .next()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

/// A connection timeout: a duration above zero, since zero would cut every connection at once.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match cli::parse_duration(s)? {
        d if d.is_zero() => Err("a timeout must be longer than zero".into()),
        d => Ok(d),
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on: IP:PORT or HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "DMSYNC_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Database: sqlite://PATH (created if missing), sqlite::memory:, or
    /// postgres://USER@HOST:PORT/DATABASE (migrated on start; replicas may share it).
    #[arg(long, env = "DMSYNC_DB", default_value = "sqlite://dmsync.db")]
    db: String,
    /// Token for the /_dmsync admin API. Without it, `dmsync-dev-admin` works on loopback only.
    #[arg(long, env = "DMSYNC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A host name (or host:port) the admin API answers to besides localhost, loopback addresses
    /// and the listen address; repeat or comma-separate. Other names are refused (DNS rebinding).
    #[arg(long, env = "DMSYNC_ADMIN_ALLOW_HOST", value_delimiter = ',')]
    admin_allow_host: Vec<String>,
    /// Which documentation decides application access to the sync actions.
    #[arg(long, env = "DMSYNC_PERMISSION_PROFILE", value_enum, default_value = "original")]
    permission_profile: Profile,
    /// Minimum time between Autopilot syncs (429 inside it).
    #[arg(long, env = "DMSYNC_SYNC_COOLDOWN", default_value = "600s", value_parser = cli::parse_clock_duration)]
    sync_cooldown: time::Duration,
    /// Send Retry-After with the remaining seconds on the cooldown 429 (real Intune does not).
    /// The variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "DMSYNC_SYNC_RETRY_AFTER", value_parser = clap::builder::BoolishValueParser::new())]
    sync_retry_after: bool,
    /// How long an Autopilot sync stays inProgress at least, on the server's clock.
    #[arg(long, env = "DMSYNC_SYNC_DURATION", default_value = "5s", value_parser = cli::parse_clock_duration)]
    sync_duration: time::Duration,
    /// How long the deployment service takes to process an import, on the server's clock.
    #[arg(long, env = "DMSYNC_IMPORT_DELAY", default_value = "10s", value_parser = cli::parse_clock_duration)]
    import_delay: time::Duration,
    /// Whether a completed import restarts the sync cooldown, as seen in real tenants.
    #[arg(long, env = "DMSYNC_IMPORT_COUNTS_AS_SYNC", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    import_counts_as_sync: bool,
    /// How long a device deleted through Graph stays before it is deregistered.
    #[arg(long, env = "DMSYNC_DELETION_DELAY", default_value = "10s", value_parser = cli::parse_clock_duration)]
    deletion_delay: time::Duration,
    /// How long Entra takes to process dynamic group membership after a rule or a device
    /// changed, on the server's clock (Entra: typically minutes).
    #[arg(long, env = "DMSYNC_GROUP_PROCESSING_DELAY", default_value = "5m", value_parser = cli::parse_clock_duration)]
    group_processing_delay: time::Duration,
    /// How long a device stays pending for the deployment profile it came under before the
    /// profile is assigned, on the server's clock.
    #[arg(long, env = "DMSYNC_PROFILE_ASSIGNMENT_DELAY", default_value = "15m", value_parser = cli::parse_clock_duration)]
    profile_assignment_delay: time::Duration,
    /// Interval of scheduled Exchange connector delta syncs, on the server's clock.
    #[arg(long, env = "DMSYNC_EXCHANGE_DELTA_INTERVAL", default_value = "15m", value_parser = cli::parse_clock_duration)]
    exchange_delta_interval: time::Duration,
    /// Interval of scheduled Exchange connector full syncs, on the server's clock.
    #[arg(long, env = "DMSYNC_EXCHANGE_FULL_INTERVAL", default_value = "24h", value_parser = cli::parse_clock_duration)]
    exchange_full_interval: time::Duration,
    /// A host (or host:port) an HTTP Exchange source may name; repeat or comma-separate. None
    /// by default, against SSRF.
    #[arg(long, env = "DMSYNC_EXCHANGE_SOURCE_ALLOW_HOST", value_delimiter = ',')]
    exchange_source_allow_host: Vec<String>,
    /// Largest Graph request body, in bytes.
    #[arg(long, env = "DMSYNC_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Bytes of collection pages kept in memory until the next write (SQLite only; 0 keeps
    /// none). A page read again before anything changed is then served without a query.
    #[arg(long, env = "DMSYNC_PAGE_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    page_cache_bytes: usize,
    /// Requests the journal keeps in memory (GET /_dmsync/requests, `dmsync requests`): every
    /// Graph and sign-in request, the oldest dropped first. 0 turns the journal off.
    #[arg(long, env = "DMSYNC_JOURNAL_ENTRIES", default_value_t = 1000)]
    journal_entries: usize,
    /// Bytes of each request and response body the journal keeps; the rest is cut and marked.
    #[arg(long, env = "DMSYNC_JOURNAL_BODY_BYTES", default_value_t = 8 * 1024)]
    journal_body_bytes: usize,
    /// How long a client has to send a request's head (from the connection's opening, or from
    /// the first byte of a later request on it).
    #[arg(long, env = "DMSYNC_HEADER_READ_TIMEOUT", default_value = "20s", value_parser = parse_timeout)]
    header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight and nothing received.
    #[arg(long, env = "DMSYNC_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    idle_timeout: Duration,
    /// How long a Graph request's body may take to arrive, in total (408 after it).
    #[arg(long, env = "DMSYNC_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    body_read_timeout: Duration,
    /// How long an admin registration upload may pause without sending a byte (408 after it).
    #[arg(long, env = "DMSYNC_UPLOAD_STALL_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    upload_stall_timeout: Duration,
    /// Connections served at once; one more is answered 503 with Retry-After and closed.
    #[arg(long, env = "DMSYNC_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Background job workers.
    #[arg(long, env = "DMSYNC_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Job lease; a job whose worker stops heartbeating is taken over after this.
    #[arg(long, env = "DMSYNC_JOB_LEASE", default_value = "30s", value_parser = cli::parse_clock_duration)]
    job_lease: time::Duration,
    /// Deadline for a graceful shutdown.
    #[arg(long, env = "DMSYNC_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = cli::parse_duration)]
    shutdown_timeout: Duration,
    /// How often an idle worker looks for due jobs when nothing woke it (jobs this process
    /// enqueues start at once; the poll finds those that came due or another replica enqueued).
    #[arg(long, env = "DMSYNC_JOB_POLL_INTERVAL", default_value = "500ms", value_parser = cli::parse_duration)]
    job_poll_interval: Duration,
    /// Also listen here as an HTTP forward proxy (HTTPS_PROXY) that answers for Microsoft's Graph
    /// and sign-in hosts itself, so tools that hard-code them run unchanged. Off by default.
    #[arg(long, env = "DMSYNC_PROXY_LISTEN", value_parser = parse_listen)]
    proxy_listen: Option<SocketAddr>,
    /// A seed file (JSON, or YAML if named .yaml or .yml) applied once the server is up, when the database was empty: tenants,
    /// users, apps, registrations, devices, groups, profiles and assignments (see `dmsync seed`
    /// and docs/TESTING-WITH-DMSYNC.md). The banner is printed after it is applied.
    #[arg(long, env = "DMSYNC_SEED", value_name = "FILE")]
    seed: Option<std::path::PathBuf>,
    /// Let the proxy tunnel CONNECTs to other hosts (port 443 only) instead of refusing them.
    /// The variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "DMSYNC_PROXY_PASS_THROUGH", value_parser = clap::builder::BoolishValueParser::new())]
    proxy_pass_through: bool,
    /// Throttle Intune's endpoint families as Graph documents: off, documented (Graph's
    /// published Intune limits), or the path of a JSON file of limits per family, tenant or app.
    #[arg(long, env = "DMSYNC_THROTTLING", default_value = "off", value_parser = ThrottlingSetting::from_flag)]
    throttling: ThrottlingSetting,
    /// JWKS URL of an external token issuer (a real Entra ID tenant), e.g.
    /// https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys.
    #[arg(long, env = "DMSYNC_EXTERNAL_JWKS_URL")]
    external_jwks_url: Option<String>,
    /// Extra audiences accepted on external tokens (comma-separated), e.g. your API's client id.
    #[arg(long, env = "DMSYNC_EXTERNAL_AUDIENCES", value_delimiter = ',')]
    external_audiences: Vec<String>,
    /// Serve HTTPS on --listen (HTTP/2 and HTTP/1.1 by ALPN), with a certificate from the local
    /// CA (GET /_dmsync/ca.pem, `dmsync ca`) naming localhost, 127.0.0.1, ::1, the listen host and
    /// every --tls-name; a client asking for another name gets that certificate too.
    #[arg(long, env = "DMSYNC_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    tls: bool,
    /// Another host name or IP address the --tls certificate names; repeat or comma-separate.
    #[arg(long, env = "DMSYNC_TLS_NAME", value_delimiter = ',', requires = "tls", conflicts_with = "tls_cert")]
    tls_name: Vec<String>,
    /// With --tls, present this certificate chain (PEM, leaf first) instead of one from the
    /// local CA; needs --tls-key.
    #[arg(long, env = "DMSYNC_TLS_CERT", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "DMSYNC_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The scheme, host and port of every absolute URL dmsync writes (@odata.nextLink, the
    /// OpenID documents, Intune's error Url), e.g. https://dmsync.example:8443, for a TLS
    /// terminator that sends no X-Forwarded-Host or X-Forwarded-Proto (those still win).
    #[arg(long, env = "DMSYNC_PUBLIC_URL", value_parser = PublicUrl::parse)]
    public_url: Option<PublicUrl>,
    /// Fault rules to hold from the start: a JSON array of rules as `POST /_dmsync/faults`
    /// takes them (see docs/TESTING-WITH-DMSYNC.md, "Faults").
    #[arg(long, env = "DMSYNC_FAULTS", value_parser = parse_faults_file)]
    faults: Option<FaultFile>,
    /// Log format.
    #[arg(long, env = "DMSYNC_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// The rules of `--faults`, read and checked when the flags are parsed.
type FaultFile = Vec<dmsync_server::control::faults::Rule>;

fn parse_faults_file(path: &str) -> Result<FaultFile, String> {
    dmsync_server::control::faults::load_file(path)
}

#[derive(clap::Args)]
struct CaArgs {
    /// Database, as for `serve`: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, env = "DMSYNC_DB", default_value = "sqlite://dmsync.db")]
    db: String,
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DMSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // A log write that fails (stderr piped into a reader that went away) must not take the
    // server down: by default tracing reports it with eprintln!, which panics on a closed
    // stderr and kills whichever task was logging.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancels the token on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the returned future first runs: a script that sends SIGTERM as soon as it reads the
/// banner must find them in place, or the signal's default action kills the process instead of
/// draining it.
fn stop_on_signal(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(interrupt) => tracing::info!("SIGINT received; shutting down"),
                _ = next(terminate) => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received; shutting down");
        }
        shutdown.cancel();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    // Read before anything starts, so a bad file is refused at once.
    let seed = match &args.seed {
        Some(path) => Some(cli::seed::read_seed_file(path).map_err(|e| anyhow::anyhow!("--seed {e}"))?),
        None => None,
    };
    let config = Config {
        listen: args.listen,
        db: args.db,
        admin_token: args.admin_token,
        admin_allowed_hosts: args.admin_allow_host,
        permission_profile: match args.permission_profile {
            Profile::Original => PermissionProfile::Original,
            Profile::Current => PermissionProfile::Current,
        },
        sync_cooldown: args.sync_cooldown,
        sync_retry_after: args.sync_retry_after,
        sync_duration: args.sync_duration,
        import_delay: args.import_delay,
        import_counts_as_sync: args.import_counts_as_sync,
        deletion_delay: args.deletion_delay,
        group_processing_delay: args.group_processing_delay,
        profile_assignment_delay: args.profile_assignment_delay,
        exchange_delta_interval: args.exchange_delta_interval,
        exchange_full_interval: args.exchange_full_interval,
        exchange_source_allowed_hosts: args.exchange_source_allow_host,
        max_body_bytes: args.max_body_bytes,
        page_cache_bytes: args.page_cache_bytes,
        journal_entries: args.journal_entries,
        journal_body_bytes: args.journal_body_bytes,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        body_read_timeout: args.body_read_timeout,
        upload_stall_timeout: args.upload_stall_timeout,
        max_connections: args.max_connections as usize,
        workers: args.workers,
        job_lease: args.job_lease,
        shutdown_timeout: args.shutdown_timeout,
        external_issuer: args
            .external_jwks_url
            .map(|jwks_url| ExternalIssuer { jwks_url, audiences: args.external_audiences }),
        job_poll_interval: args.job_poll_interval,
        tls: match (args.tls, args.tls_cert, args.tls_key) {
            (false, ..) => None,
            (true, Some(cert), Some(key)) => Some(TlsCertificate::Operator { cert, key }),
            (true, ..) => Some(TlsCertificate::LocalCa { names: args.tls_name }),
        },
        public_url: args.public_url,
        proxy_listen: args.proxy_listen,
        proxy_pass_through: args.proxy_pass_through,
        faults: args.faults.unwrap_or_default(),
        throttling: args.throttling,
    };
    // Refused before the database is opened or the port bound, with the flag's name.
    config.validate()?;
    let tls_configured = config.tls.is_some();
    let admin_token = config.effective_admin_token();
    let reachable_from_other_hosts = config.admin_reachable_from_other_hosts();
    let proxy_pass_through = config.proxy_pass_through;
    if seed.is_some() && (admin_token.is_none() || tls_configured) {
        anyhow::bail!(
            "--seed is applied through the admin API over plain HTTP on loopback: it needs a loopback --listen \
             (or --admin-token) and no --tls"
        );
    }
    let shutdown = CancellationToken::new();
    let app = dmsync_server::Application::build(config, shutdown.clone()).await.context("starting dmsync")?;
    let url = app.url();
    let seeding = match seed {
        Some(_) if !app.seeded => {
            tracing::warn!("the database was not empty, so --seed was not applied");
            None
        }
        Some(seed) => {
            // The bound address, with an unspecified one (0.0.0.0, [::]) replaced by the
            // loopback address of its family.
            let mut local = app.address();
            if local.ip().is_unspecified() {
                local.set_ip(match local.ip() {
                    std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            Some((seed, format!("http://{local}")))
        }
        None => None,
    };
    let admin_line = match admin_token.as_deref() {
        Some(dmsync_server::config::DEV_ADMIN_TOKEN) => {
            format!("{url}/_dmsync/ with Bearer {}", dmsync_server::config::DEV_ADMIN_TOKEN)
        }
        Some(_) if reachable_from_other_hosts => {
            format!("{url}/_dmsync/ with the configured admin token, reachable from other hosts")
        }
        Some(_) => format!("{url}/_dmsync/ with the configured admin token"),
        None => "disabled (no --admin-token and not on loopback)".to_owned(),
    };
    // The console signs in with the admin token, so it is there exactly when the admin API is.
    let console_line = match &admin_token {
        Some(_) => format!("{url}/_dmsync/console/ in a browser, signed in with the admin token"),
        None => "off with the admin API".to_owned(),
    };
    let banner = format!(
        "dmsync listening on {url}\n\
         \x20 Graph:     {url}/beta/deviceManagement/windowsAutopilotSettings\n\
         \x20 token:     POST {url}/{DEV_TENANT_ID}/oauth2/v2.0/token\n\
         \x20 tenant:    {DEV_TENANT_ID} ({DEV_TENANT_DOMAIN})\n\
         \x20 app:       client_id {DEV_CLIENT_ID}, client_secret {DEV_CLIENT_SECRET}\n\
         \x20 user:      {DEV_USER_UPN}, password {DEV_USER_PASSWORD}\n\
         \x20 admin API: {admin_line}\n\
         \x20 console:   {console_line}\n"
    );
    let banner = match app.proxy_address() {
        Some(proxy) => format!(
            "{banner}dmsync proxy listening on http://{proxy} (HTTPS_PROXY; Microsoft's hosts are answered here, \
             others {})\n",
            if proxy_pass_through { "tunnelled" } else { "refused" }
        ),
        None => banner,
    };
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let Some((seed, local)) = seeding else {
        print_banner(&banner);
        tracing::info!(url = %url, "listening");
        return app.run_until_stopped().await;
    };
    // The seed goes through the server's own admin API and Graph, so it runs once it serves;
    // the banner, which scripts wait for, comes after it.
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    let admin = dmsync_client::AdminClient::new(&local, admin_token.unwrap_or_default());
    match cli::seed::apply(&admin, &dmsync_client::GraphClient::new(&local), &seed).await {
        Ok(report) => {
            // Each seeded application's secret is shown once, as the admin API shows it: on
            // standard output with the banner, never in the log.
            let mut banner = banner;
            for app in &report.applications {
                banner.push_str(&format!(
                    "  seeded:    app {}, client_id {}, client_secret {}\n",
                    app["displayName"], app["appId"], app["secretText"]
                ));
            }
            print_banner(&banner);
            tracing::info!(url = %url, "listening");
        }
        Err(e) => {
            // Leave the database empty again, so that the next start (with the seed fixed)
            // applies it, rather than finding a half-seeded database and skipping it.
            if let Err(reset) = state.store().reset(dmsync_core::snapshots::ResetScope::All).await {
                tracing::error!(error = %reset, "could not empty the database after the failed seed");
            }
            shutdown.cancel();
            let _ = server.await;
            anyhow::bail!("--seed: {e}");
        }
    }
    server.await.context("the server task")?
}

/// Writes the banner once and flushes it; a closed stdout (a supervisor that stopped reading)
/// must not take the server down, so write errors are ignored.
fn print_banner(banner: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes());
    let _ = out.flush();
}

/// `dmsync ca`: the CA certificate on stdout, read (or created) through the store directly,
/// since no server need be running.
async fn print_ca(args: CaArgs) -> anyhow::Result<()> {
    let store =
        dmsync_store::connect(&args.db).await.map_err(|e| anyhow::anyhow!("opening the database {}: {e}", args.db))?;
    let authority =
        dmsync_server::tls::CertificateAuthority::load_or_create(store.as_ref(), time::OffsetDateTime::now_utc()).await;
    store.close().await;
    use std::io::Write;
    std::io::stdout().write_all(authority?.ca_pem().as_bytes())?;
    Ok(())
}

/// mimalloc instead of glibc's allocator: a request makes dozens of short-lived allocations,
/// and glibc's malloc and free were about a sixth of a rejected sync's instructions
/// (docs/PERFORMANCE.md). The benchmark's bare handler uses it too, so ratios stay fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await.map(|()| std::process::ExitCode::SUCCESS),
        Command::Ca(args) => print_ca(args).await.map(|()| std::process::ExitCode::SUCCESS),
        Command::Token(args) => Ok(cli::finish(cli::print_token(args).await)),
        Command::Autopilot(args) => Ok(cli::finish(cli::autopilot::run(args).await)),
        Command::Exchange(args) => Ok(cli::finish(cli::exchange::run(args).await)),
        Command::Reset(args) => Ok(cli::finish(cli::admin::reset(args).await)),
        Command::Snapshot(args) => Ok(cli::finish(cli::admin::snapshot(args).await)),
        Command::Seed(args) => Ok(cli::finish(cli::admin::seed(args).await)),
        Command::Requests(args) => Ok(cli::finish(cli::requests::run(args).await)),
        Command::Throttling(args) => Ok(cli::finish(cli::throttling::run(args).await)),
    }
}
