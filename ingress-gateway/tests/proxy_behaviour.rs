//! In-process tests of the data path: a gateway on 127.0.0.1 serving a route table
//! compiled from plain inputs, in front of in-process `ironlb-echo` backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ironlb_echo::{EchoConfig, EchoHandle, EchoReply};
use ironlb_gateway::metrics::Metrics;
use ironlb_gateway::proxy::{self, Listen, ProxyConfig, ProxyHandle};
use ironlb_gateway::snapshot::{SharedSnapshot, Snapshot};
use ironlb_routes::{compile, EndpointSliceInput, IngressInput, Inputs, ServiceInput};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

// === fixtures ===

/// Backends by service name, each one or more echo servers.
struct Backends {
    echoes: Vec<EchoHandle>,
    services: Vec<ServiceInput>,
    slices: Vec<EndpointSliceInput>,
}

impl Backends {
    fn new() -> Self {
        Self {
            echoes: Vec::new(),
            services: Vec::new(),
            slices: Vec::new(),
        }
    }

    /// A Service `shop/<name>` port 80 whose endpoints are the given echo servers.
    async fn service(mut self, name: &str, pods: &[EchoConfig]) -> Self {
        self.services
            .push(ServiceInput::new("shop", name).named_target("http", 80, "http"));
        for cfg in pods {
            let echo = cfg.clone().spawn(localhost()).await.unwrap();
            let port = echo.addr().port();
            self.echoes.push(echo);
            self = self.with_endpoint(name, port);
        }
        self
    }

    /// A Service whose only endpoint is a closed port (connection refused).
    fn dead_service(self, name: &str) -> Self {
        self.raw_service(name, closed_port())
    }

    /// Adds a dead endpoint to an existing service.
    fn with_dead_endpoint(self, name: &str) -> Self {
        self.with_endpoint(name, closed_port())
    }

    /// A Service whose only endpoint is `port` on 127.0.0.1 (a backend the test runs).
    fn raw_service(mut self, name: &str, port: u16) -> Self {
        self.services
            .push(ServiceInput::new("shop", name).named_target("http", 80, "http"));
        self.with_endpoint(name, port)
    }

    /// Adds the ready endpoint 127.0.0.1:`port` to Service `name`.
    fn with_endpoint(mut self, name: &str, port: u16) -> Self {
        self.slices.push(
            EndpointSliceInput::new("shop", name)
                .port("http", port)
                .ready("127.0.0.1"),
        );
        self
    }

    /// A Service without any endpoint.
    fn empty_service(mut self, name: &str) -> Self {
        self.services
            .push(ServiceInput::new("shop", name).named_target("http", 80, "http"));
        self
    }

    fn inputs(&self, ingresses: Vec<IngressInput>) -> Inputs {
        Inputs::new(ingresses, self.services.clone(), self.slices.clone())
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback port nothing listens on (connection refused).
fn closed_port() -> u16 {
    ironlb_e2e::support::free_port()
}

fn pod(service: &str, pod: &str) -> EchoConfig {
    EchoConfig::new(service, pod)
}

fn ingress(name: &str) -> IngressInput {
    IngressInput::new("shop", name).created(1_700_000_000)
}

struct Gateway {
    http: SocketAddr,
    https: SocketAddr,
    snapshot: SharedSnapshot,
    default_cert: Arc<CertifiedKey>,
    certs: BTreeMap<String, Arc<CertifiedKey>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    handle: Option<ProxyHandle>,
}

impl Gateway {
    async fn start(inputs: &Inputs) -> Gateway {
        Gateway::start_with(inputs, ProxyConfig::new()).await
    }

    async fn start_with(inputs: &Inputs, mut cfg: ProxyConfig) -> Gateway {
        let default_cert = Arc::new(ironlb_gateway::tls::self_signed_default());
        let snapshot: SharedSnapshot =
            Arc::new(ArcSwap::from_pointee(Snapshot::empty(default_cert.clone())));
        cfg.http = Some(Listen::Std(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        ));
        cfg.https = Some(Listen::Std(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        ));
        let metrics = Arc::new(Metrics::unregistered());
        let shutdown = CancellationToken::new();
        let handle = proxy::serve(cfg, snapshot.clone(), metrics.clone(), shutdown.clone())
            .await
            .unwrap();
        let gw = Gateway {
            http: handle.http_addr.unwrap(),
            https: handle.https_addr.unwrap(),
            snapshot,
            default_cert,
            certs: BTreeMap::new(),
            metrics,
            shutdown,
            handle: Some(handle),
        };
        gw.set_routes(inputs);
        gw
    }

    fn set_routes(&self, inputs: &Inputs) {
        let (routes, _diagnostics) = compile(inputs);
        let current = self.snapshot.load();
        self.snapshot.store(Arc::new(Snapshot {
            routes,
            certs: self
                .certs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_cert: self.default_cert.clone(),
            generation: current.generation + 1,
        }));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

// === clients ===

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A gateway with `cfg` routing every path of shop.example.com to Service `web`.
async fn shop_web(b: &Backends, cfg: ProxyConfig) -> Gateway {
    Gateway::start_with(
        &b.inputs(vec![ingress("shop").prefix(
            "shop.example.com",
            "/",
            "web",
            80,
        )]),
        cfg,
    )
    .await
}

/// `shop_web` in front of a backend of the test's own on 127.0.0.1:`port`.
async fn shop_web_on(port: u16) -> Gateway {
    shop_web_on_annotated(port, &[], ProxyConfig::new()).await
}

/// `shop_web_on` with `annotations` on the Ingress (names after
/// `nginx.ingress.kubernetes.io/`).
async fn shop_web_on_annotated(
    port: u16,
    annotations: &[(&str, &str)],
    cfg: ProxyConfig,
) -> Gateway {
    let b = Backends::new().raw_service("web", port);
    let mut shop = ingress("shop");
    for (name, value) in annotations {
        shop = shop.annotation(&format!("nginx.ingress.kubernetes.io/{name}"), value);
    }
    Gateway::start_with(
        &b.inputs(vec![shop.prefix("shop.example.com", "/", "web", 80)]),
        cfg,
    )
    .await
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn h1_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn echo(&self) -> EchoReply {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not an echo reply ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn pod(&self) -> String {
        self.echo().pod
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn read(resp: Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("response body in time")
        .expect("response body")
        .to_bytes();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
    req: Request<Body>,
) -> Reply {
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("response in time")
        .expect("response");
    read(resp).await
}

/// An HTTP/2 connection with prior knowledge to the gateway's plain listener: its
/// request sender and the task driving it (which ends when the gateway closes it).
async fn h2c_connect(
    gw: &Gateway,
) -> (
    hyper::client::conn::http2::SendRequest<Body>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (sender, tokio::spawn(conn))
}

/// A GET of `uri` (its authority names the virtual host) on an HTTP/2 connection,
/// answered within `WAIT`.
async fn h2c_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Body>,
    uri: &str,
) -> Response<hyper::body::Incoming> {
    let req = Request::get(uri).body(full("")).unwrap();
    tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap()
}

fn get(gw: &Gateway, host: &str, path: &str) -> Request<Body> {
    Request::get(gw.url(path))
        .header("host", host)
        .body(full(""))
        .unwrap()
}

fn post(gw: &Gateway, host: &str, path: &str, body: Body) -> Request<Body> {
    Request::post(gw.url(path))
        .header("host", host)
        .body(body)
        .unwrap()
}

async fn get_h1(gw: &Gateway, host: &str, path: &str) -> Reply {
    send(&h1_client(), get(gw, host, path)).await
}

// === routing ===

#[tokio::test]
async fn hosts_and_paths_reach_their_services() {
    let b = Backends::new()
        .service("web", &[pod("web", "web-1")])
        .await
        .service("api", &[pod("api", "api-1")])
        .await
        .service("blog", &[pod("blog", "blog-1")])
        .await;
    let inputs = b.inputs(vec![ingress("shop")
        .prefix("shop.example.com", "/", "web", 80)
        .prefix("shop.example.com", "/api", "api", 80)
        .exact("blog.example.com", "/", "blog", 80)]);
    let gw = Gateway::start(&inputs).await;

    let r = get_h1(&gw, "shop.example.com", "/cart").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echo().service, "web");
    assert_eq!(r.echo().path, "/cart");
    assert_eq!(r.echo().host, "shop.example.com");
    assert_eq!(
        get_h1(&gw, "SHOP.example.com:8080", "/api/users?x=1")
            .await
            .echo()
            .service,
        "api"
    );
    assert_eq!(
        get_h1(&gw, "shop.example.com", "/apis")
            .await
            .echo()
            .service,
        "web"
    );
    assert_eq!(
        get_h1(&gw, "blog.example.com", "/").await.echo().service,
        "blog"
    );
    let nf = get_h1(&gw, "blog.example.com", "/other").await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert!(nf.text().starts_with("404"));
    assert_eq!(
        get_h1(&gw, "unknown.example.com", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 2);
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    // Prior knowledge over a plain connection; :authority names the virtual host.
    let (mut sender, _conn) = h2c_connect(&gw).await;
    let r = read(h2c_get(&mut sender, "http://shop.example.com/h2").await).await;
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echo().service, "web");
}

#[tokio::test]
async fn h2c_and_grpc_backends_get_http2() {
    let b = Backends::new()
        .service("grpc", &[pod("grpc", "grpc-1")])
        .await;
    let gw = Gateway::start(&b.inputs(vec![ingress("rpc")
        .annotation("nginx.ingress.kubernetes.io/backend-protocol", "GRPC")
        .prefix("rpc.example.com", "/", "grpc", 80)]))
    .await;
    let mut req = get(&gw, "rpc.example.com", "/pkg.Service/Method");
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, StatusCode::OK);
    let echo = r.echo();
    assert_eq!(echo.protocol, "HTTP/2.0");
    assert_eq!(echo.headers.get("te").map(String::as_str), Some("trailers"));

    // An HTTP/1.1 client's body, read from its connection while hyper's HTTP/2 client
    // (another task) sends it on: by length, and chunked in pieces.
    let client = h1_client();
    let upload = |body: Body| post(&gw, "rpc.example.com", "/pkg.Service/Upload", body);
    let r = send(&client, upload(full(vec![b'x'; 300_000]))).await;
    assert_eq!((r.status, r.echo().body_length), (StatusCode::OK, 300_000));
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..20)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 10_000]))))
        .collect();
    let r = send(
        &client,
        upload(StreamBody::new(futures::stream::iter(chunks)).boxed()),
    )
    .await;
    assert_eq!((r.status, r.echo().body_length), (StatusCode::OK, 200_000));
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let client = h1_client();
    let mut sources = std::collections::BTreeSet::new();
    for i in 0..10 {
        // Bodies of both kinds: empty and with a few bytes.
        let req = post(&gw, "shop.example.com", "/", full(vec![b'x'; i]));
        let r = send(&client, req).await;
        assert_eq!(r.echo().body_length, i as u64);
        sources.insert(r.echo().client);
    }
    assert_eq!(
        sources.len(),
        1,
        "one upstream connection for sequential requests: {sources:?}"
    );
}

