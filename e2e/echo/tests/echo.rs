//! The echo server over real sockets on 127.0.0.1: HTTP/1.1, h2c, TLS, WebSocket, and
//! the binary.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ironlb_echo::ws::{self, Frame};
use ironlb_echo::{tls_config_from_pem, EchoConfig, EchoHandle, EchoReply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(30);

async fn echo(cfg: EchoConfig) -> EchoHandle {
    cfg.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

struct Answer {
    status: StatusCode,
    pod_header: String,
    reply: Option<EchoReply>,
}

/// Sends one request over HTTP/1.1 or HTTP/2 (prior knowledge) on `io`.
async fn send<S>(io: S, version: Version, req: Request<Full<Bytes>>) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let resp = if version == Version::HTTP_2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let pod_header = resp.headers()["x-echo-pod"].to_str().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        pod_header,
        reply: serde_json::from_slice(&body).ok(),
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn an_http1_request_is_answered_with_the_backend_and_what_it_saw() {
    let server = echo(EchoConfig::new("web", "web-7")).await;
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let me = stream.local_addr().unwrap();
    let req = Request::post("/shop/cart?item=42&n=2")
        .header("host", "shop.example.test")
        .header("x-test", "one")
        .header("x-test", "two")
        .body(Full::new(Bytes::from_static(b"hello body")))
        .unwrap();
    let answer = tokio::time::timeout(LIMIT, send(stream, Version::HTTP_11, req))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.pod_header, "web-7");
    let reply = answer.reply.expect("a JSON reply");
    assert_eq!(reply.service, "web");
    assert_eq!(reply.pod, "web-7");
    assert_eq!(reply.method, "POST");
    assert_eq!(reply.path, "/shop/cart?item=42&n=2");
    assert_eq!(reply.host, "shop.example.test");
    assert_eq!(reply.protocol, "HTTP/1.1");
    assert_eq!(reply.headers["x-test"], "one, two");
    assert_eq!(reply.client, me.to_string());
    assert_eq!(reply.local, server.addr().to_string());
    assert_eq!(reply.body_length, 10);
    assert!(!reply.tls);
    assert_eq!(reply.sni, None);
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_on_the_same_port() {
    let server = echo(EchoConfig::new("web", "web-1")).await;
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let req = get("http://h2.example.test/grpc-ish?x=1");
    let answer = tokio::time::timeout(LIMIT, send(stream, Version::HTTP_2, req))
        .await
        .unwrap();
    let reply = answer.reply.unwrap();
    assert_eq!(reply.protocol, "HTTP/2.0");
    assert_eq!(reply.host, "h2.example.test");
    assert_eq!(reply.path, "/grpc-ish?x=1");
    assert_eq!(reply.method, "GET");
}

fn tls_client(
    alpn: &[&str],
    ca_der: rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_serves_h2_and_http1_by_alpn_and_reports_sni() {
    let cert = rcgen::generate_simple_self_signed(vec!["echo.example.test".to_string()]).unwrap();
    let tls = tls_config_from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let server = echo(EchoConfig::new("secure", "secure-0").with_tls(tls)).await;
    assert!(server.url().starts_with("https://"));
    for (alpn, version, protocol) in [
        ("h2", Version::HTTP_2, "HTTP/2.0"),
        ("http/1.1", Version::HTTP_11, "HTTP/1.1"),
    ] {
        let connector = tls_client(&[alpn], cert.cert.der().clone());
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("echo.example.test").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let req = Request::get("https://echo.example.test/tls")
            .header("host", "echo.example.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = tokio::time::timeout(LIMIT, send(stream, version, req))
            .await
            .unwrap()
            .reply
            .unwrap();
        assert!(reply.tls);
        assert_eq!(reply.sni.as_deref(), Some("echo.example.test"));
        assert_eq!(reply.alpn.as_deref(), Some(alpn));
        assert_eq!(reply.protocol, protocol);
        assert_eq!(reply.pod, "secure-0");
    }
}

#[tokio::test]
async fn status_and_delay_come_from_the_config_or_the_request() {
    let server =
        echo(EchoConfig::new("flaky", "flaky-0").with_status(StatusCode::SERVICE_UNAVAILABLE))
            .await;
    let plain = send(
        TcpStream::connect(server.addr()).await.unwrap(),
        Version::HTTP_11,
        get("/"),
    )
    .await;
    assert_eq!(plain.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(plain.reply.unwrap().pod, "flaky-0");

    let req = Request::get("/")
        .header(ironlb_echo::STATUS_HEADER, "418")
        .header(ironlb_echo::DELAY_HEADER, "150")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = Instant::now();
    let overridden = tokio::time::timeout(
        LIMIT,
        send(
            TcpStream::connect(server.addr()).await.unwrap(),
            Version::HTTP_11,
            req,
        ),
    )
    .await
    .unwrap();
    assert_eq!(overridden.status, StatusCode::IM_A_TEAPOT);
    // A sleep never ends early, so this lower bound holds on any machine.
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn websocket_frames_are_echoed_after_the_upgrade() {
    let server = echo(EchoConfig::new("chat", "chat-2")).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let round_trip = async {
        let headers = ws::client_handshake(&mut stream, "chat.example.test", "/socket")
            .await
            .unwrap();
        assert!(headers.contains(&("x-echo-pod".to_string(), "chat-2".to_string())));
        let mask = Some([9, 8, 7, 6]);
        let big = vec![0xabu8; 70_000];
        for frame in [Frame::text("hello, ws"), Frame::binary(&big)] {
            ws::write_frame(&mut stream, &frame, mask).await.unwrap();
            let back = ws::read_frame(&mut stream).await.unwrap().unwrap();
            assert_eq!(back, frame);
        }
        let ping = Frame {
            fin: true,
            opcode: ws::OP_PING,
            payload: b"are you there".to_vec(),
        };
        ws::write_frame(&mut stream, &ping, mask).await.unwrap();
        let pong = ws::read_frame(&mut stream).await.unwrap().unwrap();
        assert_eq!((pong.opcode, pong.payload), (ws::OP_PONG, ping.payload));
        ws::write_frame(&mut stream, &Frame::close(), mask)
            .await
            .unwrap();
        let close = ws::read_frame(&mut stream).await.unwrap().unwrap();
        assert_eq!(close, Frame::close());
        assert_eq!(
            ws::read_frame(&mut stream).await.unwrap(),
            None,
            "server closed"
        );
    };
    tokio::time::timeout(LIMIT, round_trip).await.unwrap();
}

/// Starts the binary and reads its `listening on` lines, one per listener.
async fn start_binary(args: &[&str], listeners: usize) -> (std::process::Child, Vec<String>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ironlb-echo"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        (0..listeners)
            .map(|_| {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                line.trim()
                    .strip_prefix("ironlb-echo listening on ")
                    .unwrap_or_else(|| panic!("unexpected line: {line:?}"))
                    .to_string()
            })
            .collect()
    });
    let urls = tokio::time::timeout(LIMIT, lines).await.unwrap().unwrap();
    (child, urls)
}

async fn stop_binary(mut child: std::process::Child) {
    send_sigterm(child.id());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap());
    let status = tokio::time::timeout(LIMIT, status).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_binary_announces_its_listener_and_stops_on_sigterm() {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--service",
        "bin",
        "--pod",
        "bin-3",
    ];
    let (child, urls) = start_binary(&args, 1).await;
    let addr = urls[0].strip_prefix("http://").unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let answer = tokio::time::timeout(LIMIT, send(stream, Version::HTTP_11, get("/from-test")))
        .await
        .unwrap();
    let reply = answer.reply.unwrap();
    assert_eq!(
        (reply.service.as_str(), reply.pod.as_str()),
        ("bin", "bin-3")
    );
    stop_binary(child).await;
}

/// CI once saw the binary die of a SIGTERM sent right after its `listening on` line:
/// the handler was installed only after the line. Many tries make that race show.
#[tokio::test]
async fn a_sigterm_right_after_the_announcement_is_a_clean_stop() {
    for _ in 0..30 {
        let (child, _) = start_binary(&["--listen", "127.0.0.1:0"], 1).await;
        stop_binary(child).await;
    }
}

#[tokio::test]
async fn the_binary_serves_tls_from_pem_files() {
    let cert = rcgen::generate_simple_self_signed(vec!["bin.example.test".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ironlb-echo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let files = [
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ];
    // Certificates with --tls-listen: --listen stays plain. Without: --listen is TLS.
    let mut both = vec!["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"];
    both.extend_from_slice(&files);
    let (child, urls) = start_binary(&both, 2).await;
    assert!(
        urls[0].starts_with("http://") && urls[1].starts_with("https://"),
        "{urls:?}"
    );
    stop_binary(child).await;
    let mut only = vec!["--listen", "127.0.0.1:0"];
    only.extend_from_slice(&files);
    let (child, urls) = start_binary(&only, 1).await;
    let addr = urls[0].strip_prefix("https://").expect("a TLS listener");

    let connector = tls_client(&["h2"], cert.cert.der().clone());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("bin.example.test").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let reply = tokio::time::timeout(
        LIMIT,
        send(stream, Version::HTTP_2, get("https://bin.example.test/")),
    )
    .await
    .unwrap()
    .reply
    .unwrap();
    assert!(reply.tls);
    assert_eq!(reply.alpn.as_deref(), Some("h2"));
    stop_binary(child).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn send_sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
