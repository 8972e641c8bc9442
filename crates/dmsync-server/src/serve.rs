//! The accept loop and the per-connection server, over hyper-util: HTTP/1.1 and h2c on one port,
//! a cap on concurrent connections, and the timeouts that cut slow or idle clients (a request's
//! head, an idle keep-alive connection, a request's body).
//!
//! hyper's own head timer starts as soon as the server waits for a request, so it would also
//! close a keep-alive connection idle for longer than it; a watchdog per connection times the
//! head and idleness separately instead, from what the connection has received. Bodies are
//! timed by wrapping each request's body, which reports an expiry that `http/context.rs` turns
//! into Graph's 408.
//!
//! [`ConnectionServer::serve`] takes any `AsyncRead + AsyncWrite` stream, so a TLS acceptor can
//! wrap each accepted socket before it is served: with a [`TlsPort`] the accept loop does that
//! itself (`crate::tls::accept`), within the head timeout, and answers a plain-HTTP request sent
//! to the TLS port in plain HTTP.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::config::Config;
use crate::tls::Accepted;

/// hyper's ceilings on a request's head. They sit above ours (`http/context.rs`), so that a
/// request between the two is answered with Graph's body rather than hyper's empty one. The
/// header count is hyper's default, which is left unset on purpose: with any ceiling set, hyper
/// allocates and fills two arrays of that many fields for every request it parses (a measurable
/// share of a small GET, docs/PERFORMANCE.md), where its default lives on the stack unfilled.
pub const HYPER_MAX_HEADERS: usize = 100;
pub const HYPER_MAX_HEAD_BYTES: usize = 1024 * 1024;

/// Refusals in progress at once; past this an extra connection is closed without an answer,
/// so that refusing cannot itself use up the file descriptors the cap protects.
const REFUSALS_AT_ONCE: usize = 64;

/// The longest pause of the accept loop after an error such as `EMFILE`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
    pub body_read: Duration,
    pub upload_stall: Duration,
}

impl Timeouts {
    pub fn from_config(config: &Config) -> Timeouts {
        Timeouts {
            header_read: config.header_read_timeout,
            idle: config.idle_timeout,
            body_read: config.body_read_timeout,
            upload_stall: config.upload_stall_timeout,
        }
    }
}

/// The connection a request arrived on, a request extension set on every request a
/// [`ConnectionServer`] serves: its scheme (`https` on a TLS connection), which
/// `http/context.rs` writes absolute URLs with when nothing says otherwise, and the means to
/// close it without an answer, which a fault rule's `drop` uses. One extension rather than
/// one per fact: each is a box and a slot in the request's extension map.
#[derive(Clone, Debug)]
pub struct Connection {
    scheme: Scheme,
    /// Dropping the connection's future closes its socket and abandons every request on it.
    /// `None` for a request made in process, which has no connection of its own.
    dropper: Option<tokio_util::sync::CancellationToken>,
}

impl Connection {
    /// A request made in process (a `$batch` item, the console's calls) on behalf of one that
    /// arrived over `scheme`: the scheme, and no connection to close.
    pub fn in_process(scheme: Scheme) -> Connection {
        Connection { scheme, dropper: None }
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// Closes the connection, if the request has one of its own; whether it had.
    pub fn drop_now(&self) -> bool {
        self.dropper.as_ref().inspect(|dropper| dropper.cancel()).is_some()
    }
}

/// Serves connections with the application's service and the timeouts.
pub struct ConnectionServer<S> {
    builder: auto::Builder<TokioExecutor>,
    service: S,
    timeouts: Timeouts,
    scheme: Scheme,
}

impl<S> ConnectionServer<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    pub fn new(service: S, timeouts: Timeouts) -> ConnectionServer<S> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(HYPER_MAX_HEAD_BYTES);
        builder.http2().timer(TokioTimer::new()).max_header_list_size(HYPER_MAX_HEAD_BYTES as u32);
        ConnectionServer { builder, service, timeouts, scheme: Scheme::HTTP }
    }

    /// The scheme of the connections this server is given: `Scheme::HTTPS` when they are TLS
    /// streams. Plain HTTP unless set.
    pub fn with_scheme(self, scheme: Scheme) -> Self {
        ConnectionServer { scheme, ..self }
    }

    /// Serves one connection until the client closes it, a timeout cuts it, or a graceful
    /// shutdown (through `watcher`) has let its requests in flight finish.
    pub async fn serve<IO>(&self, io: IO, watcher: Watcher)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(TrackedIo { inner: io, activity: activity.clone() });
        let service = self.service.clone();
        let timeouts = self.timeouts;
        let requests = activity.clone();
        let dropped = tokio_util::sync::CancellationToken::new();
        let arrived_on = Connection { scheme: self.scheme.clone(), dropper: Some(dropped.clone()) };
        let hyper_service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let in_flight = requests.request_started();
            let mut request = with_body_deadline(request, timeouts);
            request.extensions_mut().insert(arrived_on.clone());
            let service = service.clone();
            async move {
                let response = service.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(|inner| GuardedBody { inner, _in_flight: in_flight }))
            }
        });
        let connection = watcher.watch(self.builder.serve_connection(io, hyper_service).into_owned());
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            reason = watchdog(&activity, timeouts) => {
                tracing::debug!(reason, "closed a connection");
            }
            _ = dropped.cancelled() => {
                tracing::debug!("dropped a connection, as a fault rule asked");
            }
        }
    }
}

