//! Gateway metrics (prometheus-client) and the JSON access log.
//!
//! The proxy calls [`Metrics::observe_request`] once per request and
//! [`Metrics::connection_opened`] / [`Metrics::connection_closed`] per client
//! connection; the watch side calls [`Metrics::snapshot_swapped`] after every swap,
//! which also drops the request series of Ingresses and backends no longer routed to
//! (as ingress-nginx does), so Ingress churn does not grow `/metrics` for ever.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ironlb_routes::{Backend, IngressRef, PortRef, RouteTable};
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
    /// Every label set `requests` has a series for: the family cannot list them, and a
    /// swap must find the ones to drop.
    series: Mutex<HashSet<RequestLabels>>,
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
            series: Mutex::default(),
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
        if let Some(counter) = self.requests.get(labels) {
            counter.inc();
        } else {
            self.series_mut().insert(labels.clone());
            self.requests.get_or_create(labels).inc();
        }
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

    /// A new snapshot with `routes` was swapped in. Request series whose Ingress, or
    /// whose Ingress and backend together, it no longer routes are dropped (a request
    /// still finishing on the old snapshot may bring one back until the next swap).
    pub fn snapshot_swapped(&self, routes: &RouteTable) {
        self.snapshot_swaps.inc();
        self.routes
            .set(i64::try_from(routes.len()).unwrap_or(i64::MAX));
        let routed = Routed::new(routes);
        self.series_mut().retain(|labels| {
            let keep = routed.has(labels);
            if !keep {
                self.requests.remove(labels);
            }
            keep
        });
    }

    fn series_mut(&self) -> std::sync::MutexGuard<'_, HashSet<RequestLabels>> {
        // A panic elsewhere leaves the set whole: insert and retain are single calls.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
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

/// The Ingresses a route table names and the backends each sends requests to.
struct Routed<'t> {
    ingresses: HashSet<&'t IngressRef>,
    pairs: HashSet<(&'t IngressRef, ServiceKey<'t>)>,
}

/// A backend as a metric label tells it: namespace, Service, port.
type ServiceKey<'t> = (&'t str, &'t str, &'t PortRef);

impl<'t> Routed<'t> {
    fn new(table: &'t RouteTable) -> Self {
        let mut routed = Routed {
            ingresses: HashSet::new(),
            pairs: HashSet::new(),
        };
        let targets = table.routes().iter().flat_map(|r| {
            let canary = r.canary.as_ref().map(|c| (&*c.ingress, &*c.backend));
            std::iter::once((&*r.ingress, &*r.backend)).chain(canary)
        });
        for (ingress, backend) in targets {
            routed.ingresses.insert(ingress);
            routed.pairs.insert((
                ingress,
                (&backend.namespace, &backend.service, &backend.port),
            ));
        }
        routed
    }

    /// Whether a series with `labels` can still be counted: the gateway's own answers
    /// outside any Ingress, an Ingress's own answers (redirects, refusals) while it is
    /// routed, and its proxied requests while it still sends to that backend.
    fn has(&self, labels: &RequestLabels) -> bool {
        let Some(ingress) = labels.ingress.0.as_deref() else {
            return true;
        };
        match labels.service.key() {
            None => self.ingresses.contains(ingress),
            Some(service) => self.pairs.contains(&(ingress, service)),
        }
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
    use ironlb_routes::{compile, EndpointSliceInput, IngressInput, Inputs, ServiceInput};
    use prometheus_client::encoding::text::encode;

    /// Routes for the given Ingresses (namespace `shop`) over Services `web` and `api`.
    fn table(ingresses: Vec<IngressInput>) -> RouteTable {
        let services = ["web", "api"]
            .map(|name| ServiceInput::new("shop", name).named_target("http", 80, "http"));
        let slices = ["web", "api"].map(|name| {
            EndpointSliceInput::new("shop", name)
                .port("http", 8080)
                .ready("192.0.2.10")
        });
        compile(&Inputs::new(ingresses, services, slices)).0
    }

    fn labels(ingress: Option<&str>, service: Option<&str>, status: u16) -> RequestLabels {
        RequestLabels {
            ingress: IngressLabel(ingress.map(|name| Arc::new(IngressRef::new("shop", name)))),
            service: ServiceLabel(service.map(|name| {
                Arc::new(Backend {
                    namespace: "shop".into(),
                    service: name.into(),
                    port: PortRef::Number(80),
                    endpoints: Arc::new(["192.0.2.10:8080".parse().unwrap()]),
                    terminating_fallback: false,
                })
            })),
            status,
        }
    }

    #[test]
    fn requests_and_swaps_show_up_in_the_exposition() {
        let mut registry = Registry::with_prefix("ironlb");
        let m = Metrics::new(&mut registry);
        let labels = labels(Some("web"), Some("web"), 200);
        m.observe_request(&labels, Some(Duration::from_millis(3)));
        m.observe_request(&labels, None);
        m.snapshot_swapped(&table(vec![
            IngressInput::new("shop", "web").prefix("a.example.com", "/", "web", 80),
            IngressInput::new("shop", "api").prefix("a.example.com", "/api", "api", 80),
        ]));
        m.connection_opened();
        assert_eq!(m.requests_with("shop/web", "shop/web:80", 200), 2);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "ironlb_gateway_requests_total{ingress=\"shop/web\",service=\"shop/web:80\",status=\"200\"} 2"
        ));
        assert!(text.contains("ironlb_gateway_routes 2"));
        assert!(text.contains("ironlb_gateway_snapshot_swaps_total 1"));
        assert!(text.contains("ironlb_gateway_active_connections 1"));
        assert!(text.contains("ironlb_gateway_upstream_latency_seconds_count 1"));
    }

    #[test]
    fn a_swap_drops_the_series_of_what_is_no_longer_routed() {
        let mut registry = Registry::with_prefix("ironlb");
        let m = Metrics::new(&mut registry);
        let served = [
            labels(Some("web"), Some("web"), 200),
            labels(Some("web"), Some("api"), 200), // web sent to api before its change
            labels(Some("web"), None, 308),        // web's own redirect
            labels(Some("gone"), Some("api"), 502),
            labels(Some("gone"), None, 403),
            labels(None, None, 404), // the gateway's own page, outside any Ingress
            labels(Some("web-canary"), Some("api"), 200),
        ];
        for l in &served {
            m.observe_request(l, None);
        }
        m.snapshot_swapped(&table(vec![
            IngressInput::new("shop", "web").prefix("a.example.com", "/", "web", 80),
            IngressInput::new("shop", "web-canary")
                .prefix("a.example.com", "/", "api", 80)
                .annotation("nginx.ingress.kubernetes.io/canary", "true")
                .annotation("nginx.ingress.kubernetes.io/canary-weight", "10"),
        ]));
        let kept: Vec<bool> = served.iter().map(|l| m.requests.get(l).is_some()).collect();
        assert_eq!(kept, [true, false, true, false, false, true, true]);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(!text.contains("gone"), "{text}");
        assert!(
            !text.contains("ingress=\"shop/web\",service=\"shop/api:80\""),
            "{text}"
        );
        assert_eq!(m.series_mut().len(), 4);
        // Counting again after the swap starts the series afresh.
        m.observe_request(&served[3], None);
        assert_eq!(m.requests_with("shop/gone", "shop/api:80", 502), 1);
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
