//! The gateway's own HTTP/1.1 server side (HTTP/2 stays with hyper).
//!
//! Why not hyper's: its server keeps a 16 KiB read buffer and an 8 KiB write buffer per
//! connection for as long as the connection lives, idle or not, plus the slot of the
//! request future; and its dispatcher, timers and date cache cost some 4 µs of CPU per
//! proxied request (bench/gateway/RESULTS.md). Here an idle keep-alive connection holds
//! its task and socket only, and a request is read, routed and answered with one read
//! and one write when it fits.
//!
//! One task per connection runs [`serve`]: read a request head (strictly framed,
//! [`codec`]), hand the request to [`Proxy::handle`] with its body streamed from the
//! socket as the proxy asks for it ([`body`]), write the response head and stream its
//! body, then the next request. Limits: `max_header_bytes` (431), `keepalive_timeout`
//! (an idle keep-alive connection waits that long for the first byte of its next
//! request, as nginx's `keepalive_timeout`), `keepalive_requests` (the last request on
//! a connection is answered with `Connection: close`), `header_read_timeout` (from a
//! head's first byte to its end: slowloris clients are closed), malformed or ambiguous framing 400,
//! unknown transfer codings 501. Upgrades (WebSocket): a 101 from upstream splices the
//! two connections. Drain: an idle connection closes at once, a busy one after its
//! response (`Connection: close`). A connection closed with request bytes unread is
//! shut down first and read out for a moment (nginx's lingering close), so that the
//! client reads the answer (say a 413) instead of a reset.

mod body;
mod codec;

use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

pub use body::RequestBody;
use body::{BodyPump, PumpEnd};
use codec::{ConnectionField, RequestBodyFraming, RequestError, RequestHead, ResponseFraming};

use super::body::{ClientBody, ProxyBody};
use super::h1codec;
use super::handler::{page, ConnInfo, Proxy, UpstreamUpgrade};
use super::inactivity::{copy_both_ways, CopyEnd, InactivityTimer};

/// Limits of the HTTP/1.1 server side.
#[derive(Debug, Clone, Copy)]
pub struct H1Settings {
    /// Longest request head, in bytes.
    pub max_header_bytes: usize,
    /// Time from a request head's first byte to its end.
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection waits for the first byte of its next request;
    /// zero = no keep-alive (every connection closes after one response).
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed; zero = no limit.
    pub keepalive_requests: u64,
    /// Time a client may take none of its response (nginx's `send_timeout`).
    pub client_send_timeout: Duration,
}

/// Bytes read at once while a connection has nothing buffered (on the stack: an idle
/// connection keeps no buffer).
const FIRST_READ: usize = 4096;
/// Response body bytes gathered before a write.
const WRITE_GATHER: usize = 64 * 1024;
/// Bytes of pipelined requests read ahead while an answer is pending.
const PIPELINED_LIMIT: usize = 16 * 1024;
/// Lingering close: how long and how much is read out after the gateway's shutdown.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// What a connection does after an exchange.
enum Next {
    KeepAlive,
    Close { linger: bool },
}

