//! `ironlb-gateway`: routes Ingress hosts and paths to Service endpoints.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ironlb_gateway::Args::parse();
    ironlb_gateway::run(args).await
}
