//! The dmsync server: Graph routing and error bodies, the built-in identity provider and token
//! checks, the admin API, and the background workers. `Application::build` binds the port
//! (0 in tests) and returns before serving, so callers learn the address first.

pub mod admin;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod console;
pub mod control;
pub mod error;
pub mod exchange_scheduler;
pub mod exchange_source;
pub mod http;
pub mod jobs;
pub mod membership;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod registrations;
pub mod resources;
pub mod serve;
pub mod settings_cache;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceBuilder};

use dmsync_core::clock::OffsetClock;

pub use config::Config;

use dmsync_core::Store;

use crate::auth::external::ExternalKeys;
use crate::auth::idp::Issuer;
use crate::auth::keys::KeyRing;
use crate::auth::{KnownTenants, Verifier, VerifierParts};
use crate::error::ApiError;
use crate::http::routing::{RouteTable, canonicalize_request};
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    /// Set with `--tls`: the listener serves HTTPS with this configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    router: console::Front,
    route_table: Arc<RouteTable>,
    /// The forward proxy's listener (`--proxy-listen`) and the TLS it terminates.
    proxy: Option<ProxyListener>,
    /// Held for the life of the process: one dmsync process per SQLite file.
    _db_lock: Option<std::fs::File>,
    /// Whether this start seeded the development identities.
    pub seeded: bool,
}

struct ProxyListener {
    listener: TcpListener,
    address: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    ca_pem: String,
}