/// Serves HTTP/1.1 requests on `io` until the client or the gateway closes it; `read`
/// holds bytes already read from it.
///
/// A plain `fn` returning the future: an `async fn` keeps a second copy of each argument
/// in its state, and this future is what an idle keep-alive connection holds.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn serve<'a, S>(
    mut io: S,
    mut read: BytesMut,
    conn: ConnInfo,
    proxy: &'a Proxy,
    settings: H1Settings,
    drain: &'a CancellationToken,
) -> impl Future<Output = ()> + Send + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'a,
{
    async move {
        // Armed again for every request; boxed so that a connection that never waits
        // carries no timer.
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        let mut served: u64 = 0;
        loop {
            let mut head = match read_head(&mut io, &mut read, &settings, drain, &mut timer).await {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(HeadError::Refused(e)) => {
                    tracing::debug!(client = %conn.client, error = %e, "request refused");
                    // Boxed: a rare path, kept out of the state every idle connection
                    // holds.
                    return Box::pin(refuse(io, e, settings)).await;
                }
                Err(HeadError::Io(e)) => {
                    tracing::debug!(client = %conn.client, error = %e, "reading a request failed");
                    return;
                }
            };
            served += 1;
            if served == settings.keepalive_requests {
                // The last one on this connection: answered with `Connection: close`.
                head.keep_alive = false;
            }
            // Boxed: the proxy's request future is large and lives only while a request
            // does; the connection's own task stays small while it idles.
            let exchanging = exchange(&mut io, &mut read, head, conn, proxy, settings, drain);
            match Box::pin(exchanging).await {
                Next::KeepAlive => {
                    if read.is_empty() {
                        // Let go of the buffer (it may share an allocation with the last
                        // request's head): idle connections hold no buffer.
                        read = BytesMut::new();
                    }
                }
                Next::Close { linger } => {
                    if linger {
                        lingering_close(io).await;
                    } else {
                        let _ = io.shutdown().await;
                    }
                    return;
                }
            }
        }
    }
}

enum HeadError {
    Refused(RequestError),
    Io(io::Error),
}

/// Reads until a request head is complete. `None`: the client closed the connection
/// between requests, the keep-alive or header read timeout passed, or the gateway
/// drains and the connection is idle.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    read: &mut BytesMut,
    settings: &H1Settings,
    drain: &CancellationToken,
    timer: &mut Option<Pin<Box<Sleep>>>,
) -> Result<Option<RequestHead>, HeadError> {
    // Idle (nothing of the next request here yet): the keep-alive timeout runs until its
    // first byte, then the header read timeout.
    let mut idle = read.is_empty();
    let mut deadline = Instant::now() + head_wait(settings, idle);
    let mut armed = false;
    let mut drained = pin!(drain.cancelled());
    poll_fn(|cx| loop {
        if !read.is_empty() {
            match codec::parse_request_head(read, settings.max_header_bytes) {
                Ok(Some(head)) => return Poll::Ready(Ok(Some(head))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(HeadError::Refused(e))),
            }
        }
        match poll_read_some(io, cx, read) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(None)),
            Poll::Ready(Ok(_)) => {
                if idle {
                    idle = false;
                    deadline = Instant::now() + head_wait(settings, idle);
                    armed = false;
                }
                continue;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(HeadError::Io(e))),
            Poll::Pending => {}
        }
        if read.is_empty() && drained.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !armed {
            sleep.as_mut().reset(deadline);
            armed = true;
        }
        if sleep.as_mut().poll(cx).is_ready() {
            tracing::debug!("no complete request head in time");
            return Poll::Ready(Ok(None));
        }
        return Poll::Pending;
    })
    .await
}

/// How long a request head may take to arrive: from the end of the last response to its
/// first byte when the connection is `idle`, from its first byte to its end when not.
fn head_wait(settings: &H1Settings, idle: bool) -> Duration {
    if idle {
        settings.keepalive_timeout
    } else {
        settings.header_read_timeout
    }
}

