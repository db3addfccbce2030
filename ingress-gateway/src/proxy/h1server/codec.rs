//! HTTP/1.1 requests from clients and the responses to them, pure (RFC 9112): the
//! request head the gateway reads and how its body is framed (strictly: a request a
//! backend could frame differently is refused, not guessed at), and the response head
//! it writes. The I/O around them is [`super`].

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{header, HeaderMap, Method, Request, StatusCode, Uri, Version};

use crate::proxy::h1codec::{content_length, field_spans, header_map, tokens};

/// Most header fields in one request head (hyper's limit is 100, nginx has none but its
/// buffer size).
pub const MAX_REQUEST_HEADERS: usize = 128;

/// A request the gateway refuses before routing it; the connection is closed after the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not HTTP/1.x, or broken syntax (httparse's verdict, a bad target or field).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The head did not end within the configured number of bytes.
    #[error("request header block over {0} bytes")]
    HeadTooLarge(usize),
    /// More than [`MAX_REQUEST_HEADERS`] fields.
    #[error("more than {MAX_REQUEST_HEADERS} header fields")]
    TooManyFields,
    /// Framing a backend might read differently (request smuggling): Content-Length
    /// with Transfer-Encoding, Content-Length values that disagree, Transfer-Encoding
    /// on HTTP/1.0, a chunked coding that is not the last one.
    #[error("ambiguous request framing: {0}")]
    Framing(&'static str),
    /// A transfer coding other than `chunked` (the body cannot be passed on as sent).
    #[error("unsupported transfer coding {0:?}")]
    TransferCoding(String),
    /// CONNECT: the gateway is a reverse proxy, not a tunnel.
    #[error("CONNECT is not supported")]
    Connect,
}

impl RequestError {
    /// The status the client is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Malformed(_) | RequestError::Framing(_) => StatusCode::BAD_REQUEST,
            RequestError::HeadTooLarge(_) | RequestError::TooManyFields => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            RequestError::TransferCoding(_) | RequestError::Connect => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes (more than zero).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and fields (all of them, hop-by-hop ones included).
    pub request: Request<()>,
    /// How the body that follows is delimited.
    pub framing: RequestBodyFraming,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
}

/// Parses a request head at the start of `buf`. When complete, the head's bytes are
/// taken out of `buf` (fields share them, no copy); `Ok(None)` means more bytes are
/// needed. A head longer than `max_head` bytes is [`RequestError::HeadTooLarge`].
pub fn parse_request_head(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<RequestHead>, RequestError> {
    // Uninitialized: this runs for every request, and zeroing 128 fields is 4 KiB.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Err(RequestError::HeadTooLarge(max_head)),
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(RequestError::HeadTooLarge(max_head))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyFields),
        Err(e) => return Err(RequestError::Malformed(e.to_string())),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| RequestError::Malformed("method".into()))?;
    if method == Method::CONNECT {
        return Err(RequestError::Connect);
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let target = req.path.unwrap_or_default();
    let base = buf.as_ptr() as usize;
    let target_at = target.as_ptr() as usize - base;
    let target = target_at..target_at + target.len();
    let spans = field_spans(buf, req.headers);
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target))
        .map_err(|e| RequestError::Malformed(format!("request target: {e}")))?;
    // Room for what the proxy adds: X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP,
    // X-Request-ID.
    let headers = header_map(&head, &spans, 6).map_err(RequestError::Malformed)?;

    let framing = body_framing(&headers, version)?;
    let http10 = version == Version::HTTP_10;
    let mut keep_alive = !http10;
    for token in tokens(&headers, &header::CONNECTION) {
        if token.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
            keep_alive = true;
        }
    }
    let expect_continue = !http10
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        request,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// RFC 9112 §6, strictly: what the gateway reads as the body is what any backend reads.
fn body_framing(headers: &HeaderMap, version: Version) -> Result<RequestBodyFraming, RequestError> {
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(RequestError::Framing("Transfer-Encoding on HTTP/1.0"));
        }
        if has_length {
            return Err(RequestError::Framing(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        let codings: Vec<&str> = tokens(headers, &header::TRANSFER_ENCODING).collect();
        let chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
        return match codings.as_slice() {
            [only] if chunked(only) => Ok(RequestBodyFraming::Chunked),
            [rest @ .., _] if rest.iter().any(chunked) => Err(RequestError::Framing(
                "chunked is not the last transfer coding",
            )),
            [.., last] if chunked(last) => {
                // `gzip, chunked`: the gateway forwards the body re-chunked without the
                // other codings, which would change it.
                Err(RequestError::TransferCoding(codings.join(", ")))
            }
            [] => Err(RequestError::Framing("empty Transfer-Encoding")),
            _ => Err(RequestError::Framing(
                "chunked is not the last transfer coding",
            )),
        };
    }
    if !has_length {
        return Ok(RequestBodyFraming::Empty);
    }
    match content_length(headers) {
        Ok(0) => Ok(RequestBodyFraming::Empty),
        Ok(n) => Ok(RequestBodyFraming::Length(n)),
        Err(_) => Err(RequestError::Framing("invalid Content-Length")),
    }
}

/// How a response body is delimited on the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body follows: a response to HEAD, 1xx, 204 or 304 (a Content-Length the
    /// response carries is passed on: it describes the body a GET would get).
    NoBody,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients, length unknown).
    Chunked,
    /// Until the gateway closes the connection (HTTP/1.0 clients, length unknown).
    UntilClose,
}

