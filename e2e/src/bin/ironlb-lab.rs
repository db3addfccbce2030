//! `ironlb-lab`: the IronLB lab.
//!
//! - `demo`: build the network lab, run IronLB in it and show it working, step by step;
//!   exit 0 when every step worked, non-zero naming the step that failed.
//! - `up` / `down`: leave a lab running for your own experiments, then remove it.
//! - `apiserver`: run the embedded Kubernetes API server alone, for kubectl.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ironlb-lab",
    version,
    about = "IronLB's network-namespace lab and embedded API server"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the lab, run IronLB in it and show each step; remove everything at the end.
    Demo,
    /// Build the lab and leave it running; prints (and writes) its JSON description.
    Up {
        #[arg(long, default_value = "/tmp/ironlb-lab.json")]
        state: PathBuf,
    },
    /// Remove the lab `up` built.
    Down {
        #[arg(long, default_value = "/tmp/ironlb-lab.json")]
        state: PathBuf,
    },
    /// (internal) the process that owns a lab started by `up`.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        state: PathBuf,
    },
    /// Run the embedded Kubernetes API server until killed.
    Apiserver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Where to write an admin kubeconfig for it.
        #[arg(long, default_value = "/tmp/ironlb-lab.kubeconfig")]
        kubeconfig: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let needs_root = matches!(
        args.command,
        Command::Demo | Command::Up { .. } | Command::Down { .. } | Command::Serve { .. }
    );
    if needs_root && !nix_is_root() {
        eprintln!(
            "ironlb-lab: the lab creates network namespaces and raw sockets: run it as root (sudo)"
        );
        std::process::exit(2);
    }
    // The demo prints its own story; library logs at info would drown it.
    let quiet = matches!(args.command, Command::Demo | Command::Serve { .. });
    if quiet && std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    ironlb_runtime::logging::init(ironlb_runtime::logging::LogFormat::Text);
    let repo = repo_root();
    match args.command {
        Command::Up { state } => ironlb_e2e::lab_up::up(&std::env::current_exe()?, &state),
        Command::Down { state } => ironlb_e2e::lab_up::down(&state),
        command => tokio::runtime::Runtime::new()?.block_on(async move {
            match command {
                Command::Demo => ironlb_e2e::demo::run(&repo).await,
                Command::Serve { state } => ironlb_e2e::lab_up::serve(&repo, &state).await,
                Command::Apiserver { listen, kubeconfig } => {
                    ironlb_apiserver::run_standalone(listen, &kubeconfig).await
                }
                Command::Up { .. } | Command::Down { .. } => unreachable!("handled above"),
            }
        }),
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The repository root (for the chart's CRDs and kubectl in .tools/bin): the current
/// directory when it holds the chart, else the source tree this binary was built from.
fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join("charts/ironlb").exists() {
        return cwd;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or(cwd)
}
