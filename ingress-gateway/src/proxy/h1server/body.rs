//! A client's HTTP/1.1 request body, handed to the proxy as an `http_body::Body` while
//! the connection's task reads it from the socket.
//!
//! The connection task owns the socket; the body may be polled from another task (the
//! hyper-util client's, for h2 and TLS upstreams). Between them sits one slot: the body
//! asks for a piece ([`RequestBody`] marks the slot wanted and wakes the connection),
//! the connection reads and decodes one ([`BodyPump`]) and puts it there. Nothing is
//! read before the proxy asks, so a request answered without its body (413, a redirect)
//! leaves it unread, and `100 Continue` goes out on the first ask only.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::codec::RequestBodyFraming;
use crate::proxy::h1codec::{BodyDecoder, BodyFraming, Decoded};

/// Bytes kept free in the connection's read buffer before each body read.
const READ_RESERVE: usize = 16 * 1024;

/// The interim response a client that sent `Expect: 100-continue` waits for.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBodyError {
    /// The client closed the connection before the end of the body.
    #[error("the client closed the connection in the middle of the body")]
    Truncated,
    /// The chunked body broke its framing.
    #[error("malformed chunked request body")]
    Chunked,
    /// Reading failed.
    #[error("reading the request body: {0}")]
    Io(String),
}

#[derive(Debug, Default)]
struct Slot {
    /// A piece read and not yet taken.
    piece: Option<Result<Bytes, ClientBodyError>>,
    /// The body is read to its end (and every piece taken once `piece` is empty).
    ended: bool,
    /// The body asks for the next piece.
    wanted: bool,
    /// The body was dropped.
    dropped: bool,
    /// The body's task, waiting for a piece.
    body_waker: Option<Waker>,
    /// The connection's task, waiting to be asked.
    pump_waker: Option<Waker>,
}

type Shared = Arc<Mutex<Slot>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Slot> {
    // A panic while holding this lock leaves plain data behind: go on with it.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request body as the proxy reads it.
#[derive(Debug)]
pub struct RequestBody {
    shared: Shared,
    /// Bytes still to come when the length is known.
    remaining: Option<u64>,
}

/// The connection's end: reads the body from the socket when asked.
#[derive(Debug)]
pub struct BodyPump {
    shared: Shared,
    decoder: BodyDecoder,
    /// Bytes of `100 Continue` still to write (the whole of it until the first ask).
    continue_left: usize,
}

/// How the pumping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The whole body was read: the connection is at the next request.
    Complete,
    /// The body was dropped before its end: the rest is unread.
    Abandoned,
    /// The client broke off or broke the framing: the connection cannot go on.
    Failed,
}

/// A body of `framing` (not [`RequestBodyFraming::Empty`]) and the pump that feeds it;
/// `expect_continue`: the client waits for `100 Continue`.
pub fn channel(framing: RequestBodyFraming, expect_continue: bool) -> (RequestBody, BodyPump) {
    let shared = Shared::default();
    let (framing, remaining) = match framing {
        RequestBodyFraming::Length(n) => (BodyFraming::Length(n), Some(n)),
        RequestBodyFraming::Chunked => (BodyFraming::Chunked, None),
        RequestBodyFraming::Empty => (BodyFraming::Empty, Some(0)),
    };
    let body = RequestBody {
        shared: shared.clone(),
        remaining,
    };
    let pump = BodyPump {
        shared,
        decoder: BodyDecoder::new(framing),
        continue_left: if expect_continue { CONTINUE.len() } else { 0 },
    };
    (body, pump)
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let mut slot = lock(&self.shared);
        if let Some(piece) = slot.piece.take() {
            drop(slot);
            if let (Ok(data), Some(left)) = (&piece, self.remaining.as_mut()) {
                *left = left.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(piece.map(Frame::data)));
        }
        if slot.ended {
            return Poll::Ready(None);
        }
        slot.wanted = true;
        slot.body_waker = Some(cx.waker().clone());
        if let Some(pump) = slot.pump_waker.take() {
            pump.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.shared);
        slot.ended && slot.piece.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let mut slot = lock(&self.shared);
        slot.dropped = true;
        if let Some(pump) = slot.pump_waker.take() {
            pump.wake();
        }
    }
}

