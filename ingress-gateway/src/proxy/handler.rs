//! One request through the gateway: route, policy answers (redirects, 403, 413),
//! endpoint choice, forwarding with retries, response fix-ups, metrics and access log.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::Either;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use ironlb_routes::{normalize_path, Backend, BodySize, IngressRef, Match, RouteOptions};

use super::balance::{affine_endpoint, affinity_value, Balancer};
use super::body::{BodyShared, ClientBody, PooledBody, Progress, ProxyBody, UpstreamBody};
use super::h1codec::BodyDecoder;
use super::h1pool::{self, H1Pool};
use super::headers::{self as hdr, Forwarded};
use super::inactivity::InactivityTimer;
use super::upstream::{Upstreams, Wire};
use crate::metrics::{AccessLogEntry, IngressLabel, Metrics, RequestLabels, ServiceLabel};
use crate::snapshot::SharedSnapshot;

/// What a connection knows about itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Per-request settings of the proxy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Body limit when a route sets none.
    pub default_body_limit: u64,
    /// Upstream read timeout when a route sets none: from the end of the request to the
    /// response head, and between two pieces of the response body.
    pub read_timeout: Duration,
    /// Request body send timeout when a route sets none: between two pieces.
    pub send_timeout: Duration,
    /// Upstream connect timeout when a route sets none.
    pub connect_timeout: Duration,
    /// Connect attempts per request (on different endpoints when there are several).
    pub connect_attempts: usize,
    /// Port of the HTTPS listener, for redirects (443 when unknown).
    pub https_port: u16,
    /// `Strict-Transport-Security` value added to TLS responses, if any.
    pub hsts: Option<HeaderValue>,
    /// Write JSON access-log lines to stdout.
    pub access_log: bool,
}

/// The shared state of the data path.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) snapshot: SharedSnapshot,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: Settings,
    pub(crate) upstreams: Upstreams,
    pub(crate) h1: Arc<H1Pool>,
    pub(crate) balancer: Balancer,
}

/// A request that got no answer on a reused pooled connection (the backend closed it) is
/// sent again on a fresh one when it is idempotent (RFC 9110 §9.2.2), or when the
/// connection had sat idle this long: then the backend's keep-alive timer closing it as
/// the request arrived is by far the likeliest story, and the request was not processed.
const REPLAY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The upstream's side of a protocol upgrade, carried in a 101 response's extensions
/// to the HTTP/1.1 server side, which splices it with the client's connection.
#[derive(Clone)]
pub(crate) struct UpstreamUpgrade {
    pub upstream: hyper::upgrade::OnUpgrade,
    /// The route's read timeout (`proxy-read-timeout`): nothing moving either way that
    /// long ends the spliced connection, as nginx ends an upgraded one.
    pub idle: Duration,
}

/// Why an upstream exchange failed.
struct SendFailure {
    /// The connection could not be made (another endpoint may be tried).
    connect: bool,
    error: String,
    /// The request, whole, when no answer began and its body was not read (inline pool
    /// only).
    unsent: Option<Box<Request<UpstreamBody>>>,
}

/// A response head from upstream, with the body still to come.
enum UpstreamResponse {
    /// From the inline HTTP/1.1 pool.
    Inline(Response<BodyDecoder>),
    /// From hyper-util's client (h2, TLS, upgrades).
    Client(Response<Incoming>),
}

impl SendFailure {
    fn h1(e: h1pool::SendError) -> Self {
        SendFailure {
            connect: false,
            error: e.error,
            unsent: e.unsent.map(Box::new),
        }
    }

    fn pooled(e: hyper_util::client::legacy::Error) -> Self {
        SendFailure {
            connect: e.is_connect(),
            error: e.to_string(),
            unsent: None,
        }
    }
}

/// What routing decided.
enum Routed {
    /// The gateway answers itself.
    Answer(Response<ProxyBody>),
    /// The request goes upstream.
    Forward(Plan),
}

/// Where routing sends a request.
struct Plan {
    backend: Arc<Backend>,
    options: Arc<RouteOptions>,
    /// The path and query after `rewrite-target`, when it applies.
    upstream_path: Option<Bytes>,
    /// Request body limit.
    limit: u64,
    host: HeaderValue,
}

