//! The hostname-preserving forward proxy (`serve --proxy-listen`). Tools that hard-code
//! `https://graph.microsoft.com` and `https://login.microsoftonline.com` reach dmsync through
//! `HTTPS_PROXY`: for a `CONNECT` to one of Microsoft's Graph or sign-in hosts on port 443 the
//! proxy answers `200 Connection Established`, terminates TLS itself with a certificate for that
//! name, and serves the decrypted stream with the main router through [`ConnectionServer`], so
//! routes, limits and timeouts are the main listener's, and the absolute URLs dmsync writes
//! name the host the client asked for.
//!
//! Everything else is refused with a one-line reason: another host (unless
//! `--proxy-pass-through`, which tunnels it unchanged), a port other than 443, and plain-HTTP
//! requests. Those answers are the proxy's own, not Graph's: they come before any Graph host is
//! reached, as a corporate proxy's refusal does, so they are plain text and not Graph bodies.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use crate::serve::{ConnectionServer, NoteReads, ServeConnection, Timeouts, TrackedIo};

/// The hosts the proxy answers for itself: Graph and the sign-in service of each of Microsoft's
/// clouds (worldwide, US Government and DoD, China).
pub const MICROSOFT_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "login.microsoftonline.com",
    "login.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "login.microsoftonline.us",
    "microsoftgraph.chinacloudapi.cn",
    "login.chinacloudapi.cn",
];

/// The only port the proxy opens tunnels to: anything else could reach services that are not
/// HTTPS (mail, databases) and make it a relay.
pub const PROXIED_PORT: u16 = 443;

/// How long a pass-through tunnel may take to connect to its target.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Refused targets remembered, so each is logged once; past this, refusals are logged at debug
/// level only, so that a client trying many names cannot grow the set or flood the log.
const REFUSED_TARGETS_REMEMBERED: usize = 1024;

/// The longest refused target kept in that set.
const REFUSED_TARGET_CHARS: usize = 255;

/// Marks a request that arrived through a proxy tunnel, with the host the tunnel was opened
/// to; `http/host.rs` refuses one whose `Host` names another (the admin API's loopback names
/// among them).
#[derive(Clone, Debug)]
pub struct TunnelHost(pub Arc<str>);

/// The host a `CONNECT` names, compared as DNS compares it: without case or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Whether the proxy answers for `host` itself.
pub fn is_microsoft_host(host: &str) -> bool {
    let host = normalize_host(host);
    MICROSOFT_HOSTS.contains(&host.as_str())
}

/// The proxy listener's server: the front (a `CONNECT`'s HTTP/1.1 head), then the tunnel.
pub struct ProxyServer<S> {
    /// The main router, as `lib.rs` serves it on `--listen`.
    service: S,
    timeouts: Timeouts,
    tls: TlsAcceptor,
    front: http1::Builder,
    policy: Arc<Policy>,
    shutdown: CancellationToken,
}

/// What the front decides about each request.
struct Policy {
    pass_through: bool,
    refused: Mutex<HashSet<String>>,
    /// Where pass-through tunnels connect instead of their target; set only by this module's
    /// tests, which have no port 443 to tunnel to. No flag reaches it.
    upstream_override: Option<SocketAddr>,
}

/// A tunnel the front agreed to, opened once hyper hands over the connection.
struct Granted {
    upgrade: OnUpgrade,
    tunnel: Tunnel,
}

enum Tunnel {
    Intercept(Arc<str>),
    PassThrough(TcpStream),
}

enum Decision {
    Intercept(Arc<str>),
    PassThrough { host: String, port: u16 },
    Refuse(StatusCode, String),
}

