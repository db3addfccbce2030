//! `ironlb-echo`: the backend "pod" of IronLB's tests and lab.
//!
//! It answers every request with JSON ([`EchoReply`]) naming the backend (service and
//! pod given at start) and describing the request it saw: method, path with query, host,
//! protocol version, headers, client address, TLS details, body length. It speaks
//! HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or h2 over TLS by ALPN) on the same
//! port, optionally TLS, and echoes WebSocket frames after an HTTP/1.1 upgrade.
//!
//! Knobs for proxy tests: a fixed status and delay per server ([`EchoConfig`]), and per
//! request the headers `x-echo-status: CODE` and `x-echo-delay-ms: N` override them.
//! Every response carries `x-echo-service` and `x-echo-pod`.
//!
//! In a test:
//! ```no_run
//! # async fn demo() -> Result<(), ironlb_echo::EchoError> {
//! let echo = ironlb_echo::EchoConfig::new("web", "web-1")
//!     .spawn("127.0.0.1:0".parse().unwrap())
//!     .await?;
//! println!("curl {}/", echo.url());
//! # Ok(()) }
//! ```

pub mod ws;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Per-request status override header.
pub const STATUS_HEADER: &str = "x-echo-status";
/// Per-request delay override header (milliseconds).
pub const DELAY_HEADER: &str = "x-echo-delay-ms";

/// Errors of the echo server.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("tls: {0}")]
    Tls(String),
}

/// Result type of this crate.
pub type Result<T, E = EchoError> = std::result::Result<T, E>;

/// How an echo server behaves.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Service name reported in every reply.
    pub service: String,
    /// Pod name reported in every reply.
    pub pod: String,
    /// Status of every reply (unless a request overrides it).
    pub status: StatusCode,
    /// Wait this long before answering (unless a request overrides it).
    pub delay: Duration,
    /// Serve TLS with this configuration (see [`tls_config_from_pem`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl EchoConfig {
    /// Plain HTTP, status 200, no delay.
    pub fn new(service: &str, pod: &str) -> EchoConfig {
        EchoConfig {
            service: service.to_string(),
            pod: pod.to_string(),
            status: StatusCode::OK,
            delay: Duration::ZERO,
            tls: None,
        }
    }

    /// Answers with `status`.
    pub fn with_status(mut self, status: StatusCode) -> EchoConfig {
        self.status = status;
        self
    }

    /// Waits `delay` before answering.
    pub fn with_delay(mut self, delay: Duration) -> EchoConfig {
        self.delay = delay;
        self
    }

    /// Serves TLS.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> EchoConfig {
        self.tls = Some(tls);
        self
    }

    /// Binds `addr` and serves on a background task until the handle is dropped.
    pub async fn spawn(self, addr: SocketAddr) -> Result<EchoHandle> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| io_error(format!("binding {addr}"), e))?;
        self.spawn_on(listener)
    }

    /// Serves an already bound listener on a background task (must be called inside a
    /// tokio runtime).
    pub fn spawn_on(self, listener: TcpListener) -> Result<EchoHandle> {
        let addr = listener
            .local_addr()
            .map_err(|e| io_error("reading the listener's address", e))?;
        let tls = self.tls.is_some();
        let task = tokio::spawn(async move {
            if let Err(e) = serve(self, listener).await {
                tracing::error!(error = %e, "echo server stopped");
            }
        });
        Ok(EchoHandle { addr, tls, task })
    }
}

/// A running in-process echo server; dropping it stops the server and its connections.
#[derive(Debug)]
pub struct EchoHandle {
    addr: SocketAddr,
    tls: bool,
    task: JoinHandle<()>,
}

impl EchoHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for EchoHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the echo server answers: who it is and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The backend's service name.
    pub service: String,
    /// The backend's pod name.
    pub pod: String,
    /// Request method.
    pub method: String,
    /// Path with query, as received.
    pub path: String,
    /// `Host` header, or the `:authority` of an HTTP/2 request.
    pub host: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    /// Request headers, lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The peer's address (the proxy's, behind a proxy).
    pub client: String,
    /// The address the request arrived on.
    pub local: String,
    /// Whether the connection was TLS.
    pub tls: bool,
    /// SNI name the client sent, if TLS.
    pub sni: Option<String>,
    /// ALPN protocol agreed, if TLS.
    pub alpn: Option<String>,
    /// Request body length in bytes.
    pub body_length: u64,
}

