//! `ironlb-controller`: assigns external IPs from IPPools to LoadBalancer Services.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ironlb_controller::Args::parse();
    ironlb_controller::run(args).await
}
