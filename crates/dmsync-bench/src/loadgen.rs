//! dmsync's own HTTP/1.1 load generator, for what wrk cannot do: HTTPS that trusts dmsync's
//! local CA, tunnels through dmsync's proxy (`CONNECT`, then TLS inside the tunnel), and a new
//! connection per request to count TLS handshakes. It measures plain HTTP too, so that a ratio
//! between two transports compares loads made by the same client code.
//!
//! Each of N tasks owns one connection at a time and sends one GET after another on it,
//! reading each whole response before the next, as wrk does. Every loop ends at its deadline,
//! and every target is an address on this machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, HOST, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::probe;

/// How long after a load's end its last responses may take before the load fails.
const STALL_GRACE: Duration = Duration::from_secs(30);

/// How the generator reaches the server.
#[derive(Clone)]
pub enum Route {
    /// Plain HTTP to the address.
    Plain,
    /// TLS to the address, with the target's server name as SNI.
    Tls(Arc<rustls::ClientConfig>),
    /// A `CONNECT` to the target's host on port 443 through the proxy at the address, then TLS
    /// inside the tunnel with the host as SNI, as a tool with `HTTPS_PROXY` does.
    Proxy(Arc<rustls::ClientConfig>),
}

/// Whether each connection carries requests until the deadline or only one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    KeepAlive,
    /// A new TCP connection (and TLS handshake) per request, with `Connection: close`.
    ConnectionPerRequest,
}

/// One URL to load and how to reach it.
#[derive(Clone)]
pub struct Target {
    /// The server's address, or the proxy's for [`Route::Proxy`].
    pub address: SocketAddr,
    pub route: Route,
    /// The `Host` header.
    pub host: String,
    /// The name the TLS certificate is checked against (sent as SNI unless it is an IP
    /// address) and, through a proxy, the host the tunnel is opened to, on port 443.
    pub server_name: String,
    /// The path and query requested.
    pub path: String,
    pub bearer_token: String,
}

/// A client configuration that trusts only `ca_pem` and offers only HTTP/1.1 by ALPN (so the
/// server's HTTP/2 preference does not apply), with rustls's default provider, protocol
/// versions and key exchange groups. `resume` keeps sessions for resumed handshakes.
pub fn client_config(ca_pem: &str, resume: bool) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.context("the CA PEM")?)?;
    }
    ensure!(!roots.is_empty(), "the CA PEM holds no certificate");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// What one load measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub requests: u64,
    pub non_2xx: u64,
    pub response_bytes: u64,
    /// Connections opened, and of them the TLS handshakes that were full and resumed.
    pub connections: u64,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
    /// The TLS parameters of the last connection: version, cipher suite, key exchange group.
    pub tls: Option<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU seconds (user and system) of the server process and of this process.
    pub server_cpu: f64,
    pub client_cpu: f64,
}

impl Measured {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn connections_per_second(&self) -> f64 {
        self.connections as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Server CPU per request, in microseconds: the cost of a transport that the machine's
    /// noise moves less than a rate.
    pub fn server_cpu_per_request_us(&self) -> f64 {
        self.server_cpu * 1e6 / (self.requests.max(1) as f64)
    }

    pub fn client_cpu_per_request_us(&self) -> f64 {
        self.client_cpu * 1e6 / (self.requests.max(1) as f64)
    }
}

/// What one task counted.
#[derive(Default)]
struct Tally {
    requests: u64,
    non_2xx: u64,
    response_bytes: u64,
    connections: u64,
    full_handshakes: u64,
    resumed_handshakes: u64,
    tls: Option<String>,
    latencies_us: Vec<u32>,
}

/// The parts of a request that do not change, made once.
struct Prepared {
    target: Target,
    uri: Uri,
    host: HeaderValue,
    authorization: HeaderValue,
    server_name: ServerName<'static>,
    connect_head: Vec<u8>,
}

/// Loads `target` from `connections` tasks for `duration`; `server_pid` is the process whose
/// CPU time is measured beside.
pub async fn load(
    target: &Target,
    reuse: Reuse,
    connections: usize,
    duration: Duration,
    server_pid: u32,
) -> Result<Measured> {
    let prepared = Arc::new(Prepared {
        target: target.clone(),
        uri: target.path.parse().with_context(|| format!("the path {}", target.path))?,
        host: HeaderValue::from_str(&target.host)?,
        authorization: HeaderValue::from_str(&format!("Bearer {}", target.bearer_token))?,
        server_name: ServerName::try_from(target.server_name.clone())?,
        connect_head: format!("CONNECT {0}:443 HTTP/1.1\r\nHost: {0}:443\r\n\r\n", target.server_name).into_bytes(),
    });
    let server_before = cpu(&server_pid.to_string());
    let client_before = cpu("self");
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let prepared = prepared.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let outcome = match reuse {
                    Reuse::KeepAlive => connection(&prepared, &mut tally, false, deadline).await,
                    Reuse::ConnectionPerRequest => {
                        let mut outcome = Ok(());
                        while outcome.is_ok() && Instant::now() < deadline {
                            outcome = connection(&prepared, &mut tally, true, deadline).await;
                        }
                        outcome
                    }
                };
                outcome.map(|()| tally)
            })
        })
        .collect();
    // A response that never comes must not hold the benchmark: past the grace, the tasks still
    // running are ended and the load fails.
    let give_up = tokio::time::Instant::from_std(deadline + STALL_GRACE);
    let mut tallies = Vec::new();
    let mut tasks = tasks.into_iter();
    while let Some(mut task) = tasks.next() {
        match tokio::time::timeout_at(give_up, &mut task).await {
            Ok(joined) => tallies.push(joined.context("a load task panicked")??),
            Err(_) => {
                task.abort();
                tasks.for_each(|rest| rest.abort());
                bail!("a connection still waited for a response {STALL_GRACE:?} after the load's end");
            }
        }
    }
    let elapsed = started.elapsed();
    let server_cpu = cpu(&server_pid.to_string()) - server_before;
    let client_cpu = cpu("self") - client_before;

    let mut measured = Measured { elapsed, server_cpu, client_cpu, ..Measured::default() };
    let mut latencies = Vec::new();
    for tally in tallies {
        measured.requests += tally.requests;
        measured.non_2xx += tally.non_2xx;
        measured.response_bytes += tally.response_bytes;
        measured.connections += tally.connections;
        measured.full_handshakes += tally.full_handshakes;
        measured.resumed_handshakes += tally.resumed_handshakes;
        measured.tls = tally.tls.or(measured.tls);
        latencies.extend(tally.latencies_us);
    }
    ensure!(measured.requests > 0, "no request completed in {duration:?}");
    latencies.sort_unstable();
    let at = |q: f64| Duration::from_micros(latencies[((latencies.len() - 1) as f64 * q) as usize].into());
    measured.p50 = at(0.50);
    measured.p99 = at(0.99);
    Ok(measured)
}

