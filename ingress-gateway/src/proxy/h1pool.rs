//! The HTTP/1.1 upstream pool (the default `backend-protocol`), driven inline by the
//! request's own task.
//!
//! hyper's client hands every request to its connection over a channel and the response
//! back over a oneshot, even when one task drives both; with many connections the
//! channel blocks (some 10 KiB per connection, a new slot per request) were the largest
//! cache cost left on the data path. Here the request task writes the request head
//! itself (the pure encoding and parsing are [`super::h1codec`]), reads the response
//! head, and the response body ([`super::ProxyBody::Pooled`]) reads the rest as the
//! client takes it; when the body ended cleanly the connection goes back to the idle
//! list. A checkout first checks, without blocking, that the backend did not close an
//! idle connection meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

use super::body::{RequestBodyError, UpstreamBody};
use super::h1codec::{self as codec, BodyDecoder, Decoded, RequestFraming};

/// Bytes kept free in the read buffer before each read.
const READ_RESERVE: usize = 8 * 1024;

/// One upstream HTTP/1.1 connection.
pub struct H1Conn {
    stream: TcpStream,
    /// Bytes read and not yet taken (the rest of a head, body bytes).
    read: BytesMut,
    /// The request head being written.
    write: Vec<u8>,
    /// The last exchange ended cleanly and the upstream keeps the connection open.
    reusable: bool,
    /// Whether the exchange in progress may leave the connection reusable.
    keep_alive: bool,
    /// Taken from the idle list rather than freshly connected.
    pub reused: bool,
    /// How long it sat in the idle list before this checkout (zero when fresh).
    pub idle_for: Duration,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("reusable", &self.reusable)
            .field("reused", &self.reused)
            .field("idle_for", &self.idle_for)
            .finish()
    }
}

/// Why a connect failed.
#[derive(Debug)]
pub struct ConnectError(io::Error);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connect: {}", self.0)
    }
}

/// Why an exchange failed before a response head arrived.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong, for logs.
    pub error: String,
    /// The request, whole, when nothing of a response arrived and its body was never
    /// read: it can be sent again elsewhere.
    pub unsent: Option<Request<UpstreamBody>>,
}

/// A response body that could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The upstream closed the connection before the end of the body.
    #[error("upstream closed the connection in the middle of the body")]
    Truncated,
    /// The body broke its framing.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// Reading failed.
    #[error("reading the upstream body: {0}")]
    Io(#[from] io::Error),
}

/// Why the request body could not be sent.
enum WriteError {
    Client(RequestBodyError),
    Upstream(io::Error),
}

