//! The data path: the gateway's own HTTP/1.1 server side (`h1server`) and hyper's
//! HTTP/2 one (h2c with prior knowledge on the plain listener, ALPN over TLS), routing
//! every request through the current snapshot to a pooled upstream connection.
//!
//! [`serve`] binds (or adopts) the listeners and returns at once with a
//! [`ProxyHandle`]; cancelling the shutdown token stops accepting, lets in-flight
//! requests finish for up to `drain_timeout`, then closes what is left.
//!
//! Limits: `max_connections` (a semaphore taken before `accept`, so excess clients wait
//! in the kernel backlog; one accept loop serves both listeners, so a permit waiting on
//! an idle listener does not starve the other), `max_header_bytes` (HTTP/1: the longest
//! request head, over it → 431; HTTP/2: `SETTINGS_MAX_HEADER_LIST_SIZE`),
//! `header_read_timeout` (the first bytes of a connection, read here to tell HTTP/1 from
//! HTTP/2; HTTP/1: from a request head's first byte to its end; TLS: the handshake),
//! `keepalive_timeout` (how long a connection with no request in progress stays open:
//! HTTP/1 until the next head's first byte, HTTP/2 with no stream open),
//! `keepalive_requests` (requests served on one connection before it is closed,
//! HTTP/1.1 with `Connection: close`, HTTP/2 with GOAWAY, as nginx's
//! `keepalive_requests`: long-lived connections come back to spread over the gateway's
//! replicas, and an HTTP/2 client cannot open and reset streams on one connection
//! without end),
//! `client_send_timeout` (a client that takes none of its response for that long is
//! disconnected; HTTP/2: that stream is reset),
//! `idle_timeout` (a client connection silent that long gets TCP keep-alive probes, so a
//! peer gone without a word is dropped after three go unanswered, 10 s apart, whatever
//! the connection waits on; the kernel does it, at no cost per request, where hyper's
//! HTTP/2 pings took a lock and a clock read per frame; upstream pools: idle connections
//! older than it are not reused).
//!
//! Upstreams: plain HTTP/1.1 (the default `backend-protocol`) through `h1pool`, the
//! gateway's own HTTP/1.1 client (`h1codec`), driven by the request task itself;
//! h2c/gRPC, HTTPS/GRPCS (rustls, backend certificates not verified, as ingress-nginx's
//! default `proxy-ssl-verify off`) and WebSocket upgrades over hyper-util's pooled
//! client (`upstream`). A connect failure is retried on another endpoint (up to
//! `connect_attempts`); the request body, if not yet read, goes with the retry.
//! Upstream timeouts are nginx's, between events rather than over a whole exchange (so a
//! long upload or a long streamed answer lives as long as it keeps moving):
//! `send_timeout` between two pieces of a request body (408 when the client stopped
//! sending, 504 when the upstream stopped taking), `read_timeout` from the end of the
//! request to the response head (504) and between two pieces of the response body (cut
//! off); per route by `proxy-send-timeout` / `proxy-read-timeout`.

pub mod balance;
mod body;
mod h1codec;
mod h1pool;
mod h1server;
mod h2watch;
mod handler;
pub mod headers;
mod inactivity;
mod upstream;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use h2watch::{StreamExecutor, StreamWatch, Verdict, WatchLimits, WatchedBody};
use http::HeaderValue;
use hyper::server::conn::http2;
use hyper_util::rt::TokioIo;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use body::{ClientBody, ProxyBody};
pub use handler::ConnInfo;

use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use h1server::H1Settings;
use handler::{Proxy, Settings};
use upstream::{PoolConfig, Upstreams};

/// Accept queue length of the listeners bound here (the kernel caps it at
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Where a listener comes from.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address.
    Addr(SocketAddr),
    /// Use this already bound std listener (tests pass `127.0.0.1:0` listeners).
    Std(std::net::TcpListener),
    /// Use this already bound tokio listener.
    Tokio(TcpListener),
}