/// A backend whose keep-alive timer fires just as a request arrives: it answers the
/// first request of each connection ("ok", keep-alive), then closes the connection when
/// the next request comes, without answering it. Returns its port and a count of the
/// connections it accepted.
async fn forgetful_backend() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                for answer in [true, false] {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    head.clear();
                    if answer {
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tcp.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
                // Dropped here: closed with the second request unanswered.
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_request_lost_on_a_pooled_connection_the_backend_closed_is_sent_again() {
    let (port, accepted) = forgetful_backend().await;
    let gw = shop_web_on(port).await;
    let client = h1_client();
    let r = send(&client, get(&gw, "shop.example.com", "/")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    // Idle long enough for a keep-alive timer to fire: the gateway reuses the pooled
    // connection, the backend drops it with the request unanswered, and the gateway
    // sends the request again on a new connection instead of answering 502.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send(&client, get(&gw, "shop.example.com", "/again")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the pooled connection was reused, then replaced"
    );
}

// === upstream HTTP/1.1 framing ===

/// One scripted answer: written in `pieces` (a short pause between them, so the gateway
/// sees them in separate reads), then the connection is closed when `close`.
struct Scripted {
    pieces: Vec<&'static [u8]>,
    close: bool,
}

fn answer(pieces: &[&'static [u8]]) -> Scripted {
    Scripted {
        pieces: pieces.to_vec(),
        close: false,
    }
}

/// A backend that answers the n-th request it reads (over all its connections) with
/// `script[n]`, records every request as received (head and body), and counts
/// connections. Request bodies are read by their Content-Length or to the last chunk.
async fn scripted_backend(
    script: Vec<Scripted>,
) -> (
    u16,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Arc::new(std::sync::Mutex::new(script.into_iter()));
    let (count, record) = (accepted.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (script, record) = (script.clone(), record.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let complete = |got: &[u8]| {
                        let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let body = &got[end + 4..];
                        if head.contains("transfer-encoding: chunked") {
                            let last = body.windows(5).position(|w| w == b"0\r\n\r\n")?;
                            Some(end + 4 + last + 5)
                        } else if let Some(l) = head.split("content-length: ").nth(1) {
                            let n: usize = l.lines().next()?.trim().parse().ok()?;
                            (body.len() >= n).then_some(end + 4 + n)
                        } else {
                            Some(end + 4)
                        }
                    };
                    while complete(&got).is_none() {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let n = complete(&got).unwrap();
                    let request: Vec<u8> = got.drain(..n).collect();
                    record
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let Some(reply) = script.lock().unwrap().next() else {
                        return;
                    };
                    for piece in reply.pieces {
                        if tcp.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if reply.close {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted, seen)
}

#[tokio::test]
async fn upstream_framings_reach_the_client_on_one_kept_alive_connection() {
    let (port, accepted, seen) = scripted_backend(vec![
        answer(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ]),
        answer(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]), // to HEAD
        answer(&[b"HTTP/1.1 204 No Content\r\n\r\n"]),
        answer(&[
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]),
        answer(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
            b"56789",
        ]),
        answer(&[b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"]), // to the POST
    ])
    .await;
    let gw = shop_web_on(port).await;
    let client = h1_client();

    let r = send(&client, get(&gw, "shop.example.com", "/chunked")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello world")
    );
    let head = Request::head(gw.url("/head"))
        .header("host", "shop.example.com")
        .body(full(""))
        .unwrap();
    let r = send(&client, head).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    assert_eq!(r.headers["content-length"], "5");
    let r = send(&client, get(&gw, "shop.example.com", "/empty")).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NO_CONTENT, 0));
    let r = send(&client, get(&gw, "shop.example.com", "/interim")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    let r = send(&client, get(&gw, "shop.example.com", "/pieces")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "0123456789")
    );
    // A body of unknown length goes upstream chunked.
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = ["abc", "defg"]
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::from(c))))
        .collect();
    let req = post(
        &gw,
        "shop.example.com",
        "/upload",
        StreamBody::new(futures::stream::iter(chunks)).boxed(),
    );
    let r = send(&client, req).await;
    assert_eq!(r.status, StatusCode::CREATED);

    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "every exchange ended cleanly, so one upstream connection carried them all"
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen[0].starts_with("GET /chunked HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].starts_with("HEAD /head HTTP/1.1\r\n"),
        "{}",
        seen[1]
    );
    let upload = seen[5].to_ascii_lowercase();
    assert!(
        upload.contains("transfer-encoding: chunked\r\n"),
        "{upload}"
    );
    assert!(
        upload.ends_with("\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"),
        "{upload}"
    );
}

#[tokio::test]
async fn a_body_delimited_by_close_is_passed_on_and_its_connection_not_reused() {
    let (port, accepted, _) = scripted_backend(vec![
        Scripted {
            pieces: vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"close"],
            close: true,
        },
        answer(&[b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"]),
    ])
    .await;
    let gw = shop_web_on(port).await;
    let client = h1_client();
    let r = send(&client, get(&gw, "shop.example.com", "/")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "until close")
    );
    let r = send(&client, get(&gw, "shop.example.com", "/")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "next"));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn broken_upstream_responses_are_502_and_a_truncated_body_is_cut_off() {
    let huge: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let close = |piece: &'static [u8]| Scripted {
        pieces: vec![piece],
        close: true,
    };
    let (port, _, _) = scripted_backend(vec![
        close(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        close(huge),
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx"),
        close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
        answer(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    let gw = shop_web_on(port).await;
    let client = h1_client();
    for what in ["garbage", "huge head", "two lengths"] {
        let r = send(&client, get(&gw, "shop.example.com", "/")).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{what}");
        assert!(r.text().starts_with("502"), "{what}: {}", r.text());
    }
    // Broken after the head: the client's response is cut off (before or after its
    // head went out), never ended as if it were complete.
    for what in ["bad chunk", "short body"] {
        let resp = tokio::time::timeout(WAIT, client.request(get(&gw, "shop.example.com", "/")))
            .await
            .expect("response in time");
        if let Ok(resp) = resp {
            let body = tokio::time::timeout(WAIT, resp.into_body().collect())
                .await
                .expect("body in time");
            assert!(body.is_err(), "{what}: the body must not end cleanly");
        }
    }
    // And the gateway goes on serving.
    let r = send(&client, get(&gw, "shop.example.com", "/")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
}

/// An upstream's 200 answer with a body of `len` bytes, for [`head_only_backend`].
fn ok_with_body(len: usize) -> &'static [u8] {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
    Box::leak(
        [head.into_bytes(), vec![b'x'; len]]
            .concat()
            .into_boxed_slice(),
    )
}

/// A backend that reads a request head only, writes `reply`, and then holds the
/// connection for `hold` without reading more.
async fn head_only_backend(reply: &'static [u8], hold: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(reply).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    port
}

/// A 32 MiB upload through the `shop` gateway (`proxy-body-size: 64m` and
/// `annotations`) to a `head_only_backend` that answers `reply` and holds for `hold`.
async fn upload_to_head_only_backend(
    reply: &'static [u8],
    hold: Duration,
    annotations: &[(&str, &str)],
) -> Reply {
    let port = head_only_backend(reply, hold).await;
    let annotations = [&[("proxy-body-size", "64m")], annotations].concat();
    let gw = shop_web_on_annotated(port, &annotations, ProxyConfig::new()).await;
    let req = post(
        &gw,
        "shop.example.com",
        "/upload",
        full(vec![b'x'; 32 << 20]),
    );
    send(&h1_client(), req).await
}

#[tokio::test]
async fn a_backend_answering_before_it_reads_the_body_is_heard() {
    // Answers 413 after the head; the gateway is still sending a body the backend never
    // reads.
    let r = upload_to_head_only_backend(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig",
        Duration::from_secs(3),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "big")
    );
}

// === errors ===

#[tokio::test]
async fn no_endpoint_is_503_and_a_dead_one_is_502() {
    let b = Backends::new().empty_service("idle").dead_service("gone");
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .prefix("idle.example.com", "/", "idle", 80)
        .prefix("gone.example.com", "/", "gone", 80)]))
    .await;
    let r = get_h1(&gw, "idle.example.com", "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().starts_with("503"));
    let r = get_h1(&gw, "gone.example.com", "/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text().starts_with("502"));
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_a_live_endpoint() {
    let b = Backends::new()
        .service("web", &[pod("web", "web-1")])
        .await
        .with_dead_endpoint("web")
        .with_dead_endpoint("web");
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let client = h1_client();
    for _ in 0..20 {
        let r = send(&client, get(&gw, "shop.example.com", "/")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.pod(), "web-1");
    }
    // A request with a body is retried too: the unread body is sent to the next one.
    for _ in 0..10 {
        let req = post(&gw, "shop.example.com", "/upload", full("hello"));
        let r = send(&client, req).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.echo().body_length, 5);
    }
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let b = Backends::new()
        .service(
            "slow",
            &[pod("slow", "slow-1").with_delay(Duration::from_secs(5))],
        )
        .await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")
        .prefix("slow.example.com", "/", "slow", 80)]))
    .await;
    let r = get_h1(&gw, "slow.example.com", "/").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.text().starts_with("504"));
}