impl<S> ProxyServer<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    pub fn new(
        service: S,
        timeouts: Timeouts,
        tls: Arc<rustls::ServerConfig>,
        pass_through: bool,
        shutdown: CancellationToken,
    ) -> ProxyServer<S> {
        let mut front = http1::Builder::new();
        // A proxy's requests are a head and nothing else; hyper's own head timer also closes a
        // keep-alive connection idle for that long, which is what the front wants.
        front
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read)
            .max_headers(crate::http::context::MAX_HEADER_COUNT)
            .max_buf_size(crate::http::context::MAX_HEADER_BYTES);
        let policy = Policy { pass_through, refused: Mutex::new(HashSet::new()), upstream_override: None };
        ProxyServer { service, timeouts, tls: TlsAcceptor::from(tls), front, policy: Arc::new(policy), shutdown }
    }

    #[cfg(test)]
    fn with_upstream_override(mut self, address: SocketAddr) -> Self {
        Arc::get_mut(&mut self.policy).expect("not shared yet").upstream_override = Some(address);
        self
    }

    async fn serve<IO>(&self, stream: IO, watcher: Watcher)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let granted: Arc<Mutex<Option<Granted>>> = Arc::default();
        let service = {
            let policy = self.policy.clone();
            let granted = granted.clone();
            hyper::service::service_fn(move |request| {
                let policy = policy.clone();
                let granted = granted.clone();
                async move { Ok::<_, Infallible>(policy.answer(request, &granted).await) }
            })
        };
        let connection = self.front.serve_connection(TokioIo::new(stream), service).with_upgrades();
        tokio::pin!(connection);
        let mut draining = false;
        let ended = loop {
            tokio::select! {
                ended = connection.as_mut() => break ended,
                _ = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "proxy connection ended with an error");
        }
        let granted = granted.lock().expect("not poisoned").take();
        let Some(Granted { upgrade, tunnel }) = granted else { return };
        let upgraded = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(error = %e, "proxy tunnel was not handed over");
                return;
            }
        };
        match tunnel {
            Tunnel::Intercept(host) => self.intercept(upgraded, host, watcher).await,
            Tunnel::PassThrough(upstream) => self.pass_through(upgraded, upstream).await,
        }
    }

    /// Terminates TLS for a Microsoft host and serves what is inside with the main router.
    async fn intercept(&self, io: TokioIo<Upgraded>, host: Arc<str>, watcher: Watcher) {
        let stream = match tokio::time::timeout(self.timeouts.header_read, self.tls.accept(io)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                // Most often a client that does not trust dmsync's CA; it says so itself.
                tracing::info!(host = %host, error = %e, "TLS handshake through the proxy failed");
                return;
            }
            Err(_) => {
                tracing::debug!(host = %host, "TLS handshake through the proxy timed out");
                return;
            }
        };
        let tag = TunnelHost(host);
        let service = tower::util::MapRequestLayer::new(move |mut request: Request| {
            request.extensions_mut().insert(tag.clone());
            request
        })
        .layer(self.service.clone());
        ConnectionServer::new(service, self.timeouts)
            .with_scheme(http::uri::Scheme::HTTPS)
            .serve(stream, watcher)
            .await;
    }

    /// Copies bytes both ways between the client and the real host until either closes, the
    /// tunnel is idle for the idle timeout, or the server stops.
    async fn pass_through(&self, client: TokioIo<Upgraded>, upstream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let mut client = TrackedIo { inner: client, activity: activity.clone() };
        let mut upstream = TrackedIo { inner: upstream, activity: activity.clone() };
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "pass-through tunnel ended with an error");
                }
            }
            () = activity.idle_for(self.timeouts.idle) => tracing::debug!("closed an idle pass-through tunnel"),
            () = self.shutdown.cancelled() => {}
        }
    }
}

impl<S> ServeConnection for ProxyServer<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn serve_connection<IO>(&self, io: IO, watcher: Watcher) -> impl Future<Output = ()> + Send
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve(io, watcher)
    }
}