fn cpu(pid: &str) -> f64 {
    let (user, system) = probe::cpu_seconds(pid);
    user + system
}

/// Opens a connection and sends GETs on it until `deadline`, or only one with `close`.
/// With `close`, a request's latency is the whole connection's, from the connect to the last
/// byte of the response.
async fn connection(prepared: &Prepared, tally: &mut Tally, close: bool, deadline: Instant) -> Result<()> {
    let opened = close.then(Instant::now);
    let stream = connect(prepared, tally).await?;
    tally.connections += 1;
    let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    // The connection is driven in this task beside the requests, as one future; it ends once
    // the requests are done and the sender is dropped.
    let requests = async {
        let outcome = async {
            loop {
                request(&mut sender, prepared, tally, close, opened).await?;
                if close || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        }
        .await;
        drop(sender);
        outcome
    };
    let (requested, ended) = tokio::join!(requests, connection);
    requested?;
    ended.context("the connection")?;
    Ok(())
}

async fn request(
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    prepared: &Prepared,
    tally: &mut Tally,
    close: bool,
    started: Option<Instant>,
) -> Result<()> {
    sender.ready().await.context("the connection closed")?;
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = prepared.uri.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, prepared.host.clone());
    headers.insert(AUTHORIZATION, prepared.authorization.clone());
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let started = started.unwrap_or_else(Instant::now);
    let response = sender.send_request(request).await.context("sending a GET")?;
    let success = response.status().is_success();
    let body = response.into_body().collect().await.context("reading a response body")?.to_bytes();
    tally.latencies_us.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    tally.requests += 1;
    tally.response_bytes += body.len() as u64;
    if !success {
        tally.non_2xx += 1;
    }
    Ok(())
}

/// A stream of any of the routes, so that every route goes through the same client code.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(prepared: &Prepared, tally: &mut Tally) -> Result<Box<dyn Stream>> {
    let target = &prepared.target;
    let tcp = TcpStream::connect(target.address).await.with_context(|| format!("connecting to {}", target.address))?;
    tcp.set_nodelay(true)?;
    let (tcp, config) = match &target.route {
        Route::Plain => return Ok(Box::new(tcp)),
        Route::Tls(config) => (tcp, config),
        Route::Proxy(config) => (open_tunnel(tcp, &prepared.connect_head).await?, config),
    };
    let tls = TlsConnector::from(config.clone())
        .connect(prepared.server_name.clone(), tcp)
        .await
        .context("the TLS handshake")?;
    let session = tls.get_ref().1;
    match session.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => tally.resumed_handshakes += 1,
        _ => tally.full_handshakes += 1,
    }
    if tally.tls.is_none() {
        tally.tls = Some(format!(
            "{:?}, {:?}, {:?}",
            session.protocol_version().context("no TLS version")?,
            session.negotiated_cipher_suite().context("no cipher suite")?.suite(),
            session.negotiated_key_exchange_group().context("no key exchange group")?.name(),
        ));
    }
    Ok(Box::new(tls))
}

/// Sends the `CONNECT` head and reads the proxy's answer, which must be a 200 and nothing
/// more: the proxy says nothing else until the client's TLS hello.
async fn open_tunnel(mut tcp: TcpStream, connect_head: &[u8]) -> Result<TcpStream> {
    tcp.write_all(connect_head).await?;
    let mut answer = Vec::with_capacity(128);
    let mut buffer = [0u8; 512];
    loop {
        let read = tcp.read(&mut buffer).await?;
        ensure!(read > 0, "the proxy closed the connection before answering the CONNECT");
        answer.extend_from_slice(&buffer[..read]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]);
            if !head.starts_with("HTTP/1.1 200") {
                bail!("the proxy refused the CONNECT: {head}");
            }
            ensure!(end + 4 == answer.len(), "the proxy sent bytes after its answer to the CONNECT");
            return Ok(tcp);
        }
        ensure!(answer.len() < 16 * 1024, "the proxy's answer to the CONNECT has no end");
    }
}