/// An upload slower in total than both timeouts is served while its pieces keep coming
/// (the timeouts are between pieces, as nginx's); one whose client stops sending is 408.
#[tokio::test]
async fn a_slow_upload_that_keeps_moving_is_served_and_a_stalled_one_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")
        .annotation("nginx.ingress.kubernetes.io/proxy-send-timeout", "1")
        .prefix("shop.example.com", "/", "web", 80)]))
    .await;
    let head = b"POST /up HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 8\r\n\
                 Connection: close\r\n\r\n";
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(head).await.unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tcp.write_all(b"x").await.unwrap();
    }
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("answer in time")
        .unwrap();
    let reply = String::from_utf8_lossy(&got);
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"body_length\": 8"), "{reply}");

    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(head).await.unwrap();
    tcp.write_all(b"xyz").await.unwrap();
    let mut got = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut got))
        .await
        .expect("answer in time")
        .unwrap();
    let reply = String::from_utf8_lossy(&got[..n]);
    assert!(status_line(&reply).starts_with("HTTP/1.1 408"), "{reply}");
}

#[tokio::test]
async fn an_upstream_that_stops_taking_the_body_is_504() {
    let r =
        upload_to_head_only_backend(b"", Duration::from_secs(60), &[("proxy-send-timeout", "1")])
            .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
}

#[tokio::test]
async fn a_response_body_that_stops_arriving_is_cut_off_after_the_read_timeout() {
    let port = head_only_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
        Duration::from_secs(60),
    )
    .await;
    let gw = shop_web_on_annotated(port, &[("proxy-read-timeout", "1")], ProxyConfig::new()).await;
    let resp = tokio::time::timeout(WAIT, h1_client().request(get(&gw, "shop.example.com", "/")))
        .await
        .expect("response head in time")
        .expect("response head");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("the body ends in time");
    assert!(body.is_err(), "a cut-off body must not end cleanly");
}

