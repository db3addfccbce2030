//! Gateway metrics (prometheus-client) and the JSON access log.
//!
//! The proxy calls [`Metrics::observe_request`] once per request and
//! [`Metrics::connection_opened`] / [`Metrics::connection_closed`] per client
//! connection; the watch side calls [`Metrics::snapshot_swapped`] after every swap.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ironlb_routes::{Backend, IngressRef, PortRef};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `namespace/name` of the Ingress that served the request; empty when none matched.
    pub ingress: IngressLabel,
    /// `namespace/service:port` of the backend; empty when the gateway answered itself.
    pub service: ServiceLabel,
    /// HTTP status code sent to the client.
    pub status: u16,
}

/// The route's Ingress, kept as it is: the label text is written only when scraped,
/// not per request.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct IngressLabel(pub Option<Arc<IngressRef>>);

/// The route's backend, kept as it is; equal when namespace, Service and port are
/// (whatever its endpoints).
#[derive(Debug, Clone, Default)]
pub struct ServiceLabel(pub Option<Arc<Backend>>);

impl ServiceLabel {
    fn key(&self) -> Option<(&str, &str, &PortRef)> {
        self.0
            .as_deref()
            .map(|b| (&*b.namespace, &*b.service, &b.port))
    }
}

impl PartialEq for ServiceLabel {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ServiceLabel {}

impl Hash for ServiceLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl EncodeLabelValue for IngressLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match &self.0 {
            Some(i) => write!(encoder, "{}/{}", i.namespace, i.name),
            None => Ok(()),
        }
    }
}

impl EncodeLabelValue for ServiceLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self.key() {
            Some((namespace, service, port)) => write!(encoder, "{namespace}/{service}:{port}"),
            None => Ok(()),
        }
    }
}

/// Every gateway metric, registered into the process registry by [`Metrics::new`].
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    upstream_latency: Histogram,
    active_connections: Gauge,
    snapshot_swaps: Counter,
    snapshot_build: Histogram,
    routes: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them under `registry` (names get the
    /// registry's prefix, e.g. `ironlb_gateway_requests_total`).
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            // 0.5 ms .. ~16 s
            upstream_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            active_connections: Gauge::default(),
            snapshot_swaps: Counter::default(),
            // 1 ms .. ~4 s
            snapshot_build: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
            routes: Gauge::default(),
        };
        let reg = registry.sub_registry_with_prefix("gateway");
        reg.register(
            "requests",
            "Requests by Ingress, backend Service and status code",
            m.requests.clone(),
        );
        reg.register(
            "upstream_latency_seconds",
            "Time from sending a request upstream to its response head",
            m.upstream_latency.clone(),
        );
        reg.register(
            "active_connections",
            "Client connections currently open",
            m.active_connections.clone(),
        );
        reg.register(
            "snapshot_swaps",
            "Route/endpoint/certificate snapshots swapped in",
            m.snapshot_swaps.clone(),
        );
        reg.register(
            "snapshot_build_seconds",
            "Time to turn the watched objects into a snapshot (convert, compile, certificates)",
            m.snapshot_build.clone(),
        );
        reg.register("routes", "Routes in the current snapshot", m.routes.clone());
        m
    }

    /// Metrics registered nowhere (tests, benchmarks).
    pub fn unregistered() -> Metrics {
        Metrics::new(&mut Registry::default())
    }

    /// Counts one finished request; `upstream` is the time to the upstream response
    /// head when the request was proxied.
    pub fn observe_request(&self, labels: &RequestLabels, upstream: Option<Duration>) {
        // By reference: the labels are cloned only the first time they are seen.
        self.requests.get_or_create(labels).inc();
        if let Some(d) = upstream {
            self.upstream_latency.observe(d.as_secs_f64());
        }
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.active_connections.inc();
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.active_connections.dec();
    }

    /// A new snapshot with `route_count` routes was swapped in.
    pub fn snapshot_swapped(&self, route_count: usize) {
        self.snapshot_swaps.inc();
        self.routes
            .set(i64::try_from(route_count).unwrap_or(i64::MAX));
    }

    /// A snapshot build (whether or not anything changed) took `took`.
    pub fn snapshot_built(&self, took: Duration) {
        self.snapshot_build.observe(took.as_secs_f64());
    }

    /// Requests counted so far for this Ingress (`namespace/name`), backend
    /// (`namespace/service:port`) and status; empty names: none (tests).
    pub fn requests_with(&self, ingress: &str, service: &str, status: u16) -> u64 {
        let ingress = ingress
            .split_once('/')
            .map(|(namespace, name)| Arc::new(IngressRef::new(namespace, name)));
        let service = service.split_once('/').and_then(|(namespace, rest)| {
            let (service, port) = rest.rsplit_once(':')?;
            Some(Arc::new(Backend {
                namespace: namespace.into(),
                service: service.into(),
                port: port
                    .parse()
                    .map_or_else(|_| PortRef::Name(port.to_string()), PortRef::Number),
                endpoints: Arc::new([]),
                terminating_fallback: false,
            }))
        });
        let labels = RequestLabels {
            ingress: IngressLabel(ingress),
            service: ServiceLabel(service),
            status,
        };
        self.requests.get(&labels).map(|c| c.get()).unwrap_or(0)
    }

    /// Currently open client connections.
    pub fn active_connections(&self) -> i64 {
        self.active_connections.get()
    }
}