/// Where the request went, for metrics and logs.
#[derive(Default)]
struct Outcome {
    ingress: Option<Arc<IngressRef>>,
    backend: Option<Arc<Backend>>,
    upstream: Option<SocketAddr>,
    upstream_latency: Option<Duration>,
}

/// Status recorded for a request whose client went away before its answer (nginx's
/// "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request's metrics and access-log line, written exactly once: with its answer, or
/// with 499 when the request's future is dropped before that (the client closed its
/// connection or reset its HTTP/2 stream, and the upstream exchange was cancelled).
struct Record<'a> {
    proxy: &'a Proxy,
    conn: ConnInfo,
    /// Kept only when access logging is on.
    logged: Option<Logged>,
    out: Outcome,
    request_id: Option<HeaderValue>,
    host: Option<HeaderValue>,
    written: bool,
}

/// What the access-log line needs from the request itself.
struct Logged {
    method: http::Method,
    path_and_query: Option<http::uri::PathAndQuery>,
    start: Instant,
}

impl Record<'_> {
    fn write(&mut self, status: u16, bytes: Option<u64>) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let labels = RequestLabels {
            ingress: IngressLabel(self.out.ingress.take()),
            service: ServiceLabel(self.out.backend.take()),
            status,
        };
        self.proxy
            .metrics
            .observe_request(&labels, self.out.upstream_latency);
        if let Some(Logged {
            method,
            path_and_query,
            start,
        }) = &self.logged
        {
            AccessLogEntry {
                client: self.conn.client.ip(),
                method: method.as_str(),
                host: self
                    .host
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(""),
                path: path_and_query.as_ref().map_or("/", |p| p.as_str()),
                status,
                bytes,
                upstream: self.out.upstream,
                duration: start.elapsed(),
                request_id: self
                    .request_id
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(""),
                ingress: labels.ingress.0.as_deref(),
            }
            .write_stdout();
        }
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.write(CLIENT_CLOSED_REQUEST, None);
    }
}

impl Proxy {
    /// Serves one request (never fails: errors are answered with a page of our own).
    ///
    /// Routing runs when this is called; an answer of the gateway's own is ready at
    /// once, and only a forwarded request has a future of its upstream exchange.
    pub fn handle(
        &self,
        mut req: Request<ClientBody>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + '_ {
        let mut record = Record {
            proxy: self,
            conn,
            logged: self.settings.access_log.then(|| Logged {
                method: req.method().clone(),
                path_and_query: req.uri().path_and_query().cloned(),
                start: Instant::now(),
            }),
            out: Outcome::default(),
            request_id: None,
            host: None,
            written: false,
        };
        match self.route(&mut req, &mut record) {
            Routed::Answer(resp) => {
                Either::Left(std::future::ready(self.finish(resp, &mut record)))
            }
            Routed::Forward(plan) => Either::Right(async move {
                let resp = self.send(req, conn, &plan, &mut record.out).await;
                self.finish(resp, &mut record)
            }),
        }
    }

    /// What every answer gets: HSTS on TLS, metrics, the access-log line.
    fn finish(
        &self,
        mut resp: Response<ProxyBody>,
        record: &mut Record<'_>,
    ) -> Response<ProxyBody> {
        if record.conn.tls {
            if let Some(hsts) = &self.settings.hsts {
                resp.headers_mut()
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert_with(|| hsts.clone());
            }
        }
        let bytes = record.logged.as_ref().and_then(|_| {
            resp.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .or_else(|| resp.body().size_hint().exact())
        });
        record.write(resp.status().as_u16(), bytes);
        resp
    }