impl BodyPump {
    /// Reads the next piece into the slot when the body asks for one, from `read` (the
    /// connection's buffer) and then `io`. Ready once the pumping is over.
    pub fn poll_pump<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
        read: &mut BytesMut,
    ) -> Poll<PumpEnd> {
        loop {
            {
                let mut slot = lock(&self.shared);
                if slot.ended {
                    return Poll::Ready(PumpEnd::Complete);
                }
                if slot.dropped {
                    return Poll::Ready(PumpEnd::Abandoned);
                }
                if !slot.wanted || slot.piece.is_some() {
                    slot.pump_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            while self.continue_left > 0 {
                let sent = CONTINUE.len() - self.continue_left;
                match Pin::new(&mut *io).poll_write(cx, &CONTINUE[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        return self.fail(ClientBodyError::Truncated);
                    }
                    Poll::Ready(Ok(n)) => self.continue_left -= n,
                    Poll::Pending => return Poll::Pending,
                }
                if self.continue_left == 0 {
                    // A TLS stream holds what was written until flushed.
                    if let Poll::Ready(Err(e)) = Pin::new(&mut *io).poll_flush(cx) {
                        return self.fail(ClientBodyError::Io(e.to_string()));
                    }
                }
            }
            match self.decoder.decode(read) {
                Ok(Decoded::Data(piece)) => {
                    self.deliver(piece);
                    continue;
                }
                Ok(Decoded::End) => {
                    self.deliver(Bytes::new());
                    continue;
                }
                Ok(Decoded::NeedMore) => {}
                Err(_) => return self.fail(ClientBodyError::Chunked),
            }
            read.reserve(READ_RESERVE);
            match poll_read_buf(Pin::new(&mut *io), cx, read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return self.fail(ClientBodyError::Truncated),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return self.fail(ClientBodyError::Io(e.to_string())),
            }
        }
    }

    /// Puts a piece (empty: the end) in the slot for the body.
    fn deliver(&mut self, piece: Bytes) {
        let end = self.decoder.is_done();
        let mut slot = lock(&self.shared);
        if !piece.is_empty() {
            slot.piece = Some(Ok(piece));
            slot.wanted = false;
        }
        slot.ended = end;
        if let Some(body) = slot.body_waker.take() {
            body.wake();
        }
    }

    fn fail(&mut self, error: ClientBodyError) -> Poll<PumpEnd> {
        let mut slot = lock(&self.shared);
        slot.piece = Some(Err(error));
        slot.ended = true;
        if let Some(body) = slot.body_waker.take() {
            body.wake();
        }
        Poll::Ready(PumpEnd::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// Pumps `pump` on the server end of a duplex pipe until it ends.
    async fn pump_all(
        mut pump: BodyPump,
        mut server: tokio::io::DuplexStream,
        mut read: BytesMut,
    ) -> (PumpEnd, BytesMut) {
        let end = std::future::poll_fn(|cx| pump.poll_pump(cx, &mut server, &mut read)).await;
        (end, read)
    }

    #[tokio::test]
    async fn a_length_body_arrives_whole_and_what_follows_stays() {
        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Length(10), false);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::from("0123")));
        client.write_all(b"456789GET / HTTP/1.1").await.unwrap();
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"0123456789");
        let (end, rest) = pumping.await.unwrap();
        assert_eq!(end, PumpEnd::Complete);
        assert!(b"GET / HTTP/1.1".starts_with(&rest), "{rest:?}");
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_and_a_broken_one_fails() {
        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Chunked, false);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::new()));
        client
            .write_all(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcde");
        assert_eq!(pumping.await.unwrap().0, PumpEnd::Complete);

        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Chunked, false);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::new()));
        client.write_all(b"zz\r\n").await.unwrap();
        assert!(body.collect().await.is_err());
        assert_eq!(pumping.await.unwrap().0, PumpEnd::Failed);
    }

    #[tokio::test]
    async fn nothing_is_read_until_asked_and_a_dropped_body_is_abandoned() {
        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Length(5), true);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::new()));
        tokio::task::yield_now().await;
        drop(body);
        let (end, read) = pumping.await.unwrap();
        assert_eq!(end, PumpEnd::Abandoned);
        assert!(read.is_empty());
        // No 100 Continue was sent: the body was never asked for.
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
            .await
            .unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn the_first_ask_sends_100_continue() {
        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Length(2), true);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::new()));
        let reading = tokio::spawn(body.collect());
        let mut got = [0u8; CONTINUE.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(&got[..], CONTINUE);
        client.write_all(b"ok").await.unwrap();
        let body = reading.await.unwrap().unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(pumping.await.unwrap().0, PumpEnd::Complete);
    }

    #[tokio::test]
    async fn a_client_gone_mid_body_is_an_error_for_the_reader() {
        let (mut client, server) = tokio::io::duplex(64);
        let (body, pump) = channel(RequestBodyFraming::Length(10), false);
        let pumping = tokio::spawn(pump_all(pump, server, BytesMut::new()));
        client.write_all(b"abc").await.unwrap();
        drop(client);
        let err = body.collect().await.unwrap_err();
        assert!(matches!(err, ClientBodyError::Truncated), "{err}");
        assert_eq!(pumping.await.unwrap().0, PumpEnd::Failed);
    }
}