impl Listen {
    async fn into_listener(self) -> anyhow::Result<TcpListener> {
        match self {
            Listen::Addr(addr) => {
                // tokio's `bind` listens with a backlog of 1024; bursts of new clients
                // then overflow the accept queue and wait a 1 s SYN retransmit.
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .context("creating the listening socket")?;
                socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
                socket
                    .bind(addr)
                    .with_context(|| format!("binding {addr}"))?;
                socket
                    .listen(LISTEN_BACKLOG)
                    .with_context(|| format!("listening on {addr}"))
            }
            Listen::Std(l) => {
                l.set_nonblocking(true)
                    .context("setting the listener non-blocking")?;
                TcpListener::from_std(l).context("adopting the listener")
            }
            Listen::Tokio(l) => Ok(l),
        }
    }
}

/// Configuration of the data path.
#[derive(Debug)]
pub struct ProxyConfig {
    /// Plain HTTP listener (HTTP/1.1 and h2c with prior knowledge); `None` = none.
    pub http: Option<Listen>,
    /// TLS listener (ALPN h2, http/1.1); `None` = none.
    pub https: Option<Listen>,
    /// Port named in HTTP→HTTPS redirects; `None` = the HTTPS listener's port (443 if
    /// there is none). Set it when a LoadBalancer maps 443 to another listener port.
    pub redirect_https_port: Option<u16>,
    /// Maximum simultaneous client connections.
    pub max_connections: usize,
    /// Maximum request header block, in bytes.
    pub max_header_bytes: usize,
    /// Time to read a request's headers, from their first byte (and a TLS handshake).
    pub header_read_timeout: Duration,
    /// Time a connection with no request in progress stays open (HTTP/1.1: until the
    /// next head's first byte; HTTP/2: with no stream open); zero = no HTTP/1.1
    /// keep-alive, and HTTP/2 uses `header_read_timeout`.
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed (HTTP/2: streams opened
    /// before GOAWAY); zero = no limit.
    pub keepalive_requests: u64,
    /// Time a client may take none of its response before it is disconnected (HTTP/2:
    /// that stream is reset).
    pub client_send_timeout: Duration,
    /// Idle timeout (TCP keep-alive probes on client connections; upstream pool idle
    /// connections).
    pub idle_timeout: Duration,
    /// Request body limit when a route sets no `proxy-body-size`.
    pub default_body_limit: u64,
    /// Upstream connect timeout when a route sets no `proxy-connect-timeout`.
    pub connect_timeout: Duration,
    /// Upstream read timeout when a route sets no `proxy-read-timeout`: from the end of
    /// the request to the response head, and between two pieces of the response body.
    pub read_timeout: Duration,
    /// Time allowed between two pieces of a request body when a route sets no
    /// `proxy-send-timeout` (the client sending it or the upstream taking it).
    pub send_timeout: Duration,
    /// Connect attempts per request, each to another endpoint when possible.
    pub connect_attempts: usize,
    /// `Strict-Transport-Security` value added to TLS responses (`None` = no HSTS).
    pub hsts: Option<String>,
    /// One JSON access-log line per request on stdout.
    pub access_log: bool,
    /// Time given to in-flight requests after shutdown.
    pub drain_timeout: Duration,
}

impl ProxyConfig {
    /// The defaults of the command line (ingress-nginx's where it has one: connect 5 s,
    /// read and send 60 s, keep-alive 75 s, HSTS `max-age=31536000;
    /// includeSubDomains`), without listeners.
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            http: None,
            https: None,
            redirect_https_port: None,
            max_connections: 16384,
            max_header_bytes: 32 * 1024,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            client_send_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            default_body_limit: 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            connect_attempts: 3,
            hsts: Some("max-age=31536000; includeSubDomains".to_string()),
            access_log: false,
            drain_timeout: Duration::from_secs(10),
        }
    }

    /// From the gateway's command line.
    pub fn from_args(args: &crate::Args) -> ProxyConfig {
        ProxyConfig {
            http: Some(Listen::Addr(args.http_listen)),
            https: Some(Listen::Addr(args.https_listen)),
            max_connections: args.max_connections,
            max_header_bytes: args.max_header_bytes,
            header_read_timeout: args.header_read_timeout,
            keepalive_timeout: args.keepalive_timeout,
            keepalive_requests: args.keepalive_requests,
            client_send_timeout: args.client_send_timeout,
            idle_timeout: args.idle_timeout,
            default_body_limit: args.default_body_limit,
            access_log: args.access_log,
            drain_timeout: args.drain_timeout,
            ..ProxyConfig::new()
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::new()
    }
}