    /// Routes a request: either an answer of the gateway's own (400, 404, 403, a
    /// redirect, 413, 503) or where to send it. Synchronous: the request's future then
    /// holds only the upstream exchange, not a nest of routing steps each keeping its
    /// own copy of the request.
    fn route(&self, req: &mut Request<ClientBody>, record: &mut Record<'_>) -> Routed {
        let conn = record.conn;
        let host = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => req.headers().get(header::HOST).cloned(),
        };
        let Some(host) = host else {
            return Routed::Answer(page(StatusCode::BAD_REQUEST, "missing Host header"));
        };
        record.host = Some(host.clone());
        // RFC 9112 §3.2: more than one Host, or one that is not `host[:port]`, is 400.
        let valid = match host.to_str() {
            Ok(h) => {
                req.headers().get_all(header::HOST).iter().count() <= 1
                    && !h.contains('@')
                    && h.parse::<http::uri::Authority>().is_ok()
            }
            Err(_) => false,
        };
        if !valid {
            return Routed::Answer(page(StatusCode::BAD_REQUEST, "invalid Host header"));
        }
        record.request_id = Some(hdr::ensure_request_id(req.headers_mut()));
        let host_str = host.to_str().unwrap_or_default();

        // One snapshot decides; the request keeps the backend and options it chose
        // however long it streams.
        let snapshot = self.snapshot.load();
        let table = &snapshot.routes;
        let path = req.uri().path();
        let route = match table.route(host_str, path) {
            Match::Rule(r) | Match::DefaultBackend(r) => r,
            Match::NotFound => {
                return Routed::Answer(page(
                    StatusCode::NOT_FOUND,
                    "no route for this host and path",
                ))
            }
        };
        let out = &mut record.out;
        out.ingress = Some(route.ingress.clone());
        let options = &route.options;