/// Reads what is there into `read`; with nothing buffered, through the stack, so that
/// a connection waiting for its next request holds no buffer.
fn poll_read_some<S: AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut Context<'_>,
    read: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if read.is_empty() {
        let mut stack = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut buf = ReadBuf::uninit(&mut stack);
        return match Pin::new(io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                read.extend_from_slice(buf.filled());
                Poll::Ready(Ok(buf.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
    }
    read.reserve(FIRST_READ);
    tokio_util::io::poll_read_buf(Pin::new(io), cx, read)
}

/// One request and its response.
///
/// A plain `fn` that takes the request apart and makes the proxy's future for it
/// (routing runs then) before its own future starts: an `async fn` would keep the
/// request twice in its state. The proxy's future is boxed on its own, not kept inline:
/// this future is boxed too (so that an idle connection stays small), and a future
/// inside it would be copied once more when it starts.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
fn exchange<'a, S>(
    io: &'a mut S,
    read: &'a mut BytesMut,
    head: RequestHead,
    conn: ConnInfo,
    proxy: &'a Proxy,
    settings: H1Settings,
    drain: &'a CancellationToken,
) -> impl Future<Output = Next> + Send + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let RequestHead {
        request,
        framing,
        keep_alive,
        expect_continue,
    } = head;
    let version = request.version();
    let head_request = request.method() == Method::HEAD;
    let (body, pump) = match framing {
        RequestBodyFraming::Empty => (ClientBody::Empty, None),
        framing => {
            let (body, pump) = body::channel(framing, expect_continue);
            (ClientBody::H1(body), Some(pump))
        }
    };
    let mut handling = Box::pin(proxy.handle(request.map(|()| body), conn));
    async move {
        let mut pumping = Pumping { pump, end: None };
        let response = poll_fn(|cx| {
            if let Poll::Ready(response) = handling.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            pumping.poll(cx, io, read);
            if pumping.poll_hangup(cx, io, read) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let Some(response) = response else {
            // Dropping the request's future cancels the upstream exchange; the proxy
            // records the request as 499.
            tracing::debug!(client = %conn.client, "the client closed the connection before the answer");
            return Next::Close { linger: false };
        };
        // The proxy may have dropped the body unread (a 413, a redirect): learn it now.
        poll_fn(|cx| {
            pumping.poll(cx, io, read);
            Poll::Ready(())
        })
        .await;

        let (mut parts, mut body) = response.into_parts();
        let upgrade = match parts.status {
            StatusCode::SWITCHING_PROTOCOLS => parts.extensions.remove::<UpstreamUpgrade>(),
            _ => None,
        };
        let framing = if upgrade.is_some() {
            ResponseFraming::NoBody
        } else {
            ResponseFraming::of(
                parts.status,
                head_request,
                version,
                body.size_hint().exact(),
            )
        };
        let close = !keep_alive
            || settings.keepalive_timeout.is_zero()
            || drain.is_cancelled()
            || framing == ResponseFraming::UntilClose
            || pumping.broken();
        let connection = match (close, version) {
            _ if upgrade.is_some() => ConnectionField::Omit,
            (true, _) => ConnectionField::Close,
            (false, Version::HTTP_10) => ConnectionField::KeepAlive,
            (false, _) => ConnectionField::Omit,
        };
        let mut writer = ResponseWriter::new(&parts, framing, connection, settings);
        let written = poll_fn(|cx| {
            let written = writer.poll_write(cx, io, Pin::new(&mut body));
            pumping.poll(cx, io, read);
            if written.is_pending() && pumping.poll_hangup(cx, io, read) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the client closed the connection during the response",
                )));
            }
            written
        })
        .await;
        drop(body);
        if let Err(e) = written {
            tracing::debug!(client = %conn.client, error = %e, "writing the response failed");
            return Next::Close { linger: false };
        }
        if let Some(upgrade) = upgrade {
            splice(io, read, upgrade, conn).await;
            return Next::Close { linger: false };
        }
        match pumping.end {
            // The body is still on its way: the connection cannot go on to a next request.
            _ if pumping.pump.is_some() => Next::Close { linger: true },
            Some(PumpEnd::Abandoned) => Next::Close { linger: true },
            Some(PumpEnd::Failed) => Next::Close { linger: false },
            // Bytes of a next request already here would turn the close into a reset.
            _ if close => Next::Close {
                linger: !read.is_empty(),
            },
            _ => Next::KeepAlive,
        }
    }
}

/// The request body's pump while an exchange runs.
struct Pumping {
    pump: Option<BodyPump>,
    end: Option<PumpEnd>,
}