/// Answers each connection over the cap with the refusal service's response (a 503), then
/// closes it.
pub struct Refuser<R> {
    builder: auto::Builder<TokioExecutor>,
    service: R,
    deadline: Duration,
}

impl<R> Refuser<R>
where
    R: Service<http::Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    R::Future: Send + 'static,
{
    pub fn new(service: R, deadline: Duration) -> Refuser<R> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(false);
        Refuser { builder, service, deadline }
    }

    async fn refuse<IO>(&self, stream: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let connection =
            self.builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(self.service.clone()));
        let _ = tokio::time::timeout(self.deadline, connection).await;
    }
}

/// What makes a listener HTTPS: the acceptor, the deadline of its handshake (the head timeout,
/// which the handshake precedes), and the refuser that answers a plain-HTTP request sent to it.
pub struct TlsPort<R> {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handshake_timeout: Duration,
    pub plain_http: Arc<Refuser<R>>,
}

impl<R> TlsPort<R>
where
    R: Service<http::Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    R::Future: Send + 'static,
{
    /// The handshake, then `then` on the TLS stream; a plain-HTTP request gets its refusal.
    async fn accept<F, Fut>(&self, stream: TcpStream, then: F)
    where
        F: FnOnce(Box<tokio_rustls::server::TlsStream<TcpStream>>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        match crate::tls::accept(&self.acceptor, stream, self.handshake_timeout).await {
            Accepted::Tls(stream) => then(stream).await,
            Accepted::PlainHttp(stream) => {
                tracing::debug!("plain HTTP request on the TLS port; answered 400");
                self.plain_http.refuse(stream).await;
            }
            Accepted::Failed => {}
        }
    }
}

/// What the accept loop hands each accepted connection to (after the TLS handshake, on a TLS
/// port): the HTTP server, or the proxy (`proxy.rs`), which serves the same router once it has
/// opened a tunnel.
pub trait ServeConnection: Send + Sync + 'static {
    fn serve_connection<IO>(&self, io: IO, watcher: Watcher) -> impl Future<Output = ()> + Send
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static;
}

impl<S> ServeConnection for ConnectionServer<S>
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

/// Accepts connections until `shutdown` is cancelled, serving at most `max_connections` at
/// once (over TLS when `tls` is given); returns the handle whose `shutdown()` drains the
/// connections still open.
pub async fn accept_loop<C, R>(
    listener: TcpListener,
    server: Arc<C>,
    refuser: Arc<Refuser<R>>,
    tls: Option<Arc<TlsPort<R>>>,
    max_connections: usize,
    shutdown: CancellationToken,
) -> GracefulShutdown
where
    C: ServeConnection,
    R: Service<http::Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    R::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            // The client gave up before we accepted; nothing is wrong with the listener.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors (or memory): pause, keep serving the connections
                // already open, and accept again once some have closed.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), ACCEPT_BACKOFF_MAX);
                tracing::warn!(error = %e, backoff = ?backoff, "accept failed; pausing before accepting again");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let server = server.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => tls.accept(stream, |stream| server.serve_connection(stream, watcher)).await,
                        None => server.serve_connection(stream, watcher).await,
                    }
                    drop(slot);
                });
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(refusal) => {
                    tracing::debug!(max_connections, "connection refused: at the connection cap");
                    let refuser = refuser.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(tls) => tls.accept(stream, |stream| refuser.refuse(stream)).await,
                            None => refuser.refuse(stream).await,
                        }
                        drop(refusal);
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
    graceful
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// What a connection has received and whether a request is in flight, for the watchdog.
/// Times are milliseconds since the connection opened.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    last_activity_ms: AtomicU64,
    /// When the first byte of the awaited request head arrived, or `NO_HEAD`.
    head_started_ms: AtomicU64,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
            // A new connection owes its first request's head from the moment it opens.
            head_started_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn received(&self) {
        let now = self.now_ms();
        self.last_activity_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started_ms.compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection is to be cut if nothing changes, and why; `None` while a request
    /// is in flight (its body has its own deadline).
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let idle = (self.at(self.last_activity_ms.load(Ordering::Relaxed)) + timeouts.idle, "idle timeout");
        match self.head_started_ms.load(Ordering::Relaxed) {
            NO_HEAD => Some(idle),
            started => {
                let head = (self.at(started) + timeouts.header_read, "header read timeout");
                Some(if head.0 < idle.0 { head } else { idle })
            }
        }
    }
}