impl H1Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            write: Vec::new(),
            reusable: false,
            keep_alive: false,
            reused: false,
            idle_for: Duration::ZERO,
        }
    }

    /// Sends `req` (origin-form URI, Host set, hop-by-hop headers removed) and reads
    /// until the response head arrives; interim (1xx) responses are skipped. A request
    /// body is sent while the response is awaited, so an upstream that answers early
    /// (say 413) is heard.
    ///
    /// A plain `fn` that writes the head into the buffer before the future starts: an
    /// `async fn` would keep the request twice in its state (the argument and its
    /// parts), and the state is copied with every request's future.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn send(
        &mut self,
        req: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<BodyDecoder>, SendError>> + Send + '_ {
        self.reusable = false;
        let (parts, mut body) = req.into_parts();
        let framing = RequestFraming::of(&parts.headers, body.is_end_stream());
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.write.clear();
        codec::encode_request_head(
            &mut self.write,
            &parts.method,
            target,
            &parts.headers,
            framing,
        );
        async move {
            let mut body_read = false;
            let mut got_bytes = false;
            // A response that came before the whole body went out ends the connection.
            let mut request_complete = true;
            let head = match self.stream.write_all(&self.write).await {
                Err(e) => Err(format!("writing the request: {e}")),
                // No body to send (also `Content-Length: 0`): the body is never polled, so
                // the request stays whole for a replay.
                Ok(()) if body.is_end_stream() => {
                    read_head(
                        &mut self.stream,
                        &mut self.read,
                        &parts.method,
                        &mut got_bytes,
                    )
                    .await
                }
                Ok(()) => {
                    body_read = true;
                    let (outcome, complete) = {
                        let (mut rd, mut wr) = self.stream.split();
                        let mut sent = pin!(write_body(&mut wr, &mut body, framing));
                        let mut head = pin!(read_head(
                            &mut rd,
                            &mut self.read,
                            &parts.method,
                            &mut got_bytes
                        ));
                        let mut sending = true;
                        let mut complete = false;
                        let mut write_error = None;
                        let outcome = std::future::poll_fn(|cx| {
                            if sending {
                                match sent.as_mut().poll(cx) {
                                    Poll::Ready(Ok(())) => {
                                        sending = false;
                                        complete = true;
                                    }
                                    Poll::Ready(Err(WriteError::Client(e))) => {
                                        return Poll::Ready(Err(e.to_string()));
                                    }
                                    // The upstream may have answered and closed: read on.
                                    Poll::Ready(Err(WriteError::Upstream(e))) => {
                                        sending = false;
                                        write_error = Some(e);
                                    }
                                    Poll::Pending => {}
                                }
                            }
                            head.as_mut().poll(cx)
                        })
                        .await;
                        let outcome = outcome.map_err(|e| match write_error {
                            Some(w) => format!("{e} (writing the request body: {w})"),
                            None => e,
                        });
                        (outcome, complete)
                    };
                    request_complete = complete;
                    outcome
                }
            };
            match head {
                Ok(head) => Ok(self.response(head, request_complete)),
                Err(error) => {
                    let unsent =
                        (!got_bytes && !body_read).then(|| Request::from_parts(parts, body));
                    Err(SendError { error, unsent })
                }
            }
        }
    }

    fn response(
        &mut self,
        head: codec::ResponseHead,
        request_complete: bool,
    ) -> Response<BodyDecoder> {
        self.keep_alive = head.keep_alive && request_complete;
        let reader = BodyDecoder::new(head.framing);
        if reader.is_done() {
            self.body_ended();
        }
        let mut resp = Response::new(reader);
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp
    }

    fn body_ended(&mut self) {
        // Bytes after the body would be a response nobody asked for.
        self.reusable = self.keep_alive && self.read.is_empty();
    }

    /// The next piece of the response body; `None` at its end.
    pub fn poll_body(
        &mut self,
        reader: &mut BodyDecoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        loop {
            match reader.decode(&mut self.read) {
                Ok(Decoded::Data(data)) => {
                    if reader.is_done() {
                        self.body_ended();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::End) => {
                    self.body_ended();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
            self.read.reserve(READ_RESERVE);
            match poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                // The connection is gone: never reusable, whatever the body's end.
                Poll::Ready(Ok(0)) if reader.end_of_input() => return Poll::Ready(None),
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err(BodyError::Truncated))),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Whether the last exchange ended cleanly with the upstream keeping the connection.
    fn ended_cleanly(&self) -> bool {
        self.reusable
    }

    /// Whether the upstream has not closed the connection (or sent bytes nobody asked
    /// for) while it sat idle; checked without blocking.
    fn still_open(&self) -> bool {
        matches!(
            self.stream.try_read(&mut [0u8; 1]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
}

/// Reads until a final response head is complete.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    method: &Method,
    got_bytes: &mut bool,
) -> Result<codec::ResponseHead, String> {
    loop {
        if !buf.is_empty() {
            *got_bytes = true;
            match codec::parse_response_head(buf, method) {
                Ok(Some(head)) if head.status.is_informational() => continue,
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        buf.reserve(READ_RESERVE);
        match rd.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Err("upstream closed the connection".into()),
            Ok(0) => return Err("upstream closed the connection in the response head".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the response: {e}")),
        }
    }
}

/// Sends the request body (its head is already written).
async fn write_body<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    body: &mut UpstreamBody,
    framing: RequestFraming,
) -> Result<(), WriteError> {
    let chunked = framing == RequestFraming::Chunked;
    // A chunk goes out in one write with its framing (a copy is cheaper than the two
    // extra system calls).
    let mut framed = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(WriteError::Client)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not passed on over HTTP/1.1
        };
        if data.is_empty() {
            continue;
        }
        let out = if chunked {
            framed.clear();
            codec::encode_chunk(&mut framed, &data);
            &framed[..]
        } else {
            &data[..]
        };
        wr.write_all(out).await.map_err(WriteError::Upstream)?;
    }
    if chunked {
        wr.write_all(codec::LAST_CHUNK)
            .await
            .map_err(WriteError::Upstream)?;
    }
    Ok(())
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
            // Only connections that ended cleanly are idle; time may have closed them.
            let mut conn = idle.conn;
            if conn.still_open() {
                conn.reused = true;
                conn.idle_for = idle_for;
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose last exchange completed. Connections idle longer than
    /// the idle timeout are let go here too: checkouts take the newest first, so under
    /// light traffic the oldest would otherwise keep their sockets open indefinitely.
    pub fn checkin(&self, endpoint: SocketAddr, conn: Box<H1Conn>) {
        if !conn.ended_cleanly() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut map = self.idle.lock().expect("pool lock");
            let list = map.entry(endpoint).or_default();
            let expired = self.take_expired(list, now).collect();
            if list.len() < self.max_idle {
                list.push(Idle { conn, since: now });
            }
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }

    /// Lets go of every endpoint's connections idle past the idle timeout at `now`, and
    /// of endpoints left without any. A checkin does this for its own endpoint; one that
    /// left the snapshot (a replaced pod) gets no checkin again, and its idle
    /// connections, up to `max_idle`, stayed open for good without this.
    pub fn sweep(&self, now: Instant) {
        let expired: Vec<Idle> = {
            let mut map = self.idle.lock().expect("pool lock");
            let mut expired = Vec::new();
            map.retain(|_, list| {
                expired.extend(self.take_expired(list, now));
                !list.is_empty()
            });
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }

    /// Takes out of `list` the connections idle past the idle timeout at `now`: oldest
    /// first, so they are a prefix.
    fn take_expired<'l>(&self, list: &'l mut Vec<Idle>, now: Instant) -> std::vec::Drain<'l, Idle> {
        let stale =
            list.partition_point(|i| now.saturating_duration_since(i.since) > self.idle_timeout);
        list.drain(..stale)
    }

    /// Endpoints with idle connections (tests).
    #[cfg(test)]
    fn endpoints(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    /// Idle connections kept for `endpoint` (tests).
    #[cfg(test)]
    fn idle_count(&self, endpoint: SocketAddr) -> usize {
        let map = self.idle.lock().expect("pool lock");
        map.get(&endpoint).map_or(0, Vec::len)
    }

    /// Opens a new connection. Boxed: it moves from the pool to the request, into the
    /// response body and back.
    pub async fn connect(
        endpoint: SocketAddr,
        timeout: Duration,
    ) -> Result<Box<H1Conn>, ConnectError> {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ConnectError(e)),
            Err(_) => {
                return Err(ConnectError(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )))
            }
        };
        let _ = tcp.set_nodelay(true);
        Ok(Box::new(H1Conn::new(tcp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to `addr` whose last exchange ended cleanly.
    async fn clean_conn(addr: SocketAddr) -> Box<H1Conn> {
        let mut conn = H1Pool::connect(addr, Duration::from_secs(5)).await.unwrap();
        conn.reusable = true;
        conn
    }

    /// A backend that accepts connections and holds them open, saying nothing.
    async fn holding_backend() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                open.push(tcp);
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_checkin_lets_go_of_connections_idle_past_the_timeout() {
        let addr = holding_backend().await;
        let pool = H1Pool::new(8, Duration::from_millis(100));
        pool.checkin(addr, clean_conn(addr).await);
        pool.checkin(addr, clean_conn(addr).await);
        assert_eq!(pool.idle_count(addr), 2);
        tokio::time::sleep(Duration::from_millis(150)).await;
        pool.checkin(addr, clean_conn(addr).await);
        assert_eq!(pool.idle_count(addr), 1, "the two expired ones are gone");
        assert!(pool.checkout(addr).is_some());
        assert!(pool.checkout(addr).is_none());
    }

    #[tokio::test]
    async fn a_sweep_closes_the_idle_connections_of_an_endpoint_that_left() {
        let (gone, mut gone_side) = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let conn = clean_conn(addr).await;
            let (server_side, _) = listener.accept().await.unwrap();
            ((addr, conn), server_side)
        };
        let staying = holding_backend().await;
        let timeout = Duration::from_secs(60);
        let pool = H1Pool::new(8, timeout);
        pool.checkin(gone.0, gone.1);
        let checked_in = Instant::now();
        pool.sweep(checked_in + timeout / 2);
        assert_eq!(
            (pool.idle_count(gone.0), pool.endpoints()),
            (1, 1),
            "not yet due"
        );
        // Later: another endpoint was used, none of the first one's connections; the
        // sweep comes when only the first one's are past the timeout.
        tokio::time::sleep(Duration::from_millis(20)).await;
        pool.checkin(staying, clean_conn(staying).await);
        pool.sweep(checked_in + timeout + Duration::from_millis(10));
        assert_eq!(pool.idle_count(gone.0), 0);
        assert_eq!((pool.idle_count(staying), pool.endpoints()), (1, 1));
        // The backend sees its connection closed.
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), gone_side.read(&mut byte));
        assert_eq!(read.await.expect("closed in time").unwrap(), 0);
    }
}