/// A client that takes none of a large response is disconnected after
/// `client_send_timeout` instead of holding its connection and the upstream's for ever;
/// over HTTP/2 that stream alone is reset.
#[tokio::test]
async fn a_client_that_stops_reading_its_response_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: usize = 64 << 20;
    let port = head_only_backend(ok_with_body(BODY), Duration::from_secs(60)).await;
    let mut cfg = ProxyConfig::new();
    cfg.client_send_timeout = Duration::from_secs(1);
    let gw = shop_web_on_annotated(port, &[], cfg).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        .await
        .unwrap();
    // Takes nothing for well over the timeout, then reads what there is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection must end");
    assert!(
        got < BODY,
        "the gateway must have given up: {got} bytes arrived"
    );

    // HTTP/2: the client's stream window shuts (hyper's client takes data only as the
    // body is read); that stream is reset, the connection goes on.
    let (mut sender, h2) = h2c_connect(&gw).await;
    let resp = h2c_get(&mut sender, "http://shop.example.com/big").await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let read = tokio::time::timeout(WAIT, resp.into_body().collect()).await;
    match read {
        Ok(Err(e)) => {
            let reason = std::error::Error::source(&e)
                .and_then(|e| e.downcast_ref::<h2::Error>())
                .and_then(h2::Error::reason);
            assert_eq!(reason, Some(h2::Reason::CANCEL), "{e:?}");
        }
        other => panic!("the body must end short with a reset: {other:?}"),
    }
    assert!(!h2.is_finished(), "the connection must go on");
    let big = h2c_get(&mut sender, "http://shop.example.com/big").await;
    assert_eq!(
        big.status(),
        StatusCode::OK,
        "a second stream on it is served"
    );
    drop(big);
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_keepalive_timeout() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.keepalive_timeout = Duration::from_secs(1);
    let gw = shop_web(&b, cfg).await;
    let (mut sender, h2) = h2c_connect(&gw).await;
    // Requests every 300 ms for over twice the timeout: never idle for it, kept open.
    for _ in 0..8 {
        let resp = h2c_get(&mut sender, "http://shop.example.com/").await;
        assert_eq!(read(resp).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!h2.is_finished(), "a busy HTTP/2 connection was closed");
    // Then idle: closed (GOAWAY, then the end of the connection).
    let ended = tokio::time::timeout(WAIT, h2).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection must be closed");
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 8);
}

/// After `keepalive_requests` requests a connection is closed: HTTP/1.1 answers the
/// last one with `Connection: close`, HTTP/2 sends GOAWAY after its last stream.
#[tokio::test]
async fn a_connection_is_closed_after_its_keepalive_requests() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.keepalive_requests = 3;
    let gw = shop_web(&b, cfg).await;
    let tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let h1 = tokio::spawn(conn);
    for n in 1..=3 {
        let req = Request::get("/")
            .header("host", "shop.example.com")
            .body(full(""))
            .unwrap();
        let resp = tokio::time::timeout(WAIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let close = resp.headers().get("connection").map(|v| v.as_bytes());
        assert_eq!(close, (n == 3).then_some(&b"close"[..]), "response {n}");
        assert_eq!(read(resp).await.status, StatusCode::OK);
    }
    let ended = tokio::time::timeout(WAIT, h1).await;
    assert!(ended.is_ok(), "the HTTP/1.1 connection must end");

    let (mut sender, h2) = h2c_connect(&gw).await;
    for _ in 0..3 {
        let resp = h2c_get(&mut sender, "http://shop.example.com/").await;
        assert_eq!(read(resp).await.status, StatusCode::OK);
    }
    let ended = tokio::time::timeout(WAIT, h2).await;
    assert!(ended.is_ok(), "the HTTP/2 connection must end (GOAWAY)");
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 6);
}

