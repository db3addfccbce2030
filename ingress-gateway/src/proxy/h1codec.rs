//! HTTP/1.1 messages to and from upstreams, pure (RFC 9112): the request head the
//! gateway writes, the response head it reads, and how the response body is framed.
//! The I/O around them is [`super::h1pool`].

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Largest response head accepted; a bigger one is a 502 (nginx's `proxy_buffer_size`
/// is 4–8 KiB by default, so no backend behind ingress-nginx sends more).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in one response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line or trailer line of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// A response the gateway cannot pass on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// httparse refused the head (or a header name or value).
    #[error("malformed response head: {0}")]
    Head(String),
    /// The head did not end within [`MAX_RESPONSE_HEAD`] bytes.
    #[error("response head over {MAX_RESPONSE_HEAD} bytes")]
    HeadTooLarge,
    /// Content-Length values that are not one number.
    #[error("invalid Content-Length")]
    ContentLength,
    /// A chunked body that breaks the chunked syntax.
    #[error("malformed chunked body")]
    Chunked,
}

/// How a request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// As is, the client's `Content-Length` says how long.
    Length,
    /// Chunked: a body of unknown length (a chunked or HTTP/2 client request).
    Chunked,
}

impl RequestFraming {
    /// The framing of a request with hop-by-hop headers already removed.
    pub fn of(headers: &HeaderMap, body_is_empty: bool) -> Self {
        if headers.contains_key(header::CONTENT_LENGTH) {
            RequestFraming::Length
        } else if body_is_empty {
            RequestFraming::Empty
        } else {
            RequestFraming::Chunked
        }
    }
}