/// A running data path.
#[derive(Debug)]
pub struct ProxyHandle {
    /// Bound address of the plain HTTP listener.
    pub http_addr: Option<SocketAddr>,
    /// Bound address of the TLS listener.
    pub https_addr: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl ProxyHandle {
    /// Resolves once the shutdown token was cancelled and the drain finished (every
    /// connection closed, or `drain_timeout` passed).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "proxy task failed");
        }
    }
}

/// Starts the data path on the configured listeners; see the module docs.
pub async fn serve(
    cfg: ProxyConfig,
    snapshot: SharedSnapshot,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<ProxyHandle> {
    let http = match cfg.http {
        Some(l) => Some(l.into_listener().await.context("HTTP listener")?),
        None => None,
    };
    let https = match cfg.https {
        Some(l) => Some(l.into_listener().await.context("HTTPS listener")?),
        None => None,
    };
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let https_addr = https.as_ref().map(|l| l.local_addr()).transpose()?;
    let hsts = cfg
        .hsts
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .context("HSTS header value")?;
    let h1_pool = Arc::new(h1pool::H1Pool::new(1024, cfg.idle_timeout));
    tokio::spawn(sweep_idle_upstreams(
        Arc::downgrade(&h1_pool),
        (cfg.idle_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(30)),
        shutdown.clone(),
    ));
    let proxy = Arc::new(Proxy {
        snapshot: snapshot.clone(),
        metrics: metrics.clone(),
        settings: Settings {
            default_body_limit: cfg.default_body_limit,
            read_timeout: cfg.read_timeout,
            send_timeout: cfg.send_timeout,
            connect_timeout: cfg.connect_timeout,
            connect_attempts: cfg.connect_attempts,
            https_port: cfg
                .redirect_https_port
                .or(https_addr.map(|a| a.port()))
                .unwrap_or(443),
            hsts,
            access_log: cfg.access_log,
        },
        upstreams: Upstreams::new(PoolConfig {
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            max_idle_per_endpoint: 1024,
        }),
        h1: h1_pool.clone(),
        balancer: Default::default(),
    });

    let tls = match https {
        Some(_) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(snapshot.clone()).context("TLS configuration")?,
        )),
        None => None,
    };
    let shared = Arc::new(Shared {
        proxy,
        h1: H1Settings {
            max_header_bytes: cfg.max_header_bytes,
            header_read_timeout: cfg.header_read_timeout,
            keepalive_timeout: cfg.keepalive_timeout,
            keepalive_requests: cfg.keepalive_requests,
            client_send_timeout: cfg.client_send_timeout,
        },
        limit: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
        tcp_keepalive: tcp_keepalive(cfg.idle_timeout),
        metrics,
        drain: CancellationToken::new(),
    });

    let drain_timeout = cfg.drain_timeout;
    let task = tokio::spawn(async move {
        // Every accepted connection is tracked from the moment it is accepted (a TLS
        // handshake in progress counts), so the drain below waits for all of them.
        let connections = TaskTracker::new();
        let https = https.zip(tls);
        if http.is_some() || https.is_some() {
            accept_loop(http, https, shared.clone(), &connections, shutdown).await;
        }
        // Listeners are closed; drain what is in flight: idle connections close at
        // once, busy ones after their response (HTTP/2: GOAWAY, then the open streams).
        tracing::info!(connections = connections.len(), ?drain_timeout, "draining");
        shared.drain.cancel();
        connections.close();
        match tokio::time::timeout(drain_timeout, connections.wait()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!("drain timeout passed; closing the remaining connections"),
        }
    });
    Ok(ProxyHandle {
        http_addr,
        https_addr,
        task,
    })
}

struct Shared {
    proxy: Arc<Proxy>,
    /// HTTP/1.1 limits; its header read timeout also bounds a TLS handshake and the
    /// first bytes of every connection, and its keep-alive and client send timeouts
    /// are HTTP/2's too (`h2watch`).
    h1: H1Settings,
    limit: Arc<Semaphore>,
    tcp_keepalive: TcpKeepalive,
    metrics: Arc<Metrics>,
    /// Cancelled when the listeners closed: connections finish what is in flight.
    drain: CancellationToken,
}

/// TCP keep-alive for client connections: probes after `idle` of silence, three of them
/// 10 s apart.
fn tcp_keepalive(idle: Duration) -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(idle)
        .with_interval(Duration::from_secs(10))
        .with_retries(3)
}