/// HTTP/2 "rapid reset" (CVE-2023-44487): a client that opens streams and resets them
/// at once gets no more upstream requests out of one connection than a client that
/// waits for its answers. Streams reset before the gateway took them are refused by h2
/// (GOAWAY after a few); streams reset after it did count towards
/// `keepalive_requests`.
#[tokio::test]
async fn http2_rapid_reset_is_bounded_per_connection() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.keepalive_requests = 100;
    let gw = shop_web(&b, cfg).await;
    let attack = |paced: bool| async move {
        let tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        let mut opened = 0;
        for _ in 0..if paced { 300 } else { 5000 } {
            client = match client.ready().await {
                Ok(client) => client,
                Err(_) => break,
            };
            let req = Request::get("http://shop.example.com/").body(()).unwrap();
            let Ok((_response, mut stream)) = client.send_request(req, false) else {
                break;
            };
            if paced {
                // Give the gateway the time to take the stream before its reset.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            stream.send_reset(h2::Reason::CANCEL);
            opened += 1;
        }
        let ended = tokio::time::timeout(WAIT, conn).await;
        assert!(ended.is_ok(), "the attacking connection must be closed");
        opened
    };
    let gw = &gw;
    let burst = attack(false).await;
    let paced = attack(true).await;
    // Answered, or cancelled by the reset after the gateway took them.
    let took = [200, 499]
        .map(|status| gw.metrics.requests_with("shop/shop", "shop/web:80", status))
        .iter()
        .sum::<u64>();
    assert!(
        took <= 100,
        "{took} streams handled (burst {burst}, paced {paced})"
    );
    assert!(
        paced < 300,
        "the paced attack's connection must end at the limit"
    );
    // Everyone else is served as before.
    let r = get_h1(gw, "shop.example.com", "/").await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A client connection gets TCP keep-alive probes after `idle_timeout` of silence: the
/// gateway's end of it shows the kernel's keep-alive timer in `/proc/net/tcp`.
#[tokio::test]
async fn client_connections_get_tcp_keepalive_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.idle_timeout = Duration::from_secs(300);
    let gw = shop_web(&b, cfg).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    // One exchange: the gateway has accepted the connection and set it up.
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // "tr:tm->when" of the gateway's end: timer 2 (keep-alive), due in clock ticks.
    let timer = async {
        loop {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            let found = table.lines().skip(1).find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
                (port(f[1]) == Some(gw.http.port()) && port(f[2]) == Some(client_port))
                    .then(|| f[5].to_string())
            });
            match found {
                Some(timer) => break timer,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    let timer = tokio::time::timeout(WAIT, timer)
        .await
        .expect("the gateway's end");
    let (kind, due) = timer.split_once(':').unwrap();
    assert_eq!(kind, "02", "keep-alive timer, in {timer}");
    let hz = 100; // USER_HZ: /proc reports clock ticks
    let due = u64::from_str_radix(due, 16).unwrap() / hz;
    assert!((250..=300).contains(&due), "due in {due} s");
    drop(tcp);
}

/// The last piece of a response is handed to hyper whole, so its stream has ended for
/// the gateway while the client's shut window still keeps most of it back: the idle
/// connection's GOAWAY then waits on it, and the client send timeout bounds that wait.
#[tokio::test]
async fn an_http2_client_that_never_takes_the_last_piece_is_disconnected() {
    const BODY: usize = 4000;
    let port = head_only_backend(ok_with_body(BODY), Duration::from_secs(60)).await;
    let mut cfg = ProxyConfig::new();
    cfg.keepalive_timeout = Duration::from_secs(1);
    cfg.client_send_timeout = Duration::from_secs(1);
    let gw = shop_web_on_annotated(port, &[], cfg).await;
    // A stream window of 16 bytes, opened again only as the body is read: never.
    let tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(16)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let h2 = tokio::spawn(conn);
    let resp = h2c_get(&mut sender, "http://shop.example.com/last-piece").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ended = tokio::time::timeout(WAIT, h2).await;
    assert!(ended.is_ok(), "the HTTP/2 connection must end");
    let read = tokio::time::timeout(WAIT, resp.into_body().collect()).await;
    assert!(
        matches!(read, Ok(Err(_))),
        "the body must end short: {read:?}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_declared_or_streamed() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/proxy-body-size", "1k")
        .prefix("shop.example.com", "/", "web", 80)]))
    .await;
    let client = h1_client();
    let upload = |body: Body| post(&gw, "shop.example.com", "/upload", body);
    let r = send(&client, upload(full(vec![b'x'; 2000]))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(&client, upload(full(vec![b'x'; 1000]))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echo().body_length, 1000);
    // Chunked, no Content-Length: caught while streaming.
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..4)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 600]))))
        .collect();
    let streamed = StreamBody::new(futures::stream::iter(chunks)).boxed();
    let r = send(&client, upload(streamed)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.max_header_bytes = 8192;
    let gw = shop_web(&b, cfg).await;
    let mut req = get(&gw, "shop.example.com", "/");
    req.headers_mut()
        .insert("x-big", "a".repeat(20_000).parse().unwrap());
    let status = match tokio::time::timeout(WAIT, h1_client().request(req))
        .await
        .unwrap()
    {
        Ok(resp) => resp.status(),
        // hyper may close the connection while the client is still writing.
        Err(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    };
    assert!(
        status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE || status == StatusCode::BAD_REQUEST,
        "{status}"
    );
}

// === headers ===

#[tokio::test]
async fn forwarded_headers_request_id_and_hop_by_hop() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let req = Request::get(gw.url("/"))
        .header("host", "shop.example.com")
        .header("x-forwarded-for", "198.51.100.9")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("proxy-authorization", "Basic eA==")
        .header("keep-alive", "timeout=5")
        .body(full(""))
        .unwrap();
    let r = send(&h1_client(), req).await;
    let h = r.echo().headers;
    assert_eq!(h["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example.com");
    assert_eq!(h["x-forwarded-port"], gw.http.port().to_string());
    assert_eq!(h["x-request-id"].len(), 36);
    assert_eq!(h["host"], "shop.example.com");
    for gone in ["x-private", "proxy-authorization", "keep-alive"] {
        assert!(!h.contains_key(gone), "{gone} was forwarded");
    }
    let req = Request::get(gw.url("/"))
        .header("host", "shop.example.com")
        .header("x-request-id", "req-42")
        .body(full(""))
        .unwrap();
    assert_eq!(
        send(&h1_client(), req).await.echo().headers["x-request-id"],
        "req-42"
    );
}

// === annotations ===

#[tokio::test]
async fn source_ranges_allow_and_deny() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![
        ingress("open")
            .annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "127.0.0.0/8")
            .prefix("open.example.com", "/", "web", 80),
        ingress("closed")
            .annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "192.0.2.0/24")
            .prefix("closed.example.com", "/", "web", 80),
        ingress("denied")
            .annotation("nginx.ingress.kubernetes.io/denylist-source-range", "127.0.0.1/32")
            .prefix("denied.example.com", "/", "web", 80),
    ]))
    .await;
    assert_eq!(
        get_h1(&gw, "open.example.com", "/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_h1(&gw, "closed.example.com", "/").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_h1(&gw, "denied.example.com", "/").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn rewrite_target_redirects_and_app_root() {
    let b = Backends::new().service("api", &[pod("api", "api-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![
            ingress("api")
                .annotation("nginx.ingress.kubernetes.io/rewrite-target", "/")
                .prefix("shop.example.com", "/api", "api", 80),
            ingress("moved")
                .annotation(
                    "nginx.ingress.kubernetes.io/permanent-redirect",
                    "https://new.example.com/",
                )
                .prefix("old.example.com", "/", "api", 80),
            ingress("root")
                .annotation("nginx.ingress.kubernetes.io/app-root", "/app")
                .prefix("root.example.com", "/", "api", 80),
        ]))
    .await;
    assert_eq!(
        get_h1(&gw, "shop.example.com", "/api/users?id=7")
            .await
            .echo()
            .path,
        "/users?id=7"
    );
    let r = get_h1(&gw, "old.example.com", "/x").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers["location"], "https://new.example.com/");
    let r = get_h1(&gw, "root.example.com", "/").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "/app");
    assert_eq!(
        get_h1(&gw, "root.example.com", "/app").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn canary_by_header_and_by_weight() {
    let b = Backends::new()
        .service("web", &[pod("web", "web-1")])
        .await
        .service("web-next", &[pod("web-next", "next-1")])
        .await
        .service("beta", &[pod("beta", "beta-1")])
        .await;
    let gw = Gateway::start(&b.inputs(vec![
        ingress("web").prefix("shop.example.com", "/", "web", 80),
        ingress("web-canary")
            .annotation("nginx.ingress.kubernetes.io/canary", "true")
            .annotation("nginx.ingress.kubernetes.io/canary-by-header", "x-canary")
            .prefix("shop.example.com", "/", "web-next", 80),
        ingress("main").prefix("all.example.com", "/", "web", 80),
        ingress("main-canary")
            .annotation("nginx.ingress.kubernetes.io/canary", "true")
            .annotation("nginx.ingress.kubernetes.io/canary-weight", "100")
            .prefix("all.example.com", "/", "beta", 80),
    ]))
    .await;
    let client = h1_client();
    let with = |value: Option<&str>| {
        let mut req = get(&gw, "shop.example.com", "/");
        if let Some(v) = value {
            req.headers_mut().insert("x-canary", v.parse().unwrap());
        }
        req
    };
    assert_eq!(
        send(&client, with(Some("always"))).await.echo().service,
        "web-next"
    );
    assert_eq!(
        send(&client, with(Some("never"))).await.echo().service,
        "web"
    );
    assert_eq!(send(&client, with(None)).await.echo().service, "web");
    for _ in 0..5 {
        assert_eq!(
            get_h1(&gw, "all.example.com", "/").await.echo().service,
            "beta"
        );
    }
}

#[tokio::test]
async fn cookie_affinity_sticks_to_one_endpoint() {
    let b = Backends::new()
        .service(
            "web",
            &[
                pod("web", "web-1"),
                pod("web", "web-2"),
                pod("web", "web-3"),
            ],
        )
        .await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/affinity", "cookie")
        .annotation("nginx.ingress.kubernetes.io/session-cookie-name", "route")
        .prefix("shop.example.com", "/", "web", 80)]))
    .await;
    let client = h1_client();
    let first = send(&client, get(&gw, "shop.example.com", "/")).await;
    let set = first.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("route="), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let mut req = get(&gw, "shop.example.com", "/");
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let r = send(&client, req).await;
        assert_eq!(r.pod(), first.pod());
        assert!(!r.headers.contains_key("set-cookie"));
    }
}

#[tokio::test]
async fn round_robin_by_annotation_visits_every_endpoint() {
    let b = Backends::new()
        .service("web", &[pod("web", "web-1"), pod("web", "web-2")])
        .await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/load-balance", "round_robin")
        .prefix("shop.example.com", "/", "web", 80)]))
    .await;
    let client = h1_client();
    let mut pods = Vec::new();
    for _ in 0..4 {
        pods.push(send(&client, get(&gw, "shop.example.com", "/")).await.pod());
    }
    assert_ne!(pods[0], pods[1]);
    assert_eq!(pods[0], pods[2]);
    assert_eq!(pods[1], pods[3]);
}

// === upgrades ===

/// Connects to the gateway, upgrades to a WebSocket on `ws.example.com` and has one
/// text frame echoed; returns the open connection.
async fn websocket_hello(gw: &Gateway) -> tokio::net::TcpStream {
    use ironlb_echo::ws;
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tokio::time::timeout(WAIT, async {
        ws::client_handshake(&mut stream, "ws.example.com", "/chat")
            .await
            .unwrap();
        ws::write_frame(&mut stream, &ws::Frame::text("hello"), Some([1, 2, 3, 4]))
            .await
            .unwrap();
        let frame = ws::read_frame(&mut stream).await.unwrap().unwrap();
        assert_eq!(frame, ws::Frame::text("hello"));
    })
    .await
    .expect("websocket round trip in time");
    stream
}