impl Pumping {
    fn poll<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
        read: &mut BytesMut,
    ) {
        if let Some(pump) = self.pump.as_mut() {
            if let Poll::Ready(end) = pump.poll_pump(cx, io, read) {
                self.end = Some(end);
                self.pump = None;
            }
        }
    }

    /// The connection cannot carry another request: the body was left unread or broke.
    fn broken(&self) -> bool {
        matches!(self.end, Some(PumpEnd::Abandoned | PumpEnd::Failed))
    }

    /// Whether the client closed the connection (or it broke) while its request waits
    /// for an answer or the answer streams, as nginx notices it ("client prematurely
    /// closed connection"): HTTP/1.1 has no half-close, so a read of zero means the
    /// client is gone. Watched only once the request body is read whole (before, the
    /// pump reads the socket); bytes of a pipelined next request are kept in `read`,
    /// up to [`PIPELINED_LIMIT`], beyond which the socket is left unread until the
    /// answer is out.
    fn poll_hangup<S: AsyncRead + Unpin>(
        &self,
        cx: &mut Context<'_>,
        io: &mut S,
        read: &mut BytesMut,
    ) -> bool {
        if self.pump.is_some() || self.broken() {
            return false;
        }
        while read.len() < PIPELINED_LIMIT {
            match poll_read_some(io, cx, read) {
                Poll::Ready(Ok(0) | Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return false,
            }
        }
        false
    }
}

/// Writes a response head and streams its body.
struct ResponseWriter {
    /// Bytes to write: the head, then gathered body pieces with their framing.
    out: Vec<u8>,
    /// How much of `out` is written.
    at: usize,
    /// The client send timeout: runs while a write waits on the client's socket (not
    /// while the writer waits on the body), from the last write that took bytes.
    slow_reader: InactivityTimer,
    framing: ResponseFraming,
    /// Body bytes taken so far (checked against a Content-Length).
    sent: u64,
    body_done: bool,
}

impl ResponseWriter {
    /// A writer with the response head encoded and ready to go first.
    fn new(
        head: &http::response::Parts,
        framing: ResponseFraming,
        connection: ConnectionField,
        settings: H1Settings,
    ) -> Self {
        let mut out = Vec::with_capacity(512);
        codec::encode_response_head(
            &mut out,
            head.status,
            &head.headers,
            framing,
            connection,
            &date::now(),
        );
        Self {
            out,
            at: 0,
            slow_reader: InactivityTimer::new(settings.client_send_timeout),
            framing,
            sent: 0,
            body_done: framing == ResponseFraming::NoBody,
        }
    }

    fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
        mut body: Pin<&mut ProxyBody>,
    ) -> Poll<io::Result<()>> {
        loop {
            // Gather what the body has ready behind the head into one write.
            while !self.body_done && self.out.len() - self.at < WRITE_GATHER {
                match body.as_mut().poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            self.take(&data)?;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // Cut off: the client sees a short body or a missing last chunk.
                        return Poll::Ready(Err(io::Error::other(e)));
                    }
                    Poll::Ready(None) => self.finish()?,
                    Poll::Pending if self.at == self.out.len() => {
                        // Nothing to write yet: what was written must reach the client
                        // while the body waits (TLS holds it until flushed).
                        return match Pin::new(&mut *io).poll_flush(cx) {
                            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                            _ => Poll::Pending,
                        };
                    }
                    Poll::Pending => break,
                }
            }
            while self.at < self.out.len() {
                match Pin::new(&mut *io).poll_write(cx, &self.out[self.at..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        self.at += n;
                        self.slow_reader.progressed();
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if self.slow_reader.poll_expired(cx) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client took none of its response in time",
                        )))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            self.out.clear();
            self.at = 0;
            if self.body_done {
                return Pin::new(&mut *io).poll_flush(cx);
            }
        }
    }

    /// Appends a body piece with its framing.
    fn take(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.sent += data.len() as u64;
        match self.framing {
            ResponseFraming::Length(n) if self.sent > n => {
                return Err(io::Error::other(
                    "the body is longer than its Content-Length",
                ))
            }
            ResponseFraming::Chunked => h1codec::encode_chunk(&mut self.out, data),
            ResponseFraming::NoBody => {}
            ResponseFraming::Length(_) | ResponseFraming::UntilClose => {
                self.out.extend_from_slice(data)
            }
        }
        Ok(())
    }

    /// The body ended: its last chunk, or a check of its length.
    fn finish(&mut self) -> io::Result<()> {
        self.body_done = true;
        match self.framing {
            ResponseFraming::Chunked => self.out.extend_from_slice(h1codec::LAST_CHUNK),
            ResponseFraming::Length(n) if self.sent != n => {
                return Err(io::Error::other(
                    "the body is shorter than its Content-Length",
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// Answers a refused request head (400, 431, 501) and says the connection closes.
async fn write_refusal<S: AsyncWrite + Unpin>(
    io: &mut S,
    e: &RequestError,
    settings: H1Settings,
) -> io::Result<()> {
    let (parts, mut body) = page(e.status(), &e.to_string()).into_parts();
    let framing = ResponseFraming::of(
        parts.status,
        false,
        Version::HTTP_11,
        body.size_hint().exact(),
    );
    let mut writer = ResponseWriter::new(&parts, framing, ConnectionField::Close, settings);
    poll_fn(|cx| writer.poll_write(cx, io, Pin::new(&mut body))).await
}

/// Answers a request refused before it was routed, then closes the connection lingering.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    e: RequestError,
    settings: H1Settings,
) {
    if write_refusal(&mut io, &e, settings).await.is_ok() {
        lingering_close(io).await;
    }
}

/// Shuts the connection down and reads out what the client still sends, for a moment,
/// so that unread bytes do not turn the close into a reset that could destroy the
/// answer before the client read it.
async fn lingering_close<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    if io.shutdown().await.is_err() {
        return;
    }
    let read_out = async {
        // On the heap: inline, this buffer would sit in every connection's task.
        let mut sink = vec![0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, read_out).await;
}

/// Copies bytes both ways between the client and the upgraded upstream connection until
/// both close or nothing moves for the route's read timeout; bytes the client sent after
/// its request head go first.
async fn splice<S>(io: &mut S, read: &mut BytesMut, upgrade: UpstreamUpgrade, conn: ConnInfo)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let upstream = match upgrade.upstream.await {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::debug!(client = %conn.client, error = %e, "upstream upgrade failed");
            return;
        }
    };
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if !read.is_empty() {
        if let Err(e) = upstream.write_all(read.chunk()).await {
            tracing::debug!(client = %conn.client, error = %e, "upgraded connection ended");
            return;
        }
        read.clear();
    }
    match copy_both_ways(io, &mut upstream, upgrade.idle).await {
        Ok(CopyEnd::Closed) => {}
        Ok(CopyEnd::Idle) => {
            tracing::debug!(client = %conn.client, idle = ?upgrade.idle, "upgraded connection idle for the read timeout; closed");
        }
        Err(e) => {
            tracing::debug!(client = %conn.client, error = %e, "upgraded connection ended");
        }
    }
}

/// The `Date` field the gateway adds to responses that carry none (RFC 9110 §6.6.1).
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `Mon, 23 Nov 2026 18:00:00 GMT`.
    pub type HttpDate = [u8; 29];

    thread_local! {
        /// The last second formatted, per thread: formatting once a second, not per
        /// response.
        static CACHE: RefCell<(u64, HttpDate)> = const { RefCell::new((u64::MAX, [0; 29])) };
    }

    /// Now, formatted.
    pub fn now() -> HttpDate {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.0 != second {
                let text = httpdate::fmt_http_date(now);
                let mut date = [b' '; 29];
                let n = text.len().min(29);
                date[..n].copy_from_slice(&text.as_bytes()[..n]);
                *cache = (second, date);
            }
            cache.1
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_imf_fixdate() {
        let date = super::date::now();
        let text = std::str::from_utf8(&date).unwrap();
        assert!(text.ends_with(" GMT"), "{text}");
        assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
    }
}
