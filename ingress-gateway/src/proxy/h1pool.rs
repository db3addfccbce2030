//! The HTTP/1.1 upstream pool (the default `backend-protocol`), driven inline.
//!
//! hyper-util's pooled client runs every upstream connection as a task of its own: the
//! request goes to it over a channel, the response head comes back on another, and the
//! body on a third, which costs several task wake-ups per proxied request. Here the
//! request task polls the upstream [`Connection`] itself while it waits for the
//! response head, and the response body ([`super::ProxyBody::Pooled`]) keeps polling it
//! while it streams; when the body ends cleanly the connection goes back to the idle
//! list. Idle connections are not polled: a checkout first polls once to notice a
//! connection the backend closed meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;

/// One upstream HTTP/1.1 connection.
pub struct H1Conn {
    sender: SendRequest<UpstreamBody>,
    conn: Connection<TokioIo<TcpStream>, UpstreamBody>,
    /// The connection future finished (closed or failed): never reuse.
    done: bool,
    /// Taken from the idle list rather than freshly connected.
    pub reused: bool,
    /// How long it sat in the idle list before this checkout (zero when fresh).
    pub idle_for: Duration,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("done", &self.done)
            .field("reused", &self.reused)
            .field("idle_for", &self.idle_for)
            .finish()
    }
}

/// Why an upstream exchange failed.
#[derive(Debug)]
pub enum H1Error {
    /// TCP connect failed or timed out.
    Connect(std::io::Error),
    /// The HTTP/1 handshake or exchange failed.
    Http(hyper::Error),
}

impl std::fmt::Display for H1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            H1Error::Connect(e) => write!(f, "connect: {e}"),
            H1Error::Http(e) => write!(f, "{e}"),
        }
    }
}

impl H1Conn {
    /// Advances the connection (reads, writes, body frames); records when it ends.
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && self.conn.poll_without_shutdown(cx).is_ready() {
            self.done = true;
        }
    }

    /// Sends `req` (origin-form URI, Host set) and drives the connection until the
    /// response head arrives. When the exchange fails before hyper wrote any of the
    /// request (the connection turned out closed), the error carries it back whole.
    pub async fn send(
        &mut self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, TrySendError<http::Request<UpstreamBody>>> {
        let mut fut = pin!(self.sender.try_send_request(req));
        let conn = &mut self.conn;
        let done = &mut self.done;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if !*done {
                if let Poll::Ready(r) = conn.poll_without_shutdown(cx) {
                    *done = true;
                    if r.is_ok() {
                        // Closed cleanly; the request future resolves (with an error)
                        // on its next poll.
                        cx.waker().wake_by_ref();
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Whether the connection can carry another request.
    pub fn reusable(&mut self) -> bool {
        if self.done {
            return false;
        }
        // Let the dispatcher see the end of the last message.
        self.poll_drive(&mut Context::from_waker(Waker::noop()));
        !self.done && self.sender.is_ready()
    }
}

struct Idle {
    conn: Box<H1Conn>,
    since: Instant,
}

/// Idle upstream HTTP/1.1 connections by endpoint.
#[derive(Default)]
pub struct H1Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl H1Pool {
    /// A pool keeping up to `max_idle` idle connections per endpoint for `idle_timeout`.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::default(),
            max_idle,
            idle_timeout,
        }
    }

    /// An idle connection to `endpoint` that is still open, if any.
    pub fn checkout(&self, endpoint: SocketAddr) -> Option<Box<H1Conn>> {
        let now = Instant::now();
        loop {
            let idle = {
                let mut map = self.idle.lock().expect("pool lock");
                map.get_mut(&endpoint)?.pop()?
            };
            let idle_for = now.saturating_duration_since(idle.since);
            if idle_for > self.idle_timeout {
                continue;
            }
            let mut conn = idle.conn;
            if conn.reusable() {
                conn.reused = true;
                conn.idle_for = idle_for;
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose last exchange completed.
    pub fn checkin(&self, endpoint: SocketAddr, mut conn: Box<H1Conn>) {
        if !conn.reusable() {
            return;
        }
        let mut map = self.idle.lock().expect("pool lock");
        let list = map.entry(endpoint).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Opens a new connection. Boxed: the connection state is some 700 bytes, and it
    /// moves from the pool to the request, into the response body and back.
    pub async fn connect(endpoint: SocketAddr, timeout: Duration) -> Result<Box<H1Conn>, H1Error> {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(H1Error::Connect(e)),
            Err(_) => {
                return Err(H1Error::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )))
            }
        };
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(H1Error::Http)?;
        Ok(Box::new(H1Conn {
            sender,
            conn,
            done: false,
            reused: false,
            idle_for: Duration::ZERO,
        }))
    }
}