/// One access-log line's fields.
#[derive(Debug, Clone)]
pub struct AccessLogEntry<'a> {
    /// Client address.
    pub client: IpAddr,
    /// Request method.
    pub method: &'a str,
    /// Host header / `:authority`.
    pub host: &'a str,
    /// Request path and query as received.
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// Response body bytes announced by the upstream (`Content-Length`), if known.
    pub bytes: Option<u64>,
    /// Upstream endpoint, when proxied.
    pub upstream: Option<std::net::SocketAddr>,
    /// Time until the response head was sent.
    pub duration: Duration,
    /// `X-Request-ID`.
    pub request_id: &'a str,
    /// The Ingress, when one matched.
    pub ingress: Option<&'a IngressRef>,
}

impl AccessLogEntry<'_> {
    /// The JSON line (with the trailing newline), timestamped `now`.
    pub fn to_line(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let s = |out: &mut Vec<u8>, v: &str| {
            // serde_json escapes quotes, control characters and backslashes.
            let _ = serde_json::to_writer(&mut *out, v);
        };
        out.extend_from_slice(b"{\"time\":\"");
        let _ = write!(out, "{}", now.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        let _ = write!(out, "\",\"client\":\"{}\",\"method\":", self.client);
        s(&mut out, self.method);
        out.extend_from_slice(b",\"host\":");
        s(&mut out, self.host);
        out.extend_from_slice(b",\"path\":");
        s(&mut out, self.path);
        let _ = write!(out, ",\"status\":{}", self.status);
        match self.bytes {
            Some(b) => {
                let _ = write!(out, ",\"bytes\":{b}");
            }
            None => out.extend_from_slice(b",\"bytes\":null"),
        }
        match self.upstream {
            Some(u) => {
                let _ = write!(out, ",\"upstream\":\"{u}\"");
            }
            None => out.extend_from_slice(b",\"upstream\":null"),
        }
        let _ = write!(
            out,
            ",\"duration_ms\":{:.3},\"request_id\":",
            self.duration.as_secs_f64() * 1000.0
        );
        s(&mut out, self.request_id);
        out.extend_from_slice(b",\"ingress\":");
        match self.ingress {
            Some(i) => s(&mut out, &i.to_string()),
            None => out.extend_from_slice(b"\"\""),
        }
        out.extend_from_slice(b"}\n");
        out
    }

    /// Writes the line to stdout in one `write` (lines of concurrent requests never
    /// interleave); errors (closed stdout) are ignored.
    pub fn write_stdout(&self) {
        let line = self.to_line(chrono::Utc::now());
        let _ = std::io::stdout().lock().write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn requests_and_swaps_show_up_in_the_exposition() {
        let mut registry = Registry::with_prefix("ironlb");
        let m = Metrics::new(&mut registry);
        let backend = Backend {
            namespace: "shop".into(),
            service: "web".into(),
            port: PortRef::Number(80),
            endpoints: Arc::new(["192.0.2.10:8080".parse().unwrap()]),
            terminating_fallback: false,
        };
        let labels = RequestLabels {
            ingress: IngressLabel(Some(Arc::new(IngressRef::new("shop", "web")))),
            service: ServiceLabel(Some(Arc::new(backend))),
            status: 200,
        };
        m.observe_request(&labels, Some(Duration::from_millis(3)));
        m.observe_request(&labels, None);
        m.snapshot_swapped(12);
        m.connection_opened();
        assert_eq!(m.requests_with("shop/web", "shop/web:80", 200), 2);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "ironlb_gateway_requests_total{ingress=\"shop/web\",service=\"shop/web:80\",status=\"200\"} 2"
        ));
        assert!(text.contains("ironlb_gateway_routes 12"));
        assert!(text.contains("ironlb_gateway_snapshot_swaps_total 1"));
        assert!(text.contains("ironlb_gateway_active_connections 1"));
        assert!(text.contains("ironlb_gateway_upstream_latency_seconds_count 1"));
    }

    #[test]
    fn an_access_log_line_is_one_json_object() {
        let entry = AccessLogEntry {
            client: "192.0.2.7".parse().unwrap(),
            method: "GET",
            host: "shop.example.com",
            path: "/cart?q=\"x\"",
            status: 200,
            bytes: Some(42),
            upstream: Some("192.0.2.10:8080".parse().unwrap()),
            duration: Duration::from_micros(1500),
            request_id: "abc",
            ingress: Some(&IngressRef::new("shop", "web")),
        };
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let line = entry.to_line(now);
        assert!(line.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["path"], "/cart?q=\"x\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 42);
        assert_eq!(v["upstream"], "192.0.2.10:8080");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["ingress"], "shop/web");
    }
}