/// An accepted connection's socket options: no Nagle delay (answers go out whole and at
/// once), TCP keep-alive. A failure is logged; the connection is served anyway.
fn tune(stream: &TcpStream, keepalive: &TcpKeepalive, client: SocketAddr) {
    let set = stream
        .set_nodelay(true)
        .and_then(|()| SockRef::from(stream).set_tcp_keepalive(keepalive));
    if let Err(e) = set {
        tracing::debug!(%client, error = %e, "setting socket options failed");
    }
}

/// Sweeps the HTTP/1.1 upstream pool every `every` until shutdown (or the pool is gone),
/// so that idle connections are closed after the idle timeout also when no request goes
/// to their endpoint again.
async fn sweep_idle_upstreams(
    pool: std::sync::Weak<h1pool::H1Pool>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Some(pool) = pool.upgrade() else { return };
        pool.sweep(std::time::Instant::now());
    }
}

/// Accepts on `listener`, or never resolves when there is none.
async fn accept_on(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts on both listeners, taking a connection permit before each accept: a single
/// loop, so that the permit it holds while waiting goes to whichever listener has a
/// client first.
async fn accept_loop(
    http: Option<TcpListener>,
    https: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    shared: Arc<Shared>,
    connections: &TaskTracker,
    shutdown: CancellationToken,
) {
    let https_listener = https.as_ref().map(|(l, _)| l);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = shared.limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (accepted, listener, tls) = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = accept_on(http.as_ref()) => (a, http.as_ref(), None),
            a = accept_on(https_listener) => {
                (a, https_listener, https.as_ref().map(|(_, tls)| tls.clone()))
            }
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tune(&stream, &shared.tcp_keepalive, client);
        let local = stream.local_addr().unwrap_or_else(|_| {
            listener
                .and_then(|l| l.local_addr().ok())
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
        });
        let conn = ConnInfo {
            client,
            local,
            tls: tls.is_some(),
        };
        let shared = shared.clone();
        connections.spawn(async move {
            shared.metrics.connection_opened();
            match tls {
                None => serve_http(stream, conn, &shared).await,
                // Boxed, handshake and all: inline, the TLS states made every
                // connection's task as large as a TLS one (an idle keep-alive connection
                // holds its task).
                Some(acceptor) => Box::pin(serve_tls(stream, acceptor, conn, &shared)).await,
            }
            shared.metrics.connection_closed();
            drop(permit);
        });
    }
}