/// Takes an exclusive lock next to a SQLite database file, so that a second dmsync process on
/// the same file fails at start instead of requeueing the first one's running jobs.
fn lock_sqlite_file(db: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = db.strip_prefix("sqlite://").or_else(|| db.strip_prefix("sqlite:")) else {
        return Ok(None);
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("another dmsync process is using {path} (lock file {lock_path} is held)")
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// How soon a replica adopts a clock advance made through another replica.
const CLOCK_FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// On a shared database other replicas may advance the Clock: adopt their offset, and wake the
/// workers and the scheduler when time moved, as a local advance does.
async fn follow_shared_clock(state: AppState) {
    loop {
        tokio::select! {
            _ = state.shutdown().cancelled() => return,
            _ = tokio::time::sleep(CLOCK_FOLLOW_INTERVAL) => {}
        }
        match state.store().clock_offset().await {
            Ok(offset) => state.follow_clock(offset),
            Err(e) => tracing::warn!(error = %e, "could not read the shared clock offset"),
        }
    }
}

/// Graph's errors for the paths and methods `routes` does not have, and `layer` around each
/// route and the fallback. `layer` is the request pipeline (`http::pipeline`: the journal when
/// it has it, the request context, the `Host` check, throttling and faults), with whatever else
/// the routes need in the same layer: `Router::layer` wraps every route in a boxed service of
/// its own per call, and each box is a share of a small request's cost.
fn graph_stack<L>(routes: Router<AppState>, table: Arc<RouteTable>, layer: L) -> Router<AppState>
where
    L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<Request> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Request>>::Response: IntoResponse + 'static,
    <L::Service as tower::Service<Request>>::Error: Into<std::convert::Infallible> + 'static,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    method_not_allowed(routes)
        .fallback(move |request: Request| {
            let table = table.clone();
            async move {
                let path = request.uri().path();
                let mut response = table.unmatched(path).into_response();
                response.extensions_mut().insert(control::journal::UnknownRoute(table.nearest(path)));
                response
            }
        })
        .layer(layer)
}

/// Graph's error for a method that a path does not have.
fn method_not_allowed(routes: Router<AppState>) -> Router<AppState> {
    routes.method_not_allowed_fallback(|method: Method| async move { ApiError::MethodNotAllowed(method) })
}

impl Application {
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Application> {
        config.validate()?;
        let metrics_handle = metrics::install();
        let db_lock = lock_sqlite_file(&config.db)?;
        let backend = dmsync_store::connect(&config.db)
            .await
            .map_err(|e| anyhow::anyhow!("opening the database {}: {e}", config.db))?;
        let clock = Arc::new(OffsetClock::new(backend.clock_offset().await?));
        let keys = KeyRing::load_or_start_creating(backend.clone(), clock.clone(), shutdown.clone()).await?;
        let seeded = bootstrap::seed_if_empty(backend.as_ref(), dmsync_core::Clock::now(clock.as_ref())).await?;
        if backend.topology() == dmsync_core::store::Topology::SingleNode {
            let requeued = backend.requeue_running_jobs().await?;
            if requeued > 0 {
                tracing::info!(jobs = requeued, "requeued jobs left running by a previous process");
            }
        }
        // A process that died between a change's commit and its request for an evaluation or a
        // pass lost that request; both jobs are idempotent, so every process asks again at start.
        let recovery = backend
            .request_recovery_passes(
                dmsync_core::Clock::now(clock.as_ref()),
                &membership::evaluation_job(),
                &jobs::assign_deployment_profiles::AssignDeploymentProfiles::job(),
            )
            .await?;
        if recovery > 0 {
            tracing::info!(jobs = recovery, "asked for membership evaluations and profile assignment passes");
        }
        let external = match &config.external_issuer {
            Some(issuer) => {
                let external = Arc::new(ExternalKeys::new(issuer.clone()));
                match external.refresh().await {
                    Ok(n) => tracing::info!(keys = n, url = %issuer.jwks_url, "external JWKS loaded"),
                    Err(e) => tracing::warn!(error = %e, "external JWKS not loaded yet; will retry"),
                }
                let refresher = external.clone();
                let token = shutdown.clone();
                tokio::spawn(async move { refresher.refresh_periodically(token).await });
                Some(external)
            }
            None => None,
        };
        let single_node = backend.topology() == dmsync_core::store::Topology::SingleNode;
        let directory: Arc<dyn Store> = backend.clone();
        // Another replica's reset or restore may delete a tenant, so replicas re-check now and then.
        let tenants =
            Arc::new(KnownTenants::new(directory.clone(), (!single_node).then_some(std::time::Duration::from_secs(2))));
        let verifier = Verifier::new(VerifierParts {
            keys: keys.clone(),
            store: directory.clone(),
            clock: clock.clone(),
            tenants: tenants.clone(),
            profile: config.permission_profile,
            external,
        });
        let issuer = Issuer::new(keys.clone(), clock.clone(), directory.clone());
        // Certificates are dated on the system clock: clients check them against their own.
        let certificate_authority = Arc::new(
            tls::CertificateAuthority::load_or_create(directory.as_ref(), time::OffsetDateTime::now_utc())
                .await
                .map_err(|e| anyhow::anyhow!("loading the local certificate authority: {e:#}"))?,
        );
        let tls = match &config.tls {
            None => None,
            Some(config::TlsCertificate::Operator { cert, key }) => {
                Some(tls::server_config(tls::operator_certificate(cert, key)?))
            }
            Some(config::TlsCertificate::LocalCa { .. }) => {
                let names = tls::NamePolicy::Fixed(config.tls_names());
                Some(tls::server_config(certificate_authority.resolver(names)))
            }
        };

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("listening on {}: {e}", config.listen))?;
        let address = listener.local_addr()?;
        let proxy = match config.proxy_listen {
            Some(proxy_listen) => {
                let listener = TcpListener::bind(proxy_listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("listening for the proxy on {proxy_listen}: {e}"))?;
                let address = listener.local_addr()?;
                if config.proxy_pass_through && !address.ip().is_loopback() {
                    tracing::warn!(
                        %address,
                        "the proxy tunnels other hosts (--proxy-pass-through) and listens beyond loopback: \
                         anyone who reaches it can use it to reach port 443 anywhere this host can"
                    );
                }
                // A leaf per Microsoft host the client names, from the CA `/_dmsync/ca.pem` serves.
                let hosts = tls::NamePolicy::Allowed(Arc::new(proxy::is_microsoft_host));
                let tls = tls::server_config(certificate_authority.resolver(hosts));
                Some(ProxyListener { listener, address, tls, ca_pem: certificate_authority.ca_pem().to_owned() })
            }
            None => None,
        };
        let state = AppState::new(state::Parts {
            config,
            backend,
            clock,
            keys,
            verifier,
            issuer,
            tenants,
            certificate_authority,
            single_node,
            shutdown,
        });

        let (graph, route_table) = RouteTable::build(resources::graph_routes());
        let route_table = Arc::new(route_table);
        // The fault rules of `--faults`, whose operation names can be checked now.
        state.faults().set_routes(route_table.clone());
        for rule in state.config().faults.clone() {
            state.faults().install(rule).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
        }
        let body_limit = DefaultBodyLimit::max(state.config().max_body_bytes);
        // What runs the requests inside a `$batch`: the Graph routes behind the same layers.
        let (batchable, batch_table) = RouteTable::build(resources::batchable_routes());
        let batch_table = Arc::new(batch_table);
        let batch_layer = ServiceBuilder::new().layer(http::pipeline::PipelineLayer::new(&state)).layer(body_limit);
        let dispatcher = resources::batch::Dispatcher::new(
            graph_stack(batchable, batch_table.clone(), batch_layer).with_state(state.clone()),
            batch_table,
        );
        // The journal, when on, around the main router only, so a `$batch` is one entry, as its
        // client sent it. The Graph routes have the pipeline, the `$batch` dispatcher and the
        // body limit in one layer; the other routes (and the fallback) the pipeline alone.
        let pipeline = http::pipeline::PipelineLayer::journalled(&state);
        let graph = method_not_allowed(graph)
            .layer(ServiceBuilder::new().layer(pipeline.clone()).layer(axum::Extension(dispatcher)).layer(body_limit));
        let others = Router::new()
            .merge(admin::router(state.clone()))
            .merge(auth::idp::router())
            .merge(ops::router(metrics_handle))
            .merge(http::openapi::router(&route_table))
            .merge(tls::router());
        let router = graph_stack(others, route_table.clone(), pipeline).merge(graph).with_state(state.clone());
        // In front of everything: the console's pages call the whole router behind them.
        let router = console::mount(router, &state);
        Ok(Application { listener, address, tls, state, router, route_table, proxy, _db_lock: db_lock, seeded })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://ADDRESS` with `--tls`, `http://ADDRESS` without.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// The forward proxy's bound address, when `--proxy-listen` is set.
    pub fn proxy_address(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(|p| p.address)
    }

    /// The PEM of the certificate authority whose leaves the proxy presents, which its clients
    /// must trust (the one `/_dmsync/ca.pem` serves).
    pub fn proxy_ca_pem(&self) -> Option<&str> {
        self.proxy.as_ref().map(|p| p.ca_pem.as_str())
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then drains: stop accepting, let requests
    /// in flight finish and jobs reach a safe point, within the shutdown deadline; then close
    /// the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { listener, tls, state, router, route_table, proxy, _db_lock, .. } = self;
        let mut workers = jobs::spawn_workers(&state);
        workers.push(tokio::spawn(exchange_scheduler::run_scheduler(state.clone())));
        if !state.is_single_node() {
            workers.push(tokio::spawn(follow_shared_clock(state.clone())));
        }
        let canonicalize = canonicalize_request(route_table);
        let service = tower::util::MapRequestLayer::new(canonicalize).layer(router);
        let mut connections =
            serve::ConnectionServer::new(service.clone(), serve::Timeouts::from_config(state.config()));
        if tls.is_some() {
            connections = connections.with_scheme(axum::http::uri::Scheme::HTTPS);
        }
        // A connection over the cap is answered by this router alone, so its 503 is rendered
        // by the request context like every other error; so is the 400 of a plain-HTTP request
        // sent to the TLS port.
        let refusal = |error: fn() -> ApiError| {
            Router::new()
                .fallback(move || async move { error() })
                .layer(axum::middleware::from_fn_with_state(state.clone(), http::context::request_context))
                .with_state(state.clone())
        };
        let deadline = state.config().header_read_timeout;
        let refuser = Arc::new(serve::Refuser::new(refusal(|| ApiError::TooManyConnections), deadline));
        let tls = tls.map(|config| {
            Arc::new(serve::TlsPort {
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                handshake_timeout: deadline,
                plain_http: Arc::new(serve::Refuser::new(refusal(|| ApiError::PlainHttpOnTlsPort), deadline)),
            })
        });
        // The proxy is a listener of its own with the same cap and timeouts, serving the same
        // router inside its tunnels; it drains with the main listener.
        let proxying = proxy.map(|proxy| {
            let server = Arc::new(proxy::ProxyServer::new(
                service.clone(),
                serve::Timeouts::from_config(state.config()),
                proxy.tls,
                state.config().proxy_pass_through,
                state.shutdown().clone(),
            ));
            let accepting = serve::accept_loop(
                proxy.listener,
                server,
                refuser.clone(),
                None,
                state.config().max_connections,
                state.shutdown().clone(),
            );
            tokio::spawn(async move { accepting.await.shutdown().await })
        });
        let accepting = serve::accept_loop(
            listener,
            Arc::new(connections),
            refuser,
            tls,
            state.config().max_connections,
            state.shutdown().clone(),
        );
        let server = tokio::spawn(async move { accepting.await.shutdown().await });

        state.shutdown().cancelled().await;
        let deadline = state.config().shutdown_timeout;
        let drained = tokio::time::timeout(deadline, async {
            let _ = server.await;
            if let Some(proxying) = proxying {
                let _ = proxying.await;
            }
            for worker in workers {
                let _ = worker.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(deadline = ?deadline, "shutdown deadline passed; stopping with work in flight");
        }
        state.store().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
