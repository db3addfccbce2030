//! The gateway's data path with a static snapshot and no API server, for benchmarks
//! (`bench/gateway/run.sh`): every request for any host and path goes to the given
//! backends, as one Ingress rule `/` (Prefix, no host) would send it.
//!
//! ```text
//! bench_gateway --listen 127.0.0.1:18083 --backend 127.0.0.1:18080 [--https ADDR] [--threads 1] [--access-log]
//! ```
//!
//! With `--threads 1` (the default) it runs tokio's current-thread runtime, the fair
//! match for one nginx worker. Prints `listening on ADDR` when ready; stops on SIGINT
//! or SIGTERM (with the normal drain).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use ironlb_gateway::metrics::Metrics;
use ironlb_gateway::proxy::{self, Listen, ProxyConfig};
use ironlb_gateway::snapshot::Snapshot;
use ironlb_routes::{compile, EndpointSliceInput, IngressInput, Inputs, ServiceInput};
use tokio_util::sync::CancellationToken;

struct Opts {
    listen: SocketAddr,
    /// HTTPS with the gateway's self-signed default certificate (ECDSA P-256).
    https: Option<SocketAddr>,
    backends: Vec<SocketAddr>,
    threads: usize,
    access_log: bool,
}

fn parse() -> anyhow::Result<Opts> {
    let mut opts = Opts {
        listen: "127.0.0.1:18083".parse()?,
        https: None,
        backends: Vec::new(),
        threads: 1,
        access_log: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => opts.listen = value()?.parse()?,
            "--backend" => opts.backends.push(value()?.parse()?),
            "--https" => opts.https = Some(value()?.parse()?),
            "--threads" => opts.threads = value()?.parse()?,
            "--access-log" => opts.access_log = true,
            other => bail!("unknown argument {other}"),
        }
    }
    if opts.backends.is_empty() {
        bail!("give at least one --backend ADDR");
    }
    Ok(opts)
}

/// One host-less `/` rule to a Service whose endpoints are the backends (one slice per
/// backend, so each can have its own port).
fn inputs(backends: &[SocketAddr]) -> Inputs {
    Inputs::new(
        [IngressInput::new("bench", "bench")
            .created(1_700_000_000)
            .prefix("", "/", "echo", 80)],
        [ServiceInput::new("bench", "echo").named_target("http", 80, "http")],
        backends.iter().map(|b| {
            EndpointSliceInput::new("bench", "echo")
                .port("http", b.port())
                .ready(&b.ip().to_string())
        }),
    )
}

fn main() -> anyhow::Result<()> {
    let opts = parse()?;
    let rt = if opts.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(opts))
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let (routes, diagnostics) = compile(&inputs(&opts.backends));
    if !diagnostics.is_empty() {
        bail!("the bench route did not compile cleanly: {diagnostics:?}");
    }
    let mut snapshot = Snapshot::empty(Arc::new(ironlb_gateway::tls::self_signed_default()));
    snapshot.routes = routes;
    snapshot.generation = 1;
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let mut cfg = ProxyConfig::new();
    cfg.http = Some(Listen::Addr(opts.listen));
    cfg.https = opts.https.map(Listen::Addr);
    cfg.access_log = opts.access_log;
    // As the benchmark's nginx (`keepalive_requests 1000000`): load generators keep
    // their connections for the whole run.
    cfg.keepalive_requests = 1_000_000;
    let signals = ironlb_runtime::signals::Shutdown::install()?;
    let shutdown = CancellationToken::new();
    let handle = proxy::serve(
        cfg,
        snapshot,
        Arc::new(Metrics::unregistered()),
        shutdown.clone(),
    )
    .await?;
    println!(
        "listening on {}",
        handle.http_addr.context("no HTTP listener")?
    );
    signals.recv().await;
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