#[tokio::test]
async fn websocket_frames_round_trip() {
    let b = Backends::new().service("ws", &[pod("ws", "ws-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![ingress("ws").prefix("ws.example.com", "/", "ws", 80)]))
        .await;
    websocket_hello(&gw).await;
}

#[tokio::test]
async fn a_websocket_silent_for_the_read_timeout_is_closed() {
    use tokio::io::AsyncReadExt;
    let b = Backends::new().service("ws", &[pod("ws", "ws-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![ingress("ws")
        .prefix("ws.example.com", "/", "ws", 80)
        .annotation("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")]))
    .await;
    let mut stream = websocket_hello(&gw).await;
    // Then silence both ways: the gateway closes the connection after the read timeout
    // (before this change it stayed open for ever), and not before it.
    let silent_since = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("closed within the wait")
        .unwrap();
    assert!(silent_since.elapsed() >= Duration::from_millis(900));
    assert!(rest.is_empty(), "{rest:?}");
}

// === live configuration ===

#[tokio::test]
async fn swapping_the_snapshot_under_load_fails_no_request() {
    let b = Backends::new()
        .service("v1", &[pod("v1", "v1-1")])
        .await
        .service("v2", &[pod("v2", "v2-1")])
        .await;
    let v1 = b.inputs(vec![ingress("shop").prefix(
        "shop.example.com",
        "/",
        "v1",
        80,
    )]);
    let v2 = b.inputs(vec![ingress("shop").prefix(
        "shop.example.com",
        "/",
        "v2",
        80,
    )]);
    let gw = Arc::new(Gateway::start(&v1).await);
    let stop = CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let gw = gw.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let client = h1_client();
            let mut done = 0u32;
            while !stop.is_cancelled() && done < 2000 {
                let r = send(&client, get(&gw, "shop.example.com", "/")).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                done += 1;
            }
            done
        }));
    }
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        gw.set_routes(if i % 2 == 0 { &v2 } else { &v1 });
    }
    gw.set_routes(&v2);
    // The very next request sees the new route.
    assert_eq!(
        get_h1(&gw, "shop.example.com", "/").await.echo().service,
        "v2"
    );
    stop.cancel();
    let mut total = 0;
    for l in load {
        total += l.await.expect("no failed request");
    }
    assert!(total > 0);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let b = Backends::new()
        .service(
            "slow",
            &[pod("slow", "slow-1").with_delay(Duration::from_millis(500))],
        )
        .await;
    let mut gw = Gateway::start(&b.inputs(vec![ingress("shop").prefix(
        "slow.example.com",
        "/",
        "slow",
        80,
    )]))
    .await;
    // An idle keep-alive connection: the drain closes it.
    let mut idle = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
        tcp
    };
    let client = h1_client();
    let in_flight = tokio::spawn(client.request(get(&gw, "slow.example.com", "/")));
    // Let the request reach the backend, then shut down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown.cancel();
    let mut handle = tokio::spawn(gw.handle.take().unwrap().wait());
    // The drain waits for the request in flight (it takes 500 ms at the backend).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut handle)
            .await
            .is_err(),
        "the drain ended before the request in flight"
    );
    let resp = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("in time")
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(read(resp).await.status, StatusCode::OK);
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("drained in time")
        .unwrap();
    {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, idle.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the idle keep-alive connection is closed by the drain"
        );
    }
    // New connections are refused once drained.
    assert!(tokio::net::TcpStream::connect(gw.http).await.is_err());
}

// === limits ===

/// Writes `request` on a new plain connection and reads until the gateway closes it
/// (or `WAIT` passes); returns what was read.
async fn raw_exchange(gw: &Gateway, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut got = Vec::new();
    // A reset after the reply is fine: what was read is kept.
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("the gateway closes the connection in time");
    String::from_utf8_lossy(&got).into_owned()
}

/// Waits (up to 10 s) for the gateway to close `tcp` without sending a byte, or to
/// answer 408; returns what was read.
async fn closed_without_request(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .expect("the gateway closes an idle connection after the header read timeout");
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
    got
}

fn status_line(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

/// The body of a raw HTTP/1.1 reply (everything after the blank line).
fn raw_body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_short_body() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    for request in [
        &b"this is not http\r\n\r\n"[..],
        b"GET /\x01bad HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.example.com\xff\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@shop.example.com\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nHost: other.example.com\r\n\
          Connection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let reply = raw_exchange(&gw, request).await;
        let shown = String::from_utf8_lossy(request);
        assert!(
            status_line(&reply).starts_with("HTTP/1.1 400"),
            "{shown:?} → {reply:?}"
        );
        assert!(raw_body(&reply).len() < 256, "{shown:?} → {reply:?}");
    }
    // None of them reached the backend; a well-formed request still does.
    let reply = raw_exchange(
        &gw,
        b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 1);
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_disconnected() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.header_read_timeout = Duration::from_millis(200);
    let gw = shop_web(&b, cfg).await;
    use tokio::io::AsyncWriteExt;
    // A partial header block, then nothing (slowloris).
    let mut partial = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-Slow: ")
        .await
        .unwrap();
    closed_without_request(&mut partial).await;
    // Nothing at all.
    let mut silent = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    closed_without_request(&mut silent).await;
    // The first bytes of the HTTP/2 preface, then nothing.
    let mut preface = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_without_request(&mut preface).await;
    // A complete request still gets through.
    let reply = raw_exchange(
        &gw,
        b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_waits_the_keepalive_timeout_then_the_header_one() {
    use tokio::io::AsyncWriteExt;
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.header_read_timeout = Duration::from_millis(200);
    cfg.keepalive_timeout = Duration::from_secs(4);
    let gw = shop_web(&b, cfg).await;
    let request = b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(request).await.unwrap();
    answered_200(&mut tcp, &mut buf, "the first request is answered").await;
    // Idle for longer than the header read timeout: the connection is still there, as
    // nginx's keepalive_timeout keeps it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    tcp.write_all(request).await.unwrap();
    answered_200(
        &mut tcp,
        &mut buf,
        "a request after an idle pause is answered",
    )
    .await;
    // Once a next head has begun, the header read timeout runs from its first byte.
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: shop")
        .await
        .unwrap();
    closed_without_request(&mut tcp).await;
    // Idle with nothing sent: closed after the keep-alive timeout.
    let mut idle = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    idle.write_all(request).await.unwrap();
    answered_200(&mut idle, &mut buf, "the idle client is answered").await;
    closed_without_request(&mut idle).await;
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 3);
}

#[tokio::test]
async fn a_zero_keepalive_timeout_closes_every_connection_after_its_answer() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.keepalive_timeout = Duration::ZERO;
    let gw = shop_web(&b, cfg).await;
    // No "Connection: close" from the client: the gateway closes anyway, and says so.
    let reply = raw_exchange(&gw, b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n").await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{reply}"
    );
}

/// Reads the reply to the request sent on `tcp` (within `WAIT`, else panics with
/// `what`) and checks that it is a 200.
async fn answered_200(tcp: &mut tokio::net::TcpStream, buf: &mut [u8], what: &str) {
    use tokio::io::AsyncReadExt;
    let n = tokio::time::timeout(WAIT, tcp.read(buf))
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn the_connection_cap_holds_a_second_client_until_the_first_leaves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.max_connections = 1;
    // The first client stays idle between the two steps; keep it open meanwhile.
    cfg.keepalive_timeout = Duration::from_secs(120);
    let gw = shop_web(&b, cfg).await;
    let request = b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n";
    let mut buf = vec![0u8; 64 * 1024];

    // The first client is served and keeps its connection open.
    let mut first = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    first.write_all(request).await.unwrap();
    answered_200(&mut first, &mut buf, "the first client is answered in time").await;

    // The second one connects (the kernel backlog) but is not served meanwhile.
    let mut second = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    second.write_all(request).await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), second.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the second client was answered while the first was open: {early:?}"
    );

    // Once the first one leaves, the second is served.
    drop(first);
    answered_200(
        &mut second,
        &mut buf,
        "the second client is answered once the first closed",
    )
    .await;
}

