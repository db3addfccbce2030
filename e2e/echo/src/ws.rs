//! A minimal WebSocket (RFC 6455) for tests: the handshake key, frame read/write, a
//! client handshake, and the server's echo loop. No extensions, no fragmentation
//! reassembly (fragments are echoed one by one, which preserves the message).

use std::io;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID that RFC 6455 appends to the client's key.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload accepted in one frame: a guard for tests, not a protocol limit.
pub const MAX_PAYLOAD: u64 = 16 << 20;

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// One frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Final fragment of a message.
    pub fin: bool,
    /// Opcode (`OP_*`).
    pub opcode: u8,
    /// Payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final text frame.
    pub fn text(text: &str) -> Frame {
        Frame {
            fin: true,
            opcode: OP_TEXT,
            payload: text.as_bytes().to_vec(),
        }
    }

    /// A final binary frame.
    pub fn binary(data: &[u8]) -> Frame {
        Frame {
            fin: true,
            opcode: OP_BINARY,
            payload: data.to_vec(),
        }
    }

    /// A close frame with status 1000 (normal closure).
    pub fn close() -> Frame {
        Frame {
            fin: true,
            opcode: OP_CLOSE,
            payload: 1000u16.to_be_bytes().to_vec(),
        }
    }
}

/// Encodes a frame; clients must pass a mask, servers must not.
pub fn encode_frame(frame: &Frame, mask: Option<[u8; 4]>) -> Vec<u8> {
    let len = frame.payload.len();
    let mut out = Vec::with_capacity(len + 14);
    out.push(u8::from(frame.fin) << 7 | (frame.opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(
                frame
                    .payload
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i % 4]),
            );
        }
        None => out.extend_from_slice(&frame.payload),
    }
    out
}

/// Writes one frame (see [`encode_frame`]).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    mask: Option<[u8; 4]>,
) -> io::Result<()> {
    w.write_all(&encode_frame(frame, mask)).await?;
    w.flush().await
}

/// Reads one frame and unmasks it. `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("websocket frame of {len} bytes is over the {MAX_PAYLOAD} limit"),
        ));
    }
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// The server side after the 101: echoes data frames (same opcode and fin, unmasked),
/// answers pings with pongs, answers a close with a close and returns.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    while let Some(frame) = read_frame(stream).await? {
        match frame.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => write_frame(stream, &frame, None).await?,
            OP_PING => {
                let pong = Frame {
                    fin: true,
                    opcode: OP_PONG,
                    payload: frame.payload,
                };
                write_frame(stream, &pong, None).await?
            }
            OP_PONG => {}
            OP_CLOSE => {
                write_frame(stream, &frame, None).await?;
                break;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown websocket opcode {other:#x}"),
                ))
            }
        }
    }
    stream.shutdown().await
}

/// Performs a client handshake over `stream` (HTTP/1.1 `GET path` with `Host: host`) and
/// checks the server's 101 and `Sec-WebSocket-Accept`. Returns the response head's
/// headers (lowercase names). Reads exactly the response head, no more, so frames that
/// follow stay in the stream.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> io::Result<Vec<(String, String)>> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .to_be_bytes();
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(invalid("websocket response head over 64 KiB"));
        }
        head.push(stream.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(invalid(&format!("websocket handshake refused: {status}")));
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let accept = headers
        .iter()
        .find(|(n, _)| n == "sec-websocket-accept")
        .map(|(_, v)| v.as_str());
    if accept != Some(accept_key(&key).as_str()) {
        return Err(invalid("wrong or missing Sec-WebSocket-Accept"));
    }
    Ok(headers)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_one_of_rfc_6455() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_masked_hello_matches_the_rfc_example() {
        // RFC 6455 section 5.7: masked "Hello".
        let bytes = encode_frame(&Frame::text("Hello"), Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            bytes,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[tokio::test]
    async fn frames_of_every_length_class_round_trip() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let frame = Frame::binary(&vec![7u8; len]);
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = encode_frame(&frame, mask);
                let back = read_frame(&mut bytes.as_slice()).await.unwrap().unwrap();
                assert_eq!(back, frame, "len {len} mask {mask:?}");
            }
        }
        assert_eq!(read_frame(&mut &b""[..]).await.unwrap(), None);
    }
}
