//! ironlb-gateway routes Ingress hosts and paths to Service endpoints.
//!
//! Thin glue around `ironlb-routes`:
//! - `watch/` turns Ingress, IngressClass, Service, EndpointSlice and Secret objects
//!   into a new [`snapshot::Snapshot`] on every change (debounced), writes Ingress
//!   status and Events;
//! - `tls/` loads certificates and picks one per SNI from the current snapshot;
//! - `proxy/` is the data path (HTTP/1.1 server side of its own, HTTP/2 and h2c with
//!   hyper, upgrades) that reads the snapshot once per request.

/// mimalloc for every binary that links the gateway (the daemon and its benchmark): the
/// data path allocates small, short-lived buffers per request, where glibc malloc spent
/// ~10 % of the proxy's CPU trimming and regrowing its heap (bench/gateway/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod metrics;
pub mod proxy;
pub mod snapshot;
pub mod tls;
pub mod watch;

use ironlb_runtime::{CommonArgs, Process};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::time::Duration;

/// Command-line options of `ironlb-gateway`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ironlb-gateway",
    version,
    about = "IronLB: routes Ingress hosts and paths to Service endpoints"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Plain HTTP listener (HTTP/1.1 and h2c with prior knowledge).
    #[arg(long, env = "IRONLB_HTTP_LISTEN", default_value = "0.0.0.0:80")]
    pub http_listen: SocketAddr,

    /// TLS listener (ALPN h2 and http/1.1).
    #[arg(long, env = "IRONLB_HTTPS_LISTEN", default_value = "0.0.0.0:443")]
    pub https_listen: SocketAddr,

    /// Name of the IngressClass this gateway serves (its controller must be
    /// `ironlb.io/ingress-gateway`).
    #[arg(long, env = "IRONLB_INGRESS_CLASS", default_value = "ironlb")]
    pub ingress_class: String,

    /// `namespace/name` of the gateway's own LoadBalancer Service; its IPs are written
    /// to the `status.loadBalancer` of every Ingress served.
    #[arg(long, env = "IRONLB_PUBLISH_SERVICE")]
    pub publish_service: Option<String>,

    /// `namespace/name` of a TLS Secret used when no Ingress certificate matches the SNI;
    /// without it a self-signed certificate is made at start.
    #[arg(long, env = "IRONLB_DEFAULT_SSL_CERTIFICATE")]
    pub default_ssl_certificate: Option<String>,

    /// Only write Ingress status and Events when this is set (one writer per cluster is
    /// enough; every replica still serves traffic).
    #[arg(long, env = "IRONLB_UPDATE_STATUS", default_value_t = true, action = clap::ArgAction::Set)]
    pub update_status: bool,

    /// Wait this long after a change before compiling a new snapshot, so a burst of
    /// changes becomes one swap.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub debounce: Duration,

    /// Maximum simultaneous client connections.
    #[arg(long, default_value_t = 16384)]
    pub max_connections: usize,

    /// Maximum size of a request's header block, in bytes (larger → 431).
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,

    /// Time allowed to read a request's headers from their first byte, and a new
    /// connection's first request or TLS handshake (slowloris guard).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a connection with no request in progress stays open (ingress-nginx's
    /// `keep-alive`, 75 s): HTTP/1.1 until the next request's first byte, HTTP/2 with no
    /// stream open. 0 turns HTTP/1.1 keep-alive off (HTTP/2 then uses the header read
    /// timeout).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// Requests served on one client connection before it is closed (nginx's
    /// `keepalive_requests`; HTTP/1.1 with `Connection: close`, HTTP/2 with GOAWAY);
    /// 0 = no limit.
    #[arg(long, default_value_t = 1000)]
    pub keepalive_requests: u64,

    /// A client that takes none of its response for this long is disconnected (nginx's
    /// `send_timeout`: a slow reader cannot hold a connection and its upstream for ever);
    /// HTTP/2: that stream is reset, the connection's other streams go on.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub client_send_timeout: Duration,

    /// Client connections silent this long get TCP keep-alive probes (a peer gone without
    /// a word is dropped after three go unanswered, 10 s apart); pooled upstream
    /// connections idle longer are closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Default request body limit (`proxy-body-size` overrides per Ingress), in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub default_body_limit: u64,

    /// Time given to in-flight requests on SIGTERM before the process exits.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Write one JSON access-log line per request to stdout.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,
}

/// Parses `250ms`, `5s`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 5s, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The watch side's configuration from the command line.
pub fn watch_config(args: &Args) -> anyhow::Result<watch::WatchConfig> {
    let parse = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<watch::NamespacedName>> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    Ok(watch::WatchConfig {
        ingress_class: args.ingress_class.clone(),
        publish_service: parse("publish-service", &args.publish_service)?,
        default_ssl_certificate: parse("default-ssl-certificate", &args.default_ssl_certificate)?,
        update_status: args.update_status,
        debounce: args.debounce,
    })
}

/// Runs until SIGTERM/SIGINT: health server, watch side, proxy; on the signal the
/// gateway turns unready, the watches stop and the proxy drains (up to
/// `--drain-timeout`). Requests before the first full sync get the empty snapshot's 404.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let watch_config = watch_config(&args)?;
    let mut registry = Registry::with_prefix("ironlb");
    let metrics = std::sync::Arc::new(metrics::Metrics::new(&mut registry));
    let process = Process::start("ironlb-gateway", &args.common, registry).await?;

    // Served until `--default-ssl-certificate` is loaded, and whenever it is unusable.
    let fallback_cert = std::sync::Arc::new(tls::self_signed_default());
    let snapshot: snapshot::SharedSnapshot = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
        snapshot::Snapshot::empty(fallback_cert.clone()),
    ));

    let watch = tokio::spawn(watch::run(
        process.client.clone(),
        watch_config,
        snapshot.clone(),
        fallback_cert,
        metrics.clone(),
        process.readiness.clone(),
        process.shutdown.clone(),
    ));

    let proxy = proxy::serve(
        proxy::ProxyConfig::from_args(&args),
        snapshot,
        metrics,
        process.shutdown.clone(),
    )
    .await?;
    tracing::info!(
        http = ?proxy.http_addr,
        https = ?proxy.https_addr,
        "proxy listening"
    );

    process.shutdown.cancelled().await;
    process.readiness.set(false);
    tracing::info!("shutting down: draining in-flight requests");
    proxy.wait().await;
    let _ = watch.await;
    tracing::info!("stopped");
    Ok(())
}