// === client HTTP/1.1 framing ===

/// The echo reply in a raw HTTP/1.1 reply with a Content-Length body.
fn raw_echo(reply: &str) -> EchoReply {
    serde_json::from_str(raw_body(reply)).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[tokio::test]
async fn ambiguous_request_framing_is_refused_before_any_backend_sees_it() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let head = "POST / HTTP/1.1\r\nHost: shop.example.com\r\n";
    for (fields, status) in [
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "400"),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "400"),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", "400"),
        ("Content-Length: 5, 6\r\n", "400"),
        ("Transfer-Encoding: chunked, chunked\r\n", "400"),
        ("Transfer-Encoding: identity\r\n", "400"),
        ("Transfer-Encoding: gzip, chunked\r\n", "501"),
    ] {
        let request = format!("{head}{fields}\r\n5\r\nhello\r\n0\r\n\r\n");
        let reply = raw_exchange(&gw, request.as_bytes()).await;
        assert!(
            status_line(&reply).starts_with(&format!("HTTP/1.1 {status}")),
            "{fields:?} → {reply:?}"
        );
        assert!(reply.contains("connection: close\r\n"), "{reply:?}");
    }
    let reply = raw_exchange(
        &gw,
        b"POST / HTTP/1.0\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 400"), "{reply:?}");
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 0);
}

#[tokio::test]
async fn request_bodies_arrive_whole_chunked_or_by_length() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let reply = raw_exchange(
        &gw,
        b"POST / HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply:?}");
    assert_eq!(raw_echo(&reply).body_length, 6);
    let reply = raw_exchange(
        &gw,
        b"PUT / HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 7\r\n\
          Connection: close\r\n\r\nabcdefg",
    )
    .await;
    assert_eq!(raw_echo(&reply).body_length, 7);
    assert_eq!(raw_echo(&reply).method, "PUT");
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = Gateway::start(&b.inputs(vec![ingress("shop")
        .annotation("nginx.ingress.kubernetes.io/proxy-body-size", "1k")
        .prefix("shop.example.com", "/", "web", 80)]))
    .await;
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(
        b"POST / HTTP/1.1\r\nHost: shop.example.com\r\nExpect: 100-continue\r\n\
          Content-Length: 5\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(b"hello").await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert_eq!(raw_echo(&reply).body_length, 5);

    // Over the limit: 413 at once, the client never sends the body.
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(
        b"POST / HTTP/1.1\r\nHost: shop.example.com\r\nExpect: 100-continue\r\n\
          Content-Length: 5000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(status_line(&reply).starts_with("HTTP/1.1 413"), "{reply:?}");
    assert!(!reply.contains("100 Continue"), "{reply:?}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let reply = raw_exchange(
        &gw,
        b"GET /first HTTP/1.1\r\nHost: shop.example.com\r\n\r\n\
          POST /second HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 2\r\n\r\nok\
          GET /third HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    let paths: Vec<&str> = ["/first", "/second", "/third"]
        .into_iter()
        .filter(|p| reply.contains(&format!("\"path\": \"{p}\"")))
        .collect();
    assert_eq!(paths, ["/first", "/second", "/third"], "{reply}");
    let first = reply.find("/first").unwrap();
    let second = reply.find("/second").unwrap();
    let third = reply.find("/third").unwrap();
    assert!(first < second && second < third, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");

    // A request after one that closes the connection is not answered, and does not
    // turn the close into a reset that would cost the client the first answer.
    let reply = raw_exchange(
        &gw,
        b"GET /last HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n\
          GET /ignored HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    )
    .await;
    assert_eq!(raw_echo(&reply).path, "/last");
    assert!(!reply.contains("/ignored"), "{reply}");
}

/// Requests pieced together from fragments, some valid, most not (a small fuzzer with a
/// fixed seed): each connection gets an answer or a close, never a hang, and a
/// well-formed request is still served afterwards.
#[tokio::test]
async fn pieced_together_garbage_never_hangs_or_takes_the_gateway_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PIECES: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\n",
        b"POST /up HTTP/1.1\r\n",
        b"GET http://shop.example.com/ HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"Host: shop.example.com\r\n",
        b"Host: \r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 99999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Expect: 100-continue\r\n",
        b"Connection: upgrade\r\nUpgrade: websocket\r\n",
        b"Connection: close\r\n",
        b"X: \x00\x7f\xff\r\n",
        b"\r\n",
        b"\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffff\r\n",
        b"hello",
        b" \t:",
        b"\n",
    ];
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let mut cfg = ProxyConfig::new();
    cfg.header_read_timeout = Duration::from_millis(300);
    let gw = shop_web(&b, cfg).await;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..300 {
        let mut request = Vec::new();
        for _ in 0..(1 + next() % 8) {
            request.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
        tcp.write_all(&request).await.unwrap();
        // Half the clients stop sending; the others keep the connection open.
        if case % 2 == 0 {
            tcp.shutdown().await.unwrap();
        }
        let mut got = Vec::new();
        let ended = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
        assert!(
            ended.is_ok(),
            "case {case}: {:?} hangs",
            String::from_utf8_lossy(&request)
        );
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 "),
            "case {case}: {:?} → {got:?}",
            String::from_utf8_lossy(&request)
        );
    }
    let reply = raw_exchange(
        &gw,
        b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
}

async fn next_event(
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>,
) -> &'static str {
    tokio::time::timeout(WAIT, heard.recv())
        .await
        .expect("the backend hears something in time")
        .expect("the backend runs")
}

/// A backend that reads request heads and never answers; every connection the gateway
/// closes is reported on the channel.
async fn silent_backend() -> (u16, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (events, heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let events = events.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let _ = events.send("request");
                        }
                    }
                }
                let _ = events.send("closed");
            });
        }
    });
    (port, heard)
}

/// A client that goes away before its answer cancels the upstream request (the backend
/// sees its connection closed) and is recorded as 499, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn a_client_that_leaves_before_its_answer_cancels_the_upstream_request() {
    use tokio::io::AsyncWriteExt;
    let (port, mut heard) = silent_backend().await;
    let b = Backends::new().raw_service("web", port);
    let gw = Gateway::start(&b.inputs(vec![ingress("shop").prefix(
        "shop.example.com",
        "/",
        "web",
        80,
    )]))
    .await;
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(next_event(&mut heard).await, "request");
    drop(tcp);
    assert_eq!(next_event(&mut heard).await, "closed");

    let (mut sender, h2) = h2c_connect(&gw).await;
    let req = Request::get("http://shop.example.com/slow")
        .body(full(""))
        .unwrap();
    let waiting = tokio::spawn(sender.send_request(req));
    assert_eq!(next_event(&mut heard).await, "request");
    // Dropping the response future resets the stream.
    waiting.abort();
    assert_eq!(next_event(&mut heard).await, "closed");

    // Recorded when the request's future is dropped, which is before the backend hears
    // the close.
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 499), 2);
    assert_eq!(gw.metrics.requests_with("shop/shop", "shop/web:80", 200), 0);
    h2.abort();
}

#[tokio::test]
async fn http_1_0_clients_get_keep_alive_only_when_they_ask() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backends::new().service("web", &[pod("web", "web-1")]).await;
    let gw = shop_web(&b, ProxyConfig::new()).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..2 {
        tcp.write_all(
            b"GET / HTTP/1.0\r\nHost: shop.example.com\r\nConnection: keep-alive\r\n\r\n",
        )
        .await
        .unwrap();
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("connection: keep-alive\r\n"), "{reply}");
        assert!(reply.contains("content-length: "), "{reply}");
    }
    let reply = raw_exchange(&gw, b"GET / HTTP/1.0\r\nHost: shop.example.com\r\n\r\n").await;
    assert!(reply.contains("connection: close\r\n"), "{reply}");
    assert_eq!(
        raw_echo(&reply).protocol,
        "HTTP/1.1",
        "upstream is HTTP/1.1"
    );
}

