//! Shared test support: one place for starting a cluster, running the real IronLB
//! binaries against it, building fixtures and waiting for outcomes. Every end-to-end test
//! and the demo use these instead of their own copies.

mod binaries;
mod cluster;
pub mod fixtures;
mod ports;
mod wait;

pub use binaries::binary_path;
pub use cluster::TestCluster;
pub use ironlb_netlab::{command_in, spawn, ProcessGuard};
pub use ports::free_port;
pub use wait::wait_until;
