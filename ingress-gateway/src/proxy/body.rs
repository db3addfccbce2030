//! Body types of the data path: the client's request body (from the gateway's HTTP/1.1
//! server or hyper's HTTP/2 one), the request body sent upstream (streamed,
//! size-limited, recoverable when a connect attempt failed before it was read) and the
//! response body sent to the client (the upstream's, streamed, or a short page of our
//! own).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::balance::InflightGuard;
use super::h1codec::BodyDecoder;
use super::h1pool::{H1Conn, H1Pool};
use super::h1server::RequestBody;
use super::inactivity::InactivityTimer;
use std::net::SocketAddr;

/// A request body as the client sends it.
#[derive(Debug)]
pub enum ClientBody {
    /// None (no framing, or `Content-Length: 0`).
    Empty,
    /// Read by the gateway's HTTP/1.1 server as the proxy asks.
    H1(RequestBody),
    /// An HTTP/2 stream's, from hyper.
    H2(Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

/// Error of [`UpstreamBody`]: the client's body broke or went over the limit.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// More bytes than `proxy-body-size` allows.
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
    /// Reading the client's body failed.
    #[error("reading the request body: {0}")]
    Client(BodyError),
}

/// State shared between the proxy and an [`UpstreamBody`] in flight.
#[derive(Debug, Default)]
pub struct BodyShared {
    /// The unread client body, handed back when the upstream request was dropped before
    /// reading it (e.g. the connection attempt failed), so a retry can send it.
    returned: Mutex<Option<ClientBody>>,
    /// Set when the body went over the limit.
    exceeded: AtomicBool,
    /// How the sending goes; `None` until the upstream side first asks for a piece.
    progress: Mutex<Option<Progress>>,
}

/// Where a request body's sending stands, for the send timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When a piece last moved: the client sent one, or the upstream side asked for the
    /// next one (it took the last).
    pub last: Instant,
    /// Waiting on the client for the next piece (else on the upstream side to take the
    /// last one).
    pub waiting_on_client: bool,
    /// The whole body was handed over.
    pub done: bool,
}

impl BodyShared {
    /// Where the sending stands.
    pub fn progress(&self) -> Option<Progress> {
        *self.progress.lock().expect("body lock")
    }

    /// Notes a poll of the body: it waits on the client, or a piece (the last one, when
    /// `done`) moved on.
    fn note(&self, waiting_on_client: bool, done: bool) {
        let mut progress = self.progress.lock().expect("body lock");
        match &*progress {
            // Polled again while the client still sends nothing: nothing moved.
            Some(p) if waiting_on_client && p.waiting_on_client => {}
            _ => {
                *progress = Some(Progress {
                    last: Instant::now(),
                    waiting_on_client,
                    done,
                })
            }
        }
    }

    /// Takes the returned body back, if the last attempt never read it.
    pub fn take_returned(&self) -> Option<ClientBody> {
        self.returned.lock().expect("body lock").take()
    }

    /// Whether the body went over the limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }
}

/// The request body sent upstream: the client's body, streamed, counting bytes against
/// the limit.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Option<ClientBody>,
    remaining: u64,
    limit: u64,
    started: bool,
    shared: Option<Arc<BodyShared>>,
}

impl UpstreamBody {
    /// Streams `inner`, failing once more than `limit` bytes went through.
    pub fn new(inner: ClientBody, limit: u64, shared: Arc<BodyShared>) -> Self {
        Self {
            inner: Some(inner),
            remaining: limit,
            limit,
            started: false,
            shared: Some(shared),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if !self.started {
            if let (Some(inner), Some(shared)) = (self.inner.take(), &self.shared) {
                *shared.returned.lock().expect("body lock") = Some(inner);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        this.started = true;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if let Some(shared) = &this.shared {
            match &polled {
                Poll::Pending => shared.note(true, false),
                Poll::Ready(Some(Ok(_))) => shared.note(false, inner.is_end_stream()),
                Poll::Ready(None) => shared.note(false, true),
                Poll::Ready(Some(Err(_))) => {}
            }
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        if let Some(shared) = &this.shared {
                            shared.exceeded.store(true, Ordering::Relaxed);
                        }
                        this.inner = None;
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge(this.limit))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

/// The response body sent to the client.
#[derive(Debug)]
pub enum ProxyBody {
    /// A complete body made by the gateway (error pages, redirects).
    Full(Option<Bytes>),
    /// The upstream's body, streamed; the guard ends the endpoint's in-flight count when
    /// the body is done or dropped.
    Upstream {
        body: Incoming,
        guard: Option<InflightGuard>,
        /// Between two pieces (`proxy-read-timeout`).
        timer: InactivityTimer,
    },
    /// The upstream's body on an inline-driven pooled HTTP/1.1 connection.
    /// Boxed: the body is moved around by value and this variant would make every
    /// `ProxyBody` as large as itself.
    Pooled(Box<PooledBody>),
}

/// A response body read from its pooled upstream connection as the client takes it;
/// the connection returns to the pool when the body ended cleanly.
#[derive(Debug)]
pub struct PooledBody {
    reader: BodyDecoder,
    conn: Option<Box<H1Conn>>,
    pool: Arc<H1Pool>,
    endpoint: SocketAddr,
    guard: Option<InflightGuard>,
    /// Between two pieces (`proxy-read-timeout`).
    timer: InactivityTimer,
}

impl PooledBody {
    /// The body `reader` still to be read from `conn`, each piece within `read_timeout`.
    pub fn new(
        reader: BodyDecoder,
        conn: Box<H1Conn>,
        pool: Arc<H1Pool>,
        endpoint: SocketAddr,
        guard: InflightGuard,
        read_timeout: Duration,
    ) -> Self {
        Self {
            reader,
            conn: Some(conn),
            pool,
            endpoint,
            guard: Some(guard),
            timer: InactivityTimer::new(read_timeout),
        }
    }

    fn finish(&mut self) {
        self.guard.take();
        if let Some(conn) = self.conn.take() {
            // Only a body read to its end leaves the connection reusable.
            self.pool.checkin(self.endpoint, conn);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Error of a response body: the upstream's broke off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The read timeout between two pieces of an upstream's response body (nginx's
/// `proxy_read_timeout`): a body that stops arriving for longer is cut off, the client
/// sees it end short, and the upstream connection is closed.
fn read_timeout<T>(
    timer: &mut InactivityTimer,
    polled: Poll<Option<Result<T, BodyError>>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<T, BodyError>>> {
    if polled.is_ready() {
        timer.progressed();
        return polled;
    }
    if timer.poll_expired(cx) {
        return Poll::Ready(Some(Err(
            "the upstream timed out sending the response body".into(),
        )));
    }
    Poll::Pending
}

impl ProxyBody {
    /// A gateway-made body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(bytes.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream { body, guard, timer } => {
                let polled = Pin::new(body).poll_frame(cx).map_err(Into::into);
                let polled = read_timeout(timer, polled, cx);
                if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
                    guard.take();
                }
                polled
            }
            ProxyBody::Pooled(p) => {
                let Some(conn) = p.conn.as_mut() else {
                    return Poll::Ready(None);
                };
                let polled = conn.poll_body(&mut p.reader, cx).map_err(Into::into);
                let polled = read_timeout(&mut p.timer, polled, cx);
                if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
                    p.finish();
                }
                polled.map(|o| o.map(|r| r.map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Pooled(p) => p.reader.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Pooled(p) => p
                .reader
                .exact_len()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}