        if !options.access.allows(conn.client.ip()) {
            return Routed::Answer(page(StatusCode::FORBIDDEN, "source address not allowed"));
        }
        if !conn.tls && table.https_redirect(route, host_str) {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = hdr::https_location(host_str, self.settings.https_port, pq);
            return Routed::Answer(redirect(StatusCode::PERMANENT_REDIRECT, &location));
        }
        if let Some(r) = &options.redirect {
            let code = StatusCode::from_u16(r.code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            return Routed::Answer(redirect(code, &r.location));
        }
        if let Some(root) = &options.app_root {
            if path == "/" {
                return Routed::Answer(redirect(StatusCode::FOUND, root));
            }
        }

        // Canary: the canary Ingress's backend and options replace the main ones.
        let (backend, options) = match &route.canary {
            Some(c) => {
                let header = c
                    .rule
                    .by_header
                    .as_deref()
                    .and_then(|h| req.headers().get(h))
                    .and_then(|v| v.to_str().ok());
                let roll = rand::random_range(0..c.rule.weight_total.max(1));
                if c.rule.use_canary(header, roll) {
                    out.ingress = Some(c.ingress.clone());
                    (&c.backend, &c.options)
                } else {
                    (&route.backend, options)
                }
            }
            None => (&route.backend, options),
        };
        out.backend = Some(backend.clone());

        let limit = match options.body_size {
            Some(BodySize::Unlimited) => u64::MAX,
            Some(BodySize::Bytes(n)) => n,
            None => self.settings.default_body_limit,
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Routed::Answer(page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        if backend.endpoints.is_empty() {
            return Routed::Answer(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "no ready endpoint for this service",
            ));
        }

        let upstream_path = match options.rewrite_target {
            Some(_) => {
                let normalized = normalize_path(path);
                route
                    .rewrite_path(&normalized)
                    .map(|p| match req.uri().query() {
                        Some(q) => format!("{p}?{q}"),
                        None => p,
                    })
                    .map(Bytes::from)
            }
            None => None,
        };
        Routed::Forward(Plan {
            backend: backend.clone(),
            options: options.clone(),
            upstream_path,
            limit,
            host,
        })
    }

    /// Sends a routed request upstream (retrying connect failures on other endpoints)
    /// and returns the response, its body still streaming.
    ///
    /// A plain `fn` that takes the request apart before its future starts: an `async
    /// fn` would keep the request twice in its state (as the argument and as its parts),
    /// and the request's whole future is copied at least once per request.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn send<'a>(
        &'a self,
        req: Request<ClientBody>,
        conn: ConnInfo,
        plan: &'a Plan,
        out: &'a mut Outcome,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'a {
        let Plan {
            backend,
            options,
            upstream_path,
            limit,
            host,
            ..
        } = plan;
        let limit = *limit;
        let wire = Wire::of(options.backend_protocol);
        let (mut parts, body) = req.into_parts();
        // Only the HTTP/1.1 server side upgrades (it splices the client's connection
        // with the upstream's when the response is a 101 carrying an UpstreamUpgrade).
        let upgrading = parts.version == Version::HTTP_11 && hdr::wants_upgrade(&parts.headers);
        hdr::strip_hop_by_hop(&mut parts.headers, wire.is_h2(), upgrading);
        hdr::set_forwarded(
            &mut parts.headers,
            Forwarded {
                client: conn.client.ip(),
                proto: if conn.tls { "https" } else { "http" },
                host,
                port: conn.local.port(),
            },
        );
        parts.headers.insert(header::HOST, host.clone());
        let version = if wire.is_h2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let pq: Bytes = match upstream_path {
            Some(p) => p.clone(),
            None => Bytes::copy_from_slice(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .as_bytes(),
            ),
        };

        // Cookie affinity: honour the cookie while its endpoint exists, else pick and set.
        let endpoints = &backend.endpoints;
        let affinity = options.affinity.as_ref();
        let mut pinned = affinity.and_then(|a| {
            hdr::cookie(&parts.headers, &a.cookie_name).and_then(|v| affine_endpoint(endpoints, v))
        });
        let set_cookie = affinity.is_some() && pinned.is_none();

        let shared = Arc::new(BodyShared::default());
        let mut body = Some(body);
        let mut tried: Vec<usize> = Vec::new();
        let attempts = self.settings.connect_attempts.max(1).min(endpoints.len());
        let timeouts = Timeouts {
            send: options.send_timeout.unwrap_or(self.settings.send_timeout),
            read: options.read_timeout.unwrap_or(self.settings.read_timeout),
        };
        let connect_timeout = options
            .connect_timeout
            .unwrap_or(self.settings.connect_timeout);
        // Plain HTTP/1.1 goes through the inline pool; upgrades, h2 and TLS through
        // hyper-util's client.
        let inline = wire == Wire::H1 && !upgrading;
        let mut last_connect_error: Option<String> = None;
        let mut headers = Some(parts.headers);
        // A request handed back unanswered (its pooled connection was closed).
        let mut unsent: Option<Box<Request<UpstreamBody>>> = None;
        let mut attempt = 0;
        let mut stale_retries = 0;
        async move {
            while attempt < attempts {
                let Some(i) = pinned
                    .take()
                    .or_else(|| self.balancer.pick(endpoints, options.load_balance, &tried))
                else {
                    break;
                };
                let endpoint = endpoints[i];
                out.upstream = Some(endpoint);
                let mut conn = None;
                if inline {
                    conn = match self.h1.checkout(endpoint) {
                        Some(c) => Some(c),
                        None => match H1Pool::connect(endpoint, connect_timeout).await {
                            Ok(c) => Some(c),
                            Err(e) => {
                                tracing::debug!(%endpoint, error = %e, "upstream connect failed");
                                last_connect_error = Some(e.to_string());
                                tried.push(i);
                                attempt += 1;
                                continue;
                            }
                        },
                    };
                }
                let reused = conn.as_ref().is_some_and(|c| c.reused);
                let up = match unsent.take() {
                    Some(up) => *up,
                    None => {
                        let Some(incoming) = body.take().or_else(|| shared.take_returned()) else {
                            // The body was consumed by the failed attempt: it cannot be resent.
                            break;
                        };
                        let upstream_body = UpstreamBody::new(incoming, limit, shared.clone());
                        let uri = if inline {
                            http::uri::PathAndQuery::from_maybe_shared(pq.clone())
                                .ok()
                                .map(Uri::from)
                        } else {
                            upstream_uri(wire, endpoint, &pq)
                        };
                        let Some(uri) = uri else {
                            return page(StatusCode::BAD_REQUEST, "invalid request target");
                        };
                        let mut up = Request::new(upstream_body);
                        *up.method_mut() = parts.method.clone();
                        *up.uri_mut() = uri;
                        *up.version_mut() = version;
                        // hyper-util's client consumes the request even when the connect
                        // fails, so a later attempt needs a copy of the headers. (Inline
                        // connects fail before the request is built, and an unanswered
                        // request comes back whole.)
                        let keep = !inline && attempt + 1 < attempts;
                        *up.headers_mut() = if keep {
                            headers.clone().unwrap_or_default()
                        } else {
                            headers.take().unwrap_or_default()
                        };
                        up
                    }
                };

                let guard = self.balancer.start(endpoint);
                let sent = Instant::now();
                let has_body = !up.body().is_end_stream();
                let result = match conn.as_mut() {
                    Some(c) => awaiting_head(c.send(up), &shared, has_body, timeouts)
                        .await
                        .map(|r| r.map(UpstreamResponse::Inline).map_err(SendFailure::h1)),
                    None => awaiting_head(
                        self.upstreams.request(wire, options.connect_timeout, up),
                        &shared,
                        has_body,
                        timeouts,
                    )
                    .await
                    .map(|r| r.map(UpstreamResponse::Client).map_err(SendFailure::pooled)),
                };
                out.upstream_latency = Some(sent.elapsed());
                let resp = match result {
                    Err(Stall::Client) => {
                        return page(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request body stopped arriving",
                        )
                    }
                    Err(Stall::Upstream) => {
                        return page(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                    }
                    Ok(Err(f)) if f.connect => {
                        tracing::debug!(%endpoint, error = %f.error, "upstream connect failed");
                        last_connect_error = Some(f.error);
                        tried.push(i);
                        attempt += 1;
                        continue;
                    }
                    Ok(Err(f)) => {
                        if shared.exceeded() {
                            return page(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
                        }
                        // A pooled connection the backend closed meanwhile: send the request
                        // again on a fresh connection (see REPLAY_AFTER_IDLE).
                        let replayable = parts.method.is_idempotent()
                            || conn
                                .as_ref()
                                .is_some_and(|c| c.idle_for >= REPLAY_AFTER_IDLE);
                        let replay = reused && stale_retries < 4 && replayable;
                        if let Some(up) = f.unsent.filter(|_| replay) {
                            unsent = Some(up);
                            stale_retries += 1;
                            pinned = Some(i);
                            continue;
                        }
                        tracing::debug!(%endpoint, error = %f.error, "upstream request failed");
                        return page(StatusCode::BAD_GATEWAY, "upstream request failed");
                    }
                    Ok(Ok(resp)) => resp,
                };

                let (mut rparts, body) = match resp {
                    UpstreamResponse::Client(mut resp) => {
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS && upgrading {
                            let upstream = UpstreamUpgrade {
                                upstream: hyper::upgrade::on(&mut resp),
                                idle: timeouts.read,
                            };
                            let (mut parts, _) = resp.into_parts();
                            parts.extensions.insert(upstream);
                            return Response::from_parts(parts, ProxyBody::empty());
                        }
                        let (parts, rbody) = resp.into_parts();
                        let body = ProxyBody::Upstream {
                            body: rbody,
                            guard: Some(guard),
                            timer: InactivityTimer::new(timeouts.read),
                        };
                        (parts, body)
                    }
                    UpstreamResponse::Inline(resp) => {
                        let (parts, reader) = resp.into_parts();
                        let Some(conn) = conn else {
                            unreachable!("an inline exchange has its connection");
                        };
                        let body = PooledBody::new(
                            reader,
                            conn,
                            self.h1.clone(),
                            endpoint,
                            guard,
                            timeouts.read,
                        );
                        (parts, ProxyBody::Pooled(Box::new(body)))
                    }
                };
                hdr::strip_hop_by_hop(&mut rparts.headers, false, false);
                if set_cookie {
                    if let Some(a) = affinity {
                        let cookie = format!(
                            "{}={}; Path=/; HttpOnly",
                            a.cookie_name,
                            affinity_value(endpoint)
                        );
                        if let Ok(v) = HeaderValue::try_from(cookie) {
                            rparts.headers.append(header::SET_COOKIE, v);
                        }
                    }
                }
                return Response::from_parts(rparts, body);
            }
            if let Some(e) = last_connect_error {
                tracing::warn!(service = %backend.service, error = %e, "no endpoint reachable");
            }
            page(StatusCode::BAD_GATEWAY, "upstream connection failed")
        }
    }
}

/// The upstream timeouts of a request (nginx's `proxy_send_timeout` and
/// `proxy_read_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    /// Between two pieces of the request body.
    send: Duration,
    /// From the end of the request to the response head (and, in the response body,
    /// between two pieces).
    read: Duration,
}

/// Who let an exchange stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// The client stopped sending its request body (408).
    Client,
    /// The upstream stopped taking the request body or did not answer (504).
    Upstream,
}

/// Until when an upstream exchange may wait for its response head, and who is to blame
/// if it runs out: while the request body is on its way, `send` from the last piece that
/// moved (from `started` until the first); once the body is through, `read` from then.
fn head_deadline(
    progress: Option<Progress>,
    started: tokio::time::Instant,
    t: Timeouts,
) -> (tokio::time::Instant, Stall) {
    match progress {
        None => (started + t.send, Stall::Upstream),
        Some(p) if p.done => (p.last + t.read, Stall::Upstream),
        Some(p) if p.waiting_on_client => (p.last + t.send, Stall::Client),
        Some(p) => (p.last + t.send, Stall::Upstream),
    }
}

/// Awaits an upstream exchange's response head under the request's timeouts (see
/// [`head_deadline`]; a request without a body waits `read` for it). The body moves on
/// the upstream side's own task when hyper's client sends it, so the deadline is
/// looked at again whenever the timer fires, not only when this task is woken.
fn awaiting_head<F: Future>(
    exchange: F,
    shared: &BodyShared,
    has_body: bool,
    t: Timeouts,
) -> AwaitingHead<'_, F> {
    let started = tokio::time::Instant::now();
    let first = if has_body { t.send } else { t.read };
    AwaitingHead {
        exchange,
        timer: tokio::time::sleep_until(started + first),
        shared,
        started,
        has_body,
        t,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`awaiting_head`]; written out rather than an `async fn`, which
    /// would keep the exchange's future (a kilobyte) two or three times over in its
    /// state, and that state is copied with every request's future.
    struct AwaitingHead<'a, F> {
        #[pin]
        exchange: F,
        #[pin]
        timer: tokio::time::Sleep,
        shared: &'a BodyShared,
        started: tokio::time::Instant,
        has_body: bool,
        t: Timeouts,
    }
}