impl Policy {
    async fn answer(&self, mut request: http::Request<Incoming>, granted: &Mutex<Option<Granted>>) -> Response {
        if request.method() != Method::CONNECT {
            let Some(target) = request.uri().authority() else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "This is dmsync's proxy listener (--proxy-listen): use it as HTTPS_PROXY, and send Graph \
                     requests to dmsync's --listen address directly.",
                );
            };
            let reason = format!(
                "dmsync's proxy tunnels HTTPS only (CONNECT to port {PROXIED_PORT}); the plain-HTTP request for \
                 {target} is refused: use https:// URLs."
            );
            self.note_refused(target.as_str(), &reason);
            return plain(StatusCode::FORBIDDEN, &reason);
        }
        let target = request.uri().authority().cloned();
        match self.decide(target.as_ref()) {
            Decision::Refuse(status, reason) => {
                self.note_refused(target.as_ref().map_or("", Authority::as_str), &reason);
                plain(status, &reason)
            }
            Decision::Intercept(host) => {
                let upgrade = hyper::upgrade::on(&mut request);
                *granted.lock().expect("not poisoned") = Some(Granted { upgrade, tunnel: Tunnel::Intercept(host) });
                connection_established()
            }
            Decision::PassThrough { host, port } => match self.connect(&host, port).await {
                Ok(upstream) => {
                    let _ = upstream.set_nodelay(true);
                    let upgrade = hyper::upgrade::on(&mut request);
                    *granted.lock().expect("not poisoned") =
                        Some(Granted { upgrade, tunnel: Tunnel::PassThrough(upstream) });
                    connection_established()
                }
                Err(e) => {
                    tracing::info!(host = %host, port, error = %e, "pass-through could not reach its target");
                    let status = if e.kind() == std::io::ErrorKind::TimedOut {
                        StatusCode::GATEWAY_TIMEOUT
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    plain(status, &format!("dmsync's proxy could not connect to {host}:{port}: {e}."))
                }
            },
        }
    }

    fn decide(&self, target: Option<&Authority>) -> Decision {
        let Some((target, port)) = target.and_then(|t| Some((t, t.port_u16()?))) else {
            return Decision::Refuse(
                StatusCode::BAD_REQUEST,
                "A CONNECT names its target as host:port (RFC 9110, section 9.3.6).".into(),
            );
        };
        if port != PROXIED_PORT {
            return Decision::Refuse(
                StatusCode::FORBIDDEN,
                format!("dmsync's proxy tunnels only port {PROXIED_PORT}; the CONNECT to {target} is refused."),
            );
        }
        let host = normalize_host(target.host());
        if MICROSOFT_HOSTS.contains(&host.as_str()) {
            return Decision::Intercept(host.into());
        }
        if self.pass_through {
            return Decision::PassThrough { host, port };
        }
        Decision::Refuse(
            StatusCode::FORBIDDEN,
            format!(
                "dmsync's proxy answers only for Microsoft's Graph and sign-in hosts; the CONNECT to {target} is \
                 refused (start dmsync with --proxy-pass-through to tunnel other hosts unchanged)."
            ),
        )
    }

    async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let connecting = async {
            match self.upstream_override {
                Some(address) => TcpStream::connect(address).await,
                // An IPv6 literal comes bracketed in an authority, and unbracketed to the resolver.
                None => {
                    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                    TcpStream::connect((bare, port)).await
                }
            }
        };
        tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the connection timed out")))
    }

    /// Logs a refused target the first time it is seen.
    fn note_refused(&self, target: &str, reason: &str) {
        let mut refused = self.refused.lock().expect("not poisoned");
        if refused.contains(target) {
            return;
        }
        if refused.len() < REFUSED_TARGETS_REMEMBERED {
            refused.insert(target.chars().take(REFUSED_TARGET_CHARS).collect());
            tracing::warn!(target, reason, "the proxy refused a target");
        } else {
            tracing::debug!(target, reason, "the proxy refused a target");
        }
    }
}

/// The proxy's own refusal: one line of plain text.
fn plain(status: StatusCode, reason: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{reason}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn connection_established() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Connection Established"));
    response
}