/// A request in flight on a connection, until its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_activity_ms.store(activity.now_ms(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the connection has been idle, or has owed a request head, for too long.
///
/// Nothing wakes it when a request starts or ends (that was a wake-up of the connection's task
/// per request): it reads the connection's state when it wakes, and wakes at the nearest
/// deadline or after the shorter timeout, whichever is first. A deadline that starts while it
/// sleeps lies at least that long after the last wake-up, so the next one sees it in time, and
/// a connection is cut when its deadline passes, never later.
async fn watchdog(activity: &Activity, timeouts: Timeouts) -> &'static str {
    let period = timeouts.header_read.min(timeouts.idle);
    loop {
        let now = Instant::now();
        let wake = match activity.deadline(timeouts) {
            Some((deadline, reason)) if deadline <= now => return reason,
            Some((deadline, _)) => deadline.min(now + period),
            None => now + period,
        };
        tokio::time::sleep_until(wake).await;
    }
}

/// What hears of every read that brought bytes: a connection's watchdog here, a tunnel's idle
/// timer in the proxy.
pub(crate) trait NoteReads: Send + Sync {
    fn bytes_read(&self);
}

impl NoteReads for Activity {
    fn bytes_read(&self) {
        self.received();
    }
}

/// A stream that tells `activity` of each read that brought bytes.
pub(crate) struct TrackedIo<IO, N> {
    pub(crate) inner: IO,
    pub(crate) activity: Arc<N>,
}

impl<IO: AsyncRead + Unpin, N: NoteReads> AsyncRead for TrackedIo<IO, N> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin, N: NoteReads> AsyncWrite for TrackedIo<IO, N> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it.
pub struct GuardedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body's deadline, shared between the body and the request's extensions: the
/// request context reads whether it expired, and a streaming route switches it to per stall.
#[derive(Clone, Debug, Default)]
pub struct BodyDeadline(Arc<BodyDeadlineState>);

#[derive(Debug, Default)]
struct BodyDeadlineState {
    per_stall: AtomicBool,
    expired: AtomicBool,
}

impl BodyDeadline {
    /// From now on the body may take as long as it likes in total, but may not pause for
    /// longer than the upload stall timeout.
    pub fn per_stall(&self) {
        self.0.per_stall.store(true, Ordering::Relaxed);
    }

    pub fn expired(&self) -> bool {
        self.0.expired.load(Ordering::Relaxed)
    }
}

/// Middleware for routes that stream long uploads: a stall, not the total time, cuts them.
pub async fn per_stall_body_timeout(request: Request, next: Next) -> Response {
    if let Some(deadline) = request.extensions().get::<BodyDeadline>() {
        deadline.per_stall();
    }
    next.run(request).await
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

fn with_body_deadline(request: http::Request<Incoming>, timeouts: Timeouts) -> Request {
    let (mut parts, incoming) = request.into_parts();
    // A request without a body (most GETs) has nothing to wait for, and gets no deadline: no
    // shared state, extension or wrapped body made for every request.
    if http_body::Body::is_end_stream(&incoming) {
        return Request::from_parts(parts, Body::new(incoming));
    }
    let deadline = BodyDeadline::default();
    parts.extensions.insert(deadline.clone());
    let now = Instant::now();
    let body = DeadlineBody {
        inner: incoming,
        shared: deadline,
        total_deadline: now + timeouts.body_read,
        stall: timeouts.upload_stall,
        last_progress: now,
        sleep: None,
    };
    Request::from_parts(parts, Body::new(body))
}

struct DeadlineBody {
    inner: Incoming,
    shared: BodyDeadline,
    total_deadline: Instant,
    stall: Duration,
    last_progress: Instant,
    /// Made on the first wait only: most bodies arrive with their head.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last_progress = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = if this.shared.0.per_stall.load(Ordering::Relaxed) {
                    this.last_progress + this.stall
                } else {
                    this.total_deadline
                };
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.shared.0.expired.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