impl<F: Future> Future for AwaitingHead<'_, F> {
    type Output = Result<F::Output, Stall>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        if let Poll::Ready(out) = me.exchange.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let stall = if *me.has_body {
            let (deadline, stall) = head_deadline(me.shared.progress(), *me.started, *me.t);
            if me.timer.deadline() != deadline {
                me.timer.as_mut().reset(deadline);
            }
            stall
        } else {
            Stall::Upstream
        };
        me.timer.poll(cx).map(|()| Err(stall))
    }
}

fn upstream_uri(wire: Wire, endpoint: SocketAddr, pq: &Bytes) -> Option<Uri> {
    let authority = endpoint.to_string();
    Uri::builder()
        .scheme(wire.scheme())
        .authority(authority)
        .path_and_query(http::uri::PathAndQuery::from_maybe_shared(pq.clone()).ok()?)
        .build()
        .ok()
}

/// A short plain-text page of the gateway's own.
pub fn page(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "{} {}: {message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut resp = page(status, "redirecting");
    match HeaderValue::try_from(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid redirect location",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_deadline_follows_the_body_then_the_read_timeout() {
        let t = Timeouts {
            send: Duration::from_secs(2),
            read: Duration::from_secs(7),
        };
        let start = tokio::time::Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let progress = |last, waiting_on_client, done| {
            Some(Progress {
                last: at(last),
                waiting_on_client,
                done,
            })
        };
        // Nothing asked for yet: the upstream side has `send` to start taking the body.
        assert_eq!(head_deadline(None, start, t), (at(2), Stall::Upstream));
        // Each piece that moves pushes the deadline; who is waited on takes the blame.
        assert_eq!(
            head_deadline(progress(5, true, false), start, t),
            (at(7), Stall::Client)
        );
        assert_eq!(
            head_deadline(progress(5, false, false), start, t),
            (at(7), Stall::Upstream)
        );
        // The body is through: the head has `read` from then.
        assert_eq!(
            head_deadline(progress(9, false, true), start, t),
            (at(16), Stall::Upstream)
        );
    }
}