/// When a pass-through tunnel last carried a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { opened: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    /// Resolves once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl NoteReads for Activity {
    fn bytes_read(&self) {
        self.last_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pass_through: bool) -> Policy {
        Policy { pass_through, refused: Mutex::new(HashSet::new()), upstream_override: None }
    }

    fn decide(policy: &Policy, target: &str) -> Decision {
        policy.decide(Some(&target.parse().unwrap()))
    }

    #[test]
    fn microsoft_hosts_are_intercepted_whatever_their_case_or_trailing_dot() {
        for target in [
            "graph.microsoft.com:443",
            "Graph.Microsoft.COM:443",
            "login.microsoftonline.com.:443",
            "dod-graph.microsoft.us:443",
        ] {
            assert!(matches!(decide(&policy(false), target), Decision::Intercept(_)), "{target}");
        }
        assert!(is_microsoft_host("LOGIN.chinacloudapi.cn."));
        assert!(!is_microsoft_host("graph.microsoft.com.evil.example"));
    }

    #[test]
    fn other_hosts_and_ports_are_refused_naming_the_reason() {
        let refused = |policy: &Policy, target: &str| match decide(policy, target) {
            Decision::Refuse(status, reason) => (status, reason),
            _ => panic!("{target} was not refused"),
        };
        let (status, reason) = refused(&policy(false), "example.com:443");
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(reason.contains("--proxy-pass-through"), "{reason}");
        for pass_through in [false, true] {
            let (status, reason) = refused(&policy(pass_through), "graph.microsoft.com:80");
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert!(reason.contains("only port 443"), "{reason}");
            let (status, _) = refused(&policy(pass_through), "example.com:22");
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        assert!(matches!(decide(&policy(true), "example.com:443"), Decision::PassThrough { port: 443, .. }));
        assert!(matches!(policy(false).decide(None), Decision::Refuse(StatusCode::BAD_REQUEST, _)));
        assert!(matches!(decide(&policy(false), "graph.microsoft.com"), Decision::Refuse(StatusCode::BAD_REQUEST, _)));
    }

    #[test]
    fn the_refused_set_is_bounded() {
        let policy = policy(false);
        for i in 0..REFUSED_TARGETS_REMEMBERED + 10 {
            policy.note_refused(&format!("host{i}.example:443"), "refused");
        }
        policy.note_refused(&"x".repeat(10_000), "refused");
        assert_eq!(policy.refused.lock().unwrap().len(), REFUSED_TARGETS_REMEMBERED);
    }

    /// The proxy's TLS, as `Application::build` makes it: a leaf per Microsoft host from the
    /// local CA of a fresh database.
    async fn microsoft_tls() -> Arc<rustls::ServerConfig> {
        let store = dmsync_store::connect("sqlite::memory:").await.unwrap();
        let ca = crate::tls::CertificateAuthority::load_or_create(store.as_ref(), time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        crate::tls::server_config(ca.resolver(crate::tls::NamePolicy::Allowed(Arc::new(is_microsoft_host))))
    }

    #[tokio::test]
    async fn the_proxy_speaks_h2_and_http1_inside_its_tunnels() {
        assert_eq!(microsoft_tls().await.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    /// Pass-through, end to end over loopback: the test's own "upstream" stands in for a real
    /// host on port 443, which this machine does not have.
    #[tokio::test]
    async fn pass_through_tunnels_bytes_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_address = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 5];
            socket.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            socket.write_all(b"world").await.unwrap();
        });
        let service = tower::service_fn(|_: Request| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
        let timeouts = Timeouts {
            header_read: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            body_read: Duration::from_secs(5),
            upload_stall: Duration::from_secs(5),
        };
        let tls = microsoft_tls().await;
        let shutdown = CancellationToken::new();
        let proxy = Arc::new(
            ProxyServer::new(service, timeouts, tls, true, shutdown.clone()).with_upstream_override(upstream_address),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let watcher = graceful.watcher();
        let serving = tokio::spawn({
            let proxy = proxy.clone();
            async move {
                let (stream, _) = listener.accept().await.unwrap();
                proxy.serve(stream, watcher).await;
            }
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 Connection Established\r\n"), "{head}");
        client.write_all(b"hello").await.unwrap();
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"world");
        drop(client);
        serving.await.unwrap();
    }
}