/// What a connection knows about itself.
#[derive(Debug, Clone)]
struct ConnInfo {
    client: SocketAddr,
    local: SocketAddr,
    tls: bool,
    sni: Option<String>,
    alpn: Option<String>,
}

/// Serves `listener` until the task is dropped or accepting fails for good. Every
/// connection runs on a task owned by this future, so dropping it ends them all.
pub async fn serve(cfg: EchoConfig, listener: TcpListener) -> Result<()> {
    let cfg = Arc::new(cfg);
    let acceptor = cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait and go on, as servers do.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let local = stream
            .local_addr()
            .map_err(|e| io_error("reading a connection's local address", e))?;
        let _ = stream.set_nodelay(true);
        let cfg = cfg.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let info = ConnInfo {
                client,
                local,
                tls: acceptor.is_some(),
                sni: None,
                alpn: None,
            };
            match acceptor {
                None => serve_connection(cfg, info, stream).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let (_, conn) = tls.get_ref();
                        let info = ConnInfo {
                            sni: conn.server_name().map(str::to_string),
                            alpn: conn
                                .alpn_protocol()
                                .map(|p| String::from_utf8_lossy(p).into_owned()),
                            ..info
                        };
                        serve_connection(cfg, info, tls).await
                    }
                    Err(e) => tracing::debug!(%client, error = %e, "tls handshake failed"),
                },
            }
        });
    }
}

async fn serve_connection<S>(cfg: Arc<EchoConfig>, info: ConnInfo, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let service = service_fn(move |req| handle(cfg.clone(), info.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle(
    cfg: Arc<EchoConfig>,
    info: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if is_websocket_upgrade(req.headers()) {
        return Ok(upgrade_websocket(&cfg, req));
    }
    let (parts, mut body) = req.into_parts();
    // Count the body without keeping it: uploads in tests may be large.
    let mut body_length = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_length += data.len() as u64;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading a request body");
                break;
            }
        }
    }
    let status = header_value(&parts.headers, STATUS_HEADER)
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(cfg.status);
    let delay = header_value(&parts.headers, DELAY_HEADER)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(cfg.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = describe(&cfg, &info, &parts, body_length);
    let json = serde_json::to_vec_pretty(&reply).unwrap_or_default();
    Ok(base_response(&cfg, status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json)))
        .expect("valid response"))
}

/// The reply for a request: plain data in, plain data out.
fn describe(
    cfg: &EchoConfig,
    info: &ConnInfo,
    parts: &http::request::Parts,
    body_length: u64,
) -> EchoReply {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value)
            })
            .or_insert(value);
    }
    let host = header_value(&parts.headers, "host")
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    EchoReply {
        service: cfg.service.clone(),
        pod: cfg.pod.clone(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string()),
        host,
        protocol: format!("{:?}", parts.version),
        headers,
        client: info.client.to_string(),
        local: info.local.to_string(),
        tls: info.tls,
        sni: info.sni.clone(),
        alpn: info.alpn.clone(),
        body_length,
    }
}

fn base_response(cfg: &EchoConfig, status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header("x-echo-service", cfg.service.as_str())
        .header("x-echo-pod", cfg.pod.as_str())
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

fn upgrade_websocket(cfg: &EchoConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = header_value(req.headers(), "sec-websocket-key").map(str::to_string) else {
        return base_response(cfg, StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(
                b"missing Sec-WebSocket-Key\n",
            )))
            .expect("valid response");
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut io = TokioIo::new(upgraded);
                if let Err(e) = ws::echo(&mut io).await {
                    tracing::debug!(error = %e, "websocket echo ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    base_response(cfg, StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", ws::accept_key(&key))
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

// === TLS ===

/// A rustls server configuration from PEM certificate chain and private key, offering
/// ALPN `h2` and `http/1.1`.
pub fn tls_config_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EchoError::Tls(format!("reading certificates: {e}")))?;
    if certs.is_empty() {
        return Err(EchoError::Tls("no certificate in the PEM data".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| EchoError::Tls(format!("reading the private key: {e}")))?
        .ok_or_else(|| EchoError::Tls("no private key in the PEM data".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EchoError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| EchoError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`tls_config_from_pem`] from files.
pub fn tls_config_from_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| io_error(format!("reading {}", p.display()), e));
    tls_config_from_pem(&read(cert)?, &read(key)?)
}

fn io_error(context: impl Into<String>, source: std::io::Error) -> EchoError {
    EchoError::Io {
        context: context.into(),
        source,
    }
}
