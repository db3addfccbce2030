//! `ironlb-echo`: the echo backend as a process, for the lab's backend "pods".
//!
//! Prints `ironlb-echo listening on http://ADDR` (or `https://`) once per listener
//! when ready, then serves until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use ironlb_echo::{tls_config_from_files, EchoConfig};
use tokio::io::AsyncWriteExt;

/// Echo server for IronLB tests: answers JSON naming the backend and the request it saw.
#[derive(Debug, Parser)]
#[command(name = "ironlb-echo", version)]
struct Args {
    /// Listen address; repeatable. Plain HTTP (HTTP/1.1 and h2c), or TLS when
    /// --tls-cert/--tls-key are given without --tls-listen. Default 0.0.0.0:8080 when no
    /// listener is given.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// TLS listen address (h2 and http/1.1 by ALPN); repeatable; needs --tls-cert/--tls-key.
    #[arg(long = "tls-listen", value_name = "ADDR")]
    tls_listen: Vec<SocketAddr>,
    /// Service name reported in replies.
    #[arg(long, env = "ECHO_SERVICE", default_value = "echo")]
    service: String,
    /// Pod name reported in replies.
    #[arg(long, env = "ECHO_POD", default_value = "echo-0")]
    pod: String,
    /// Status code of every reply.
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// Delay before every reply, in milliseconds.
    #[arg(long = "delay-ms", default_value_t = 0)]
    delay_ms: u64,
    /// PEM certificate chain for --tls-listen.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-listen.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    if args.listen.is_empty() && args.tls_listen.is_empty() {
        args.listen.push("0.0.0.0:8080".parse()?);
    }
    let status = http::StatusCode::from_u16(args.status)
        .with_context(|| format!("--status {} is not an HTTP status", args.status))?;
    let plain = EchoConfig::new(&args.service, &args.pod)
        .with_status(status)
        .with_delay(Duration::from_millis(args.delay_ms));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(plain.clone().with_tls(
                tls_config_from_files(cert, key).context("loading --tls-cert/--tls-key")?,
            ))
        }
        _ if !args.tls_listen.is_empty() => bail!("--tls-listen needs --tls-cert and --tls-key"),
        _ => None,
    };
    // Certificates without --tls-listen: the --listen addresses are the TLS ones.
    let plain = match &tls {
        Some(tls) if args.tls_listen.is_empty() => tls.clone(),
        _ => plain,
    };
    // Before the first `listening on` line: a test may send SIGTERM as soon as it reads it.
    let shutdown = ironlb_runtime::signals::Shutdown::install()?;
    let mut handles = Vec::new();
    let listeners = args.listen.iter().map(|a| (a, &plain)).chain(
        args.tls_listen
            .iter()
            .map(|a| (a, tls.as_ref().expect("checked above"))),
    );
    for (addr, cfg) in listeners {
        let handle = cfg
            .clone()
            .spawn(*addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let mut out = tokio::io::stdout();
        out.write_all(format!("ironlb-echo listening on {}\n", handle.url()).as_bytes())
            .await?;
        out.flush().await?;
        handles.push(handle);
    }
    tracing::info!(service = %args.service, pod = %args.pod, "serving");
    shutdown.recv().await;
    tracing::info!("stopping");
    drop(handles);
    Ok(())
}