// === TLS ===

mod tls {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::TlsConnector;

    /// A CA made for the test, and leaf certificates it signs.
    struct Ca {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        der: CertificateDer<'static>,
    }

    impl Ca {
        fn new() -> Ca {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "IronLB test CA");
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Ca {
                der: cert.der().clone(),
                issuer: rcgen::Issuer::new(params, key),
            }
        }

        fn leaf(&self, name: &str) -> (String, String) {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .signed_by(&key, &self.issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        }

        fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
            self.client_with_versions(alpn, rustls::DEFAULT_VERSIONS)
        }

        /// A client restricted to the given TLS versions.
        fn client_with_versions(
            &self,
            alpn: &[&[u8]],
            versions: &[&'static rustls::SupportedProtocolVersion],
        ) -> TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.der.clone()).unwrap();
            let mut cfg =
                rustls::ClientConfig::builder_with_provider(ironlb_gateway::tls::provider())
                    .with_protocol_versions(versions)
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            TlsConnector::from(Arc::new(cfg))
        }
    }

    async fn tls_gateway(ca: &Ca, b: &Backends) -> Gateway {
        let inputs = b.inputs(vec![ingress("shop")
            .prefix("shop.example.com", "/", "web", 80)
            .prefix("blog.example.com", "/", "blog", 80)
            .tls(&["shop.example.com"], "shop-tls")
            .tls(&["blog.example.com"], "blog-tls")]);
        let mut gw = Gateway::start(&Inputs::default()).await;
        for (host, secret) in [
            ("shop.example.com", "shop/shop-tls"),
            ("blog.example.com", "shop/blog-tls"),
        ] {
            let (cert, key) = ca.leaf(host);
            let ck = ironlb_gateway::tls::certified_key_from_pem(cert.as_bytes(), key.as_bytes())
                .unwrap();
            gw.certs.insert(secret.to_string(), Arc::new(ck));
        }
        gw.set_routes(&inputs);
        gw
    }

    /// Sends `GET path` over TLS with `sni`; returns the reply and the ALPN agreed.
    async fn get_tls(
        gw: &Gateway,
        ca: &Ca,
        sni: &str,
        path: &str,
        alpn: &[&[u8]],
    ) -> (Reply, Option<Vec<u8>>) {
        let tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let tls = tokio::time::timeout(WAIT, ca.client(alpn).connect(name, tcp))
            .await
            .unwrap()
            .expect("TLS handshake with a certificate the test CA signed");
        let agreed = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        let io = TokioIo::new(tls);
        let uri = format!("https://{sni}{path}");
        let resp = if agreed.as_deref() == Some(b"h2") {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(Request::get(uri).body(full("")).unwrap())
                .await
                .unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get(path)
                .header("host", sni)
                .body(full(""))
                .unwrap();
            send.send_request(req).await.unwrap()
        };
        (read(resp).await, agreed)
    }

    async fn backends() -> Backends {
        Backends::new()
            .service("web", &[pod("web", "web-1")])
            .await
            .service("blog", &[pod("blog", "blog-1")])
            .await
    }

    #[tokio::test]
    async fn each_host_gets_its_certificate_over_h1_and_h2() {
        let ca = Ca::new();
        let b = backends().await;
        let gw = tls_gateway(&ca, &b).await;
        let (r, alpn) = get_tls(&gw, &ca, "shop.example.com", "/", &[b"h2", b"http/1.1"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(r.version, Version::HTTP_2);
        assert_eq!(r.echo().service, "web");
        assert_eq!(r.echo().headers["x-forwarded-proto"], "https");
        assert!(r.headers.contains_key("strict-transport-security"));
        let (r, alpn) = get_tls(&gw, &ca, "blog.example.com", "/", &[b"http/1.1"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(r.echo().service, "blog");
    }

    #[tokio::test]
    async fn tls_1_2_and_1_3_clients_are_both_served() {
        let ca = Ca::new();
        let b = backends().await;
        let gw = tls_gateway(&ca, &b).await;
        for (version, expected) in [
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        ] {
            let tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
            let name = ServerName::try_from("shop.example.com").unwrap();
            let connector = ca.client_with_versions(&[b"http/1.1"], &[version]);
            let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{expected:?} handshake: {e}"));
            let session = tls.get_ref().1;
            assert_eq!(session.protocol_version(), Some(expected));
            assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/")
                .header("host", "shop.example.com")
                .body(full(""))
                .unwrap();
            let resp = tokio::time::timeout(WAIT, send.send_request(req))
                .await
                .unwrap()
                .unwrap();
            let r = read(resp).await;
            assert_eq!(r.status, StatusCode::OK, "{expected:?}: {}", r.text());
            assert_eq!(r.echo().service, "web");
            assert_eq!(r.echo().headers["x-forwarded-proto"], "https");
        }
    }

    #[tokio::test]
    async fn a_tls_client_that_sends_no_request_is_disconnected() {
        use tokio::io::AsyncReadExt;
        let mut cfg = ProxyConfig::new();
        // Also the handshake's limit: not so short that a loaded machine misses it.
        cfg.header_read_timeout = Duration::from_secs(1);
        let gw = Gateway::start_with(&Inputs::default(), cfg).await;
        let client = rustls::ClientConfig::builder_with_provider(ironlb_gateway::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth();
        // No handshake at all.
        let mut tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        closed_without_request(&mut tcp).await;
        // A handshake, then no request.
        let tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        let mut tls = tokio::time::timeout(
            WAIT,
            TlsConnector::from(Arc::new(client))
                .connect(ServerName::try_from("shop.example.com").unwrap(), tcp),
        )
        .await
        .unwrap()
        .unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got))
            .await
            .expect("the gateway closes a TLS connection without a request");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }

    #[tokio::test]
    async fn an_unknown_name_gets_the_default_certificate() {
        let ca = Ca::new();
        let b = backends().await;
        let gw = tls_gateway(&ca, &b).await;
        let tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        let name = ServerName::try_from("other.example.com").unwrap();
        let err = ca.client(&[]).connect(name, tcp).await.unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // The default certificate is the one presented (accepting anything).
        let tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(ironlb_gateway::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth();
        let tls = TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("other.example.com").unwrap(), tcp)
            .await
            .unwrap();
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(presented, gw.default_cert.cert[0]);
    }

    #[tokio::test]
    async fn plain_http_to_a_tls_host_is_redirected_with_308() {
        let ca = Ca::new();
        let b = backends().await;
        let gw = tls_gateway(&ca, &b).await;
        let r = get_h1(&gw, "shop.example.com", "/cart?id=1").await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers["location"],
            format!("https://shop.example.com:{}/cart?id=1", gw.https.port())
        );
    }

    #[derive(Debug)]
    struct AcceptAny;

    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            ironlb_gateway::tls::provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    #[tokio::test]
    async fn an_https_backend_is_reached_without_verification() {
        let (cert, key) = Ca::new().leaf("backend.invalid");
        let backend_tls =
            ironlb_echo::tls_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let b = Backends::new()
            .service("secure", &[pod("secure", "secure-1").with_tls(backend_tls)])
            .await;
        let gw = Gateway::start(&b.inputs(vec![ingress("secure")
            .annotation("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")
            .prefix("secure.example.com", "/", "secure", 80)]))
        .await;
        let r = get_h1(&gw, "secure.example.com", "/").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(r.echo().tls);
    }
}