/// Appends the request head to `buf`. `target` is an origin-form target (already a
/// valid `PathAndQuery`); header names and values are valid by construction, so
/// nothing here can split the message.
pub fn encode_request_head(
    buf: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) {
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    if framing == RequestFraming::Chunked {
        buf.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body: its size line, the data, the CRLF after it.
pub fn encode_chunk(buf: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    let _ = write!(buf, "{:x}\r\n", data.len());
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// The end of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// None (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status code.
    pub status: StatusCode,
    /// Header fields, hop-by-hop ones included.
    pub headers: HeaderMap,
    /// How the body that follows is delimited.
    pub framing: BodyFraming,
    /// The upstream keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`. When complete, the head's bytes are
/// taken out of `buf` (header values share them, no copy); `Ok(None)` means more bytes
/// are needed. `method` is the request's (a response to HEAD has no body).
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, CodecError> {
    // Uninitialized: this runs for every response, and zeroing 128 fields is 4 KiB.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(CodecError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(CodecError::Head(e.to_string())),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(CodecError::HeadTooLarge);
    }
    let code = resp.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| CodecError::Head(format!("status code {code}")))?;
    let http10 = resp.version == Some(0);
    let spans = field_spans(buf, resp.headers);
    let head = buf.split_to(len).freeze();
    let mut headers = header_map(&head, &spans, 0).map_err(CodecError::Head)?;

    let mut keep_alive = !http10;
    for token in tokens(&headers, &header::CONNECTION) {
        if token.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
            keep_alive = true;
        }
    }
    let framing = if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        BodyFraming::Empty
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding overrides Content-Length (which is dropped: the client gets
        // the body with framing of the gateway's own), and a response that carried both
        // may be an attempt at smuggling: the connection is not reused.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        let last = tokens(&headers, &header::TRANSFER_ENCODING).last();
        if last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        }
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        match content_length(&headers)? {
            0 => BodyFraming::Empty,
            n => BodyFraming::Length(n),
        }
    } else {
        BodyFraming::UntilClose
    };
    if framing == BodyFraming::UntilClose {
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// Where each field's name and value sit in `buf` (which httparse parsed them from), so
/// that the values can share the head's bytes once it is split off.
pub(super) fn field_spans(buf: &[u8], fields: &[httparse::Header<'_>]) -> Vec<FieldSpan> {
    let base = buf.as_ptr() as usize;
    fields
        .iter()
        .map(|h| {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            FieldSpan {
                name: name..name + h.name.len(),
                value: value..value + h.value.len(),
            }
        })
        .collect()
}

/// Where one header field's name and value sit in a message head.
#[derive(Debug, Clone)]
pub(super) struct FieldSpan {
    name: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// The fields of `head` at `spans`; values share the head's bytes (no copy), with room
/// for `extra` more fields (the proxy adds some: growing the map rehashes it). `Err`
/// says which name or value is invalid.
pub(super) fn header_map(
    head: &Bytes,
    spans: &[FieldSpan],
    extra: usize,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(spans.len() + extra);
    for span in spans {
        let raw_name = &head[span.name.clone()];
        let name = HeaderName::from_bytes(raw_name)
            .map_err(|_| format!("header name {:?}", String::from_utf8_lossy(raw_name)))?;
        let value = HeaderValue::from_maybe_shared(head.slice(span.value.clone()))
            .map_err(|_| format!("value of {name}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The comma-separated tokens of every `name` field.
pub(super) fn tokens<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The one length all Content-Length values agree on (`5, 5` is 5; `5, 6` is an error).
pub(super) fn content_length(headers: &HeaderMap) -> Result<u64, CodecError> {
    let mut length = None;
    for token in headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
    {
        let token = token.trim_ascii();
        if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
            return Err(CodecError::ContentLength);
        }
        let n: u64 = std::str::from_utf8(token)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(CodecError::ContentLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(CodecError::ContentLength);
        }
        length = Some(n);
    }
    length.ok_or(CodecError::ContentLength)
}

/// What [`BodyDecoder::decode`] (or [`ChunkedDecoder::decode`]) found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The buffer ends inside the body: read more.
    NeedMore,
    /// The body is through (chunked: the last chunk and the trailers, which are
    /// dropped).
    End,
}

/// A message body's decoding as its bytes arrive (RFC 9112 §6.3): the one decoder of
/// both upstream response bodies and client request bodies.
#[derive(Debug)]
pub enum BodyDecoder {
    /// This many bytes left.
    Length(u64),
    /// Chunked.
    Chunked(ChunkedDecoder),
    /// Until the connection closes.
    UntilClose,
    /// Nothing (left).
    Done,
}

impl BodyDecoder {
    /// The decoder of a body delimited by `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
            BodyFraming::UntilClose => BodyDecoder::UntilClose,
        }
    }

    /// Whether the whole body was decoded (true right after the last piece of a
    /// length-delimited body, before the next call says `End`).
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Bytes left, when known.
    pub fn exact_len(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of the body out of `buf`; what follows the body stays.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, CodecError> {
        match self {
            BodyDecoder::Done => Ok(Decoded::End),
            BodyDecoder::Length(_) | BodyDecoder::UntilClose if buf.is_empty() => {
                Ok(Decoded::NeedMore)
            }
            BodyDecoder::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            BodyDecoder::UntilClose => Ok(Decoded::Data(buf.split().freeze())),
            BodyDecoder::Chunked(decoder) => {
                let decoded = decoder.decode(buf)?;
                if decoded == Decoded::End {
                    *self = BodyDecoder::Done;
                }
                Ok(decoded)
            }
        }
    }

    /// The connection ended (a read of zero): whether that ends the body
    /// (close-delimited, or already through) rather than cutting it short.
    pub fn end_of_input(&mut self) -> bool {
        if let BodyDecoder::UntilClose = self {
            *self = BodyDecoder::Done;
        }
        self.is_done()
    }
}

/// Decodes a chunked body incrementally, as bytes arrive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// Done.
    End,
}

impl ChunkedDecoder {
    /// Takes what it can out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, CodecError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = line_in(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&buf[..line])?;
                    buf.advance(line + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(CodecError::Chunked);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = line_in(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    buf.advance(line + 2);
                    if line == 0 {
                        self.state = ChunkState::End;
                    }
                }
                ChunkState::End => return Ok(Decoded::End),
            }
        }
    }
}

/// The length of the CRLF-terminated line at the start of `buf`, if complete.
fn line_in(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n <= MAX_CHUNK_LINE => Ok(Some(n)),
        Some(_) => Err(CodecError::Chunked),
        None if buf.len() > MAX_CHUNK_LINE => Err(CodecError::Chunked),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (`1a`, `1A;ext=x`).
fn chunk_size(line: &[u8]) -> Result<u64, CodecError> {
    let hex = line.split(|b| *b == b';').next().unwrap_or_default();
    let hex = hex.trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return Err(CodecError::Chunked);
    }
    hex.iter().try_fold(0u64, |n, b| {
        let d = (*b as char).to_digit(16).ok_or(CodecError::Chunked)?;
        Ok(n * 16 + u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: &Method) -> Result<Option<ResponseHead>, CodecError> {
        parse_response_head(&mut BytesMut::from(raw), method)
    }

    fn framing(raw: &str) -> BodyFraming {
        head(raw, &Method::GET).unwrap().unwrap().framing
    }

    #[test]
    fn the_request_head_is_written_as_is_with_its_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("shop.example.com"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut buf = Vec::new();
        encode_request_head(
            &mut buf,
            &Method::POST,
            "/cart?x=1",
            &headers,
            RequestFraming::Chunked,
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "POST /cart?x=1 HTTP/1.1\r\nhost: shop.example.com\r\nx-a: 1\r\nx-a: 2\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        let mut buf = Vec::new();
        encode_chunk(&mut buf, &[b'x'; 300]);
        assert_eq!(&buf[..5], b"12c\r\n");
        assert_eq!(&buf[5..305], &[b'x'; 300][..]);
        assert_eq!(&buf[305..], b"\r\n");
    }

    #[test]
    fn request_framing_follows_content_length_then_the_body() {
        let mut h = HeaderMap::new();
        assert_eq!(RequestFraming::of(&h, true), RequestFraming::Empty);
        assert_eq!(RequestFraming::of(&h, false), RequestFraming::Chunked);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert_eq!(RequestFraming::of(&h, false), RequestFraming::Length);
    }

    #[test]
    fn a_complete_head_is_taken_out_of_the_buffer() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Y: z\r\n\r\nok");
        let h = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers["x-y"], "z");
        assert_eq!(h.framing, BodyFraming::Length(2));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"ok");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_huge_one_is_refused() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .unwrap()
            .is_none());
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            head(&huge, &Method::GET).unwrap_err(),
            CodecError::HeadTooLarge
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for raw in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "\0\0\0\0",
        ] {
            assert!(head(raw, &Method::GET).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            BodyFraming::UntilClose
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), BodyFraming::UntilClose);
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(framing("HTTP/1.1 100 Continue\r\n\r\n"), BodyFraming::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Empty);
    }

    #[test]
    fn content_length_must_be_one_number() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
        for bad in ["5, 6", "-1", "+5", "0x10", "", "99999999999999999999999"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(&raw, &Method::GET).unwrap_err(),
                CodecError::ContentLength,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_beats_content_length_and_ends_the_connection() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        assert!(!h.keep_alive);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |raw: &str| head(raw, &Method::GET).unwrap().unwrap().keep_alive;
        assert!(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.1 200 OK\r\n\r\n"), "a body until close");
    }

    /// Decodes `raw` fed to `dec` in pieces of `step` bytes; returns the body, whether
    /// it ended, and what is left after it.
    fn decode_with(
        dec: &mut BodyDecoder,
        raw: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool, Vec<u8>), CodecError> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in raw.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => body.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((body, true, buf.to_vec())),
                }
            }
        }
        Ok((body, false, buf.to_vec()))
    }

    fn dechunk(raw: &[u8], step: usize) -> Result<(Vec<u8>, bool, Vec<u8>), CodecError> {
        decode_with(&mut BodyDecoder::new(BodyFraming::Chunked), raw, step)
    }

    #[test]
    fn length_and_close_delimited_bodies_decode_whatever_the_read_sizes() {
        for step in [1, 3, 9] {
            let mut dec = BodyDecoder::new(BodyFraming::Length(5));
            let (body, ended, rest) = decode_with(&mut dec, b"helloNEXT", step).unwrap();
            assert_eq!(
                (body.as_slice(), ended),
                (&b"hello"[..], true),
                "step {step}"
            );
            assert!(b"NEXT".starts_with(&rest), "{rest:?}");
        }
        // Close-delimited: everything is body, and the close ends it.
        let mut dec = BodyDecoder::new(BodyFraming::UntilClose);
        let (body, ended, _) = decode_with(&mut dec, b"all of it", 4).unwrap();
        assert_eq!((body.as_slice(), ended), (&b"all of it"[..], false));
        assert!(dec.end_of_input());
        // A close in the middle of a length-delimited or chunked body cuts it short.
        let mut dec = BodyDecoder::new(BodyFraming::Length(9));
        assert!(!decode_with(&mut dec, b"short", 2).unwrap().1);
        assert!(!dec.end_of_input());
        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        assert!(!decode_with(&mut dec, b"3\r\nab", 2).unwrap().1);
        assert!(!dec.end_of_input());
        // An empty body is through at once.
        for framing in [BodyFraming::Empty, BodyFraming::Length(0)] {
            let mut dec = BodyDecoder::new(framing);
            assert_eq!(dec.decode(&mut BytesMut::new()), Ok(Decoded::End));
            assert!(dec.end_of_input());
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let raw =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, raw.len()] {
            let (body, ended, rest) = dechunk(raw, step).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(ended);
            // What follows the body stays for the next response.
            assert!(b"NEXT".starts_with(&rest), "{rest:?}");
        }
        let (body, ended, _) = dechunk(b"3\r\nabc\r\n", 4).unwrap();
        assert_eq!((body.as_slice(), ended), (&b"abc"[..], false));
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for raw in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            assert_eq!(dechunk(raw, raw.len()).unwrap_err(), CodecError::Chunked);
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert_eq!(dechunk(&long, long.len()).unwrap_err(), CodecError::Chunked);
    }

    proptest::proptest! {
        /// Whatever an upstream sends, parsing answers (a head, more, or an error) and
        /// never panics; a complete head is taken out of the buffer whole.
        #[test]
        fn any_bytes_parse_without_panicking(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut buf = BytesMut::from(&raw[..]);
            let before = buf.len();
            if let Ok(Some(_)) = parse_response_head(&mut buf, &Method::GET) {
                proptest::prop_assert!(buf.len() < before);
            }
        }

        /// A body chunked any way and fed in any pieces decodes to itself.
        #[test]
        fn chunked_round_trips(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            chunk in 1usize..300,
            step in 1usize..50,
        ) {
            let mut raw = Vec::new();
            for piece in body.chunks(chunk) {
                encode_chunk(&mut raw, piece);
            }
            raw.extend_from_slice(LAST_CHUNK);
            let (decoded, ended, rest) = dechunk(&raw, step).unwrap();
            proptest::prop_assert_eq!(decoded, body);
            proptest::prop_assert!(ended && rest.is_empty());
        }

        /// Arbitrary bytes as a chunked body: data, more, an end or an error; no panic.
        #[test]
        fn any_bytes_dechunk_without_panicking(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), step in 1usize..50) {
            let _ = dechunk(&raw, step);
        }
    }
}
