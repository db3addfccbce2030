//! Process glue shared by `ironlb-controller`, `ironlb-speaker` and `ironlb-gateway`.
//!
//! Every binary starts the same way: parse [`CommonArgs`], [`logging::init`], open the
//! [`health`] server (`/healthz`, `/readyz`, `/metrics`), build a kube client with
//! [`kube_client`], and run until [`signals::Shutdown`] fires. Keeping this in one place
//! is what makes the three binaries behave alike for an operator.

pub mod health;
pub mod kube_client;
pub mod leader_election;
pub mod logging;
pub mod signals;

use std::net::SocketAddr;

/// Command-line options every IronLB binary accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, env = "IRONLB_HEALTH_LISTEN", default_value = "0.0.0.0:9090")]
    pub health_listen: SocketAddr,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "IRONLB_LOG_FORMAT", value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,

    /// Path of a kubeconfig file. Without it, KUBECONFIG, ~/.kube/config and then the
    /// in-cluster service account are tried, as kubectl does.
    #[arg(long, env = "IRONLB_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// What every binary has once started: a kube client, the readiness flag its health
/// server reports, and the shutdown token cancelled by SIGTERM/SIGINT.
pub struct Process {
    pub client: kube::Client,
    pub readiness: health::Readiness,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub health_addr: SocketAddr,
}

impl Process {
    /// Logging, signals, health server, kube client — in that order, so that a bad
    /// kubeconfig is reported through the configured log format.
    pub async fn start(
        component: &str,
        common: &CommonArgs,
        registry: prometheus_client::registry::Registry,
    ) -> anyhow::Result<Process> {
        logging::init(common.log_format);
        tracing::info!(component, version = env!("CARGO_PKG_VERSION"), "starting");
        let shutdown = signals::Shutdown::install()?.into_token();
        let readiness = health::Readiness::default();
        let health_addr = health::serve(
            common.health_listen,
            std::sync::Arc::new(registry),
            readiness.clone(),
            shutdown.clone(),
        )
        .await?;
        let client = kube_client::client(common.kubeconfig.as_deref()).await?;
        Ok(Process {
            client,
            readiness,
            shutdown,
            health_addr,
        })
    }
}