/// Serves a TLS connection: the handshake (within the header read timeout), then HTTP.
async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    conn: ConnInfo,
    shared: &Shared,
) {
    let handshake = tokio::time::timeout(shared.h1.header_read_timeout, acceptor.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => serve_http(stream, conn, shared).await,
        Ok(Err(e)) => {
            tracing::debug!(client = %conn.client, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            tracing::debug!(client = %conn.client, "TLS handshake timed out");
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 (told apart by the first bytes) on a connection, plain or
/// after its TLS handshake, until it closes. A plain `fn` returning the future, as
/// `h1server::serve`: an `async fn` would keep a second copy of its arguments in the
/// state every idle connection holds.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
fn serve_http<S>(
    mut stream: S,
    conn: ConnInfo,
    shared: &Shared,
) -> impl Future<Output = ()> + Send + '_
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        let Some(first) = first_bytes(&mut stream, shared.h1.header_read_timeout, &conn).await
        else {
            return;
        };
        if first != H2_PREFACE {
            let h1 = h1server::serve(stream, first, conn, &shared.proxy, shared.h1, &shared.drain);
            return h1.await;
        }
        // Boxed: hyper's HTTP/2 connection state would otherwise make every connection's
        // task, HTTP/1.1 ones included, as large as itself.
        let stream = Prefixed {
            prefix: first.freeze(),
            inner: stream,
        };
        Box::pin(serve_h2(stream, conn, shared)).await;
    }
}

/// Serves HTTP/2 on a connection whose preface was read (and put back) until it closes;
/// a drain sends GOAWAY and lets the open streams finish. Watched beside hyper
/// (`h2watch`): closed gracefully after the keep-alive timeout with no stream open (the
/// header read timeout when keep-alive is off), and at once when a client took none of a
/// stream's data for the client send timeout, or, once closing, none of what hyper still
/// holds after the last stream ended.
async fn serve_h2<S>(stream: S, conn: ConnInfo, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let proxy = shared.proxy.clone();
    let watch = StreamWatch::new(shared.h1.keepalive_requests);
    let streams = watch.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let proxy = proxy.clone();
        let stream = streams.opened();
        // The proxy's future boxed: hyper moves this one into its stream's future and
        // that into a box of its own, and copying kilobytes per stream shows.
        async move {
            let req = req.map(ClientBody::H2);
            let response = Box::pin(proxy.handle(req, conn)).await;
            Ok::<_, std::convert::Infallible>(response.map(|body| WatchedBody::new(body, stream)))
        }
    });
    let limits = WatchLimits {
        idle: match shared.h1.keepalive_timeout {
            off if off.is_zero() => shared.h1.header_read_timeout,
            keepalive => keepalive,
        },
        client_send: shared.h1.client_send_timeout,
    };
    // No timer: hyper's only use of one is its keep-alive pings, which the TCP
    // keep-alive and the watch replace.
    let mut h2 = http2::Builder::new(StreamExecutor::new(watch.clone()));
    h2.max_header_list_size(u32::try_from(shared.h1.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    let connection = h2.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // The first look at once; each look says when the next is due.
    let mut check = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut closing = false;
    let ended = loop {
        tokio::select! {
            ended = connection.as_mut() => break ended,
            _ = shared.drain.cancelled(), if !closing => {}
            _ = watch.stream_limit_reached(), if !closing => {
                tracing::debug!(client = %conn.client, "HTTP/2 connection served its keep-alive requests; closing");
            }
            _ = check.as_mut() => match watch.verdict(tokio::time::Instant::now(), limits) {
                Verdict::CheckAt(at) => {
                    check.as_mut().reset(at);
                    continue;
                }
                Verdict::Idle => {
                    tracing::debug!(client = %conn.client, "idle HTTP/2 connection closed");
                }
                Verdict::StreamsStalled => {
                    let now = tokio::time::Instant::now();
                    if watch.reset_stalled(now, limits.client_send) {
                        tracing::debug!(client = %conn.client, "an HTTP/2 client took none of a response for the client send timeout; stream reset");
                        check.as_mut().reset(now);
                        continue;
                    }
                    tracing::debug!(client = %conn.client, "an HTTP/2 client took none of a response for the client send timeout; connection closed");
                    return;
                }
                Verdict::ClosingStalled => {
                    tracing::debug!(client = %conn.client, "an HTTP/2 client took none of what was left for it after GOAWAY for the client send timeout; connection closed");
                    return;
                }
            },
        }
        // Draining, idle or served its requests: GOAWAY, then the open streams finish,
        // still watched; what hyper holds after the last of them must reach the client
        // in time too.
        closing = true;
        watch.closing();
        connection.as_mut().graceful_shutdown();
        check.as_mut().reset(tokio::time::Instant::now());
    };
    if let Err(e) = ended {
        tracing::debug!(client = %conn.client, error = %e, "connection ended with an error");
    }
}

/// The HTTP/2 client preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a connection's first bytes within `timeout`: as many as tell HTTP/2 from
/// HTTP/1 (the whole HTTP/2 preface, or up to the first byte that differs from it).
/// `None` = timed out, failed, or closed before any byte.
async fn first_bytes<S: AsyncRead + Unpin>(
    io: &mut S,
    timeout: Duration,
    conn: &ConnInfo,
) -> Option<BytesMut> {
    let mut prefix = BytesMut::with_capacity(H2_PREFACE.len());
    let read = async {
        let mut chunk = [0u8; H2_PREFACE.len()];
        while prefix.len() < H2_PREFACE.len() {
            let n = io
                .read(&mut chunk[..H2_PREFACE.len() - prefix.len()])
                .await?;
            if n == 0 {
                break;
            }
            prefix.extend_from_slice(&chunk[..n]);
            if !H2_PREFACE.starts_with(&prefix) {
                break;
            }
        }
        Ok::<_, io::Error>(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) if !prefix.is_empty() => Some(prefix),
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::debug!(client = %conn.client, error = %e, "reading the first bytes failed");
            None
        }
        Err(_) => {
            tracing::debug!(client = %conn.client, "no request in time");
            None
        }
    }
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        let head = self.prefix.split_to(n);
        buf.put_slice(&head);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
