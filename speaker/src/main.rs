//! `ironlb-speaker`: announces assigned IPs on the LAN with ARP and NDP.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ironlb_speaker::Args::parse();
    ironlb_speaker::run(args).await
}