impl ResponseFraming {
    /// The framing of a response with `status` to a request (`head_request`: HEAD) from
    /// a client speaking `version`, whose body is `body_len` bytes when known.
    pub fn of(
        status: StatusCode,
        head_request: bool,
        version: Version,
        body_len: Option<u64>,
    ) -> Self {
        if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            ResponseFraming::NoBody
        } else if let Some(n) = body_len {
            ResponseFraming::Length(n)
        } else if version == Version::HTTP_10 {
            ResponseFraming::UntilClose
        } else {
            ResponseFraming::Chunked
        }
    }
}

/// What the response's `Connection` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionField {
    /// Nothing: HTTP/1.1 keeps the connection by default.
    Omit,
    /// `keep-alive`: an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `close`: the gateway closes the connection after this response.
    Close,
}

/// Appends the response head to `buf`: the status line, the fields of `headers`
/// (framing fields replaced by `framing`'s), `date` when the response has none, and
/// `connection`. A 101 response keeps its `Connection: upgrade` and `Upgrade` fields.
pub fn encode_response_head(
    buf: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    connection: ConnectionField,
    date: &[u8],
) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(status.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    buf.extend_from_slice(b"\r\n");
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        let framing_field = *name == header::TRANSFER_ENCODING
            || (*name == header::CONTENT_LENGTH && framing != ResponseFraming::NoBody);
        if framing_field || (*name == header::CONNECTION && !upgrade) {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Length(n) => {
            buf.extend_from_slice(b"content-length: ");
            buf.extend_from_slice(itoa(n, &mut [0; 20]));
            buf.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::NoBody | ResponseFraming::UntilClose => {}
    }
    if !headers.contains_key(header::DATE) {
        buf.extend_from_slice(b"date: ");
        buf.extend_from_slice(date);
        buf.extend_from_slice(b"\r\n");
    }
    match connection {
        ConnectionField::Omit => {}
        ConnectionField::KeepAlive => buf.extend_from_slice(b"connection: keep-alive\r\n"),
        ConnectionField::Close => buf.extend_from_slice(b"connection: close\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// The decimal digits of `n`, written into `digits`.
fn itoa(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

/// The head bytes of `raw` parsed, for tests.
#[cfg(test)]
fn parse(raw: &str) -> Result<Option<RequestHead>, RequestError> {
    parse_request_head(&mut BytesMut::from(raw), 64 * 1024)
}

/// A response head as text, for tests.
#[cfg(test)]
fn encoded(status: u16, headers: &[(&str, &str)], framing: ResponseFraming) -> String {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut buf = Vec::new();
    encode_response_head(
        &mut buf,
        StatusCode::from_u16(status).unwrap(),
        &map,
        framing,
        ConnectionField::Omit,
        b"Mon, 23 Nov 2026 18:00:00 GMT",
    );
    String::from_utf8(buf).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_is_taken_out_of_the_buffer_with_its_fields() {
        let mut buf = BytesMut::from(
            "POST /cart?x=1 HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 3\r\n\r\nabcGET",
        );
        let head = parse_request_head(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.uri(), "/cart?x=1");
        assert_eq!(head.request.version(), Version::HTTP_11);
        assert_eq!(head.request.headers()["host"], "shop.example.com");
        assert_eq!(head.framing, RequestBodyFraming::Length(3));
        assert!(head.keep_alive && !head.expect_continue);
        assert_eq!(&buf[..], b"abcGET", "the body and what follows stay");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_long_one_is_431() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a").unwrap().is_none());
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        let err = parse_request_head(&mut BytesMut::from(long.as_str()), 1024).unwrap_err();
        assert_eq!(err, RequestError::HeadTooLarge(1024));
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let complete = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        let err = parse_request_head(&mut BytesMut::from(complete.as_str()), 1024).unwrap_err();
        assert_eq!(err, RequestError::HeadTooLarge(1024));
        let many: String = (0..=MAX_REQUEST_HEADERS)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let err = parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err();
        assert_eq!(err, RequestError::TooManyFields);
    }

    #[test]
    fn garbage_is_400_not_a_panic() {
        for raw in [
            "this is not http\r\n\r\n",
            "GET /\x01bad HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            "\0\0\0\0",
        ] {
            let err = parse(raw).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{raw:?}: {err}");
        }
    }

    #[test]
    fn the_body_framing_is_strict_against_smuggling() {
        let framing = |fields: &str| {
            parse(&format!("POST / HTTP/1.1\r\n{fields}\r\n")).map(|h| h.unwrap().framing)
        };
        assert_eq!(framing(""), Ok(RequestBodyFraming::Empty));
        assert_eq!(
            framing("Content-Length: 0\r\n"),
            Ok(RequestBodyFraming::Empty)
        );
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(RequestBodyFraming::Length(5))
        );
        assert_eq!(
            framing("Transfer-Encoding: Chunked\r\n"),
            Ok(RequestBodyFraming::Chunked)
        );
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Transfer-Encoding: ,\r\n",
        ] {
            let err = framing(bad).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad:?}: {err}");
        }
        let err = framing("Transfer-Encoding: gzip, chunked\r\n").unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_IMPLEMENTED);
        let err = parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn keep_alive_and_expect_follow_version_and_fields() {
        let head = |raw: &str| parse(raw).unwrap().unwrap();
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(h.request.version(), Version::HTTP_10);
        let h = head("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 9\r\n\r\n");
        assert!(h.expect_continue);
        let h = head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
        assert!(!h.expect_continue, "HTTP/1.0 clients do not wait for 100");
    }

    #[test]
    fn absolute_and_asterisk_targets_parse() {
        let h = parse("GET http://shop.example.com/a?b HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.request.uri().authority().unwrap(), "shop.example.com");
        assert_eq!(h.request.uri().path(), "/a");
        let h = parse("OPTIONS * HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.request.uri(), "*");
        let err = parse("CONNECT shop.example.com:443 HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn the_response_head_carries_the_framing_of_the_gateway() {
        let head = encoded(
            200,
            &[
                ("x-a", "1"),
                ("content-length", "999"),
                ("transfer-encoding", "chunked"),
            ],
            ResponseFraming::Length(12),
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 12\r\n\
             date: Mon, 23 Nov 2026 18:00:00 GMT\r\n\r\n"
        );
        let head = encoded(200, &[("date", "yesterday")], ResponseFraming::Chunked);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ndate: yesterday\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // HEAD and 304 keep the Content-Length of the body they stand for.
        let head = encoded(304, &[("content-length", "5")], ResponseFraming::NoBody);
        assert!(head.contains("content-length: 5\r\n"), "{head}");
        let head = encoded(
            101,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
            ResponseFraming::NoBody,
        );
        assert!(
            head.starts_with(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
            ),
            "{head}"
        );
        let mut buf = Vec::new();
        encode_response_head(
            &mut buf,
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            ResponseFraming::Length(0),
            ConnectionField::Close,
            b"D",
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\ndate: D\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_framing_follows_the_request_and_the_body() {
        use ResponseFraming::*;
        let of = ResponseFraming::of;
        assert_eq!(
            of(StatusCode::OK, false, Version::HTTP_11, Some(3)),
            Length(3)
        );
        assert_eq!(of(StatusCode::OK, false, Version::HTTP_11, None), Chunked);
        assert_eq!(
            of(StatusCode::OK, false, Version::HTTP_10, None),
            UntilClose
        );
        assert_eq!(of(StatusCode::OK, true, Version::HTTP_11, None), NoBody);
        assert_eq!(
            of(StatusCode::NO_CONTENT, false, Version::HTTP_11, Some(0)),
            NoBody
        );
        assert_eq!(
            of(StatusCode::NOT_MODIFIED, false, Version::HTTP_11, None),
            NoBody
        );
        let mut digits = [0; 20];
        assert_eq!(itoa(0, &mut digits), b"0");
        assert_eq!(itoa(u64::MAX, &mut digits), b"18446744073709551615");
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing answers (a head, more, or an error) and never
        /// panics; a complete head is taken out of the buffer whole.
        #[test]
        fn any_bytes_parse_without_panicking(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut buf = BytesMut::from(&raw[..]);
            let before = buf.len();
            if let Ok(Some(_)) = parse_request_head(&mut buf, 300) {
                proptest::prop_assert!(buf.len() < before);
            }
        }

        /// Request-shaped input with random fields: never a panic, and a body is framed
        /// only by one Content-Length or a lone chunked coding.
        #[test]
        fn framing_is_one_of_the_unambiguous_kinds(
            fields in proptest::collection::vec(
                proptest::sample::select(vec![
                    "Content-Length: 5", "Content-Length: 6", "Content-Length: 0",
                    "Transfer-Encoding: chunked", "Transfer-Encoding: gzip",
                    "Connection: close", "Host: a.example.com", "Expect: 100-continue",
                ]),
                0..5,
            ),
        ) {
            let raw = format!("POST / HTTP/1.1\r\n{}\r\n\r\n", fields.join("\r\n"));
            let lengths = fields.iter().filter(|f| f.starts_with("Content-Length")).count();
            let codings = fields.iter().filter(|f| f.starts_with("Transfer")).count();
            match parse(&raw) {
                Ok(Some(h)) => match h.framing {
                    RequestBodyFraming::Chunked => proptest::prop_assert!(lengths == 0 && codings == 1),
                    RequestBodyFraming::Length(_) => proptest::prop_assert!(codings == 0),
                    RequestBodyFraming::Empty => proptest::prop_assert!(codings == 0),
                },
                Ok(None) => proptest::prop_assert!(false, "complete head"),
                Err(_) => proptest::prop_assert!(lengths + codings > 1 || fields.contains(&"Transfer-Encoding: gzip")),
            }
        }
    }
}
