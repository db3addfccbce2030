//! The network lab: a bridged LAN of network namespaces for IronLB's end-to-end tests
//! and the `ironlb-lab` demo.
//!
//! # Topology
//!
//! ```text
//!   ilb-<run>-client          ilb-<run>-node1   ilb-<run>-node2   ...
//!     eth0 192.0.2.1            eth0 .11          eth0 .12
//!     2001:db8:1::1             2001:db8:1::11    2001:db8:1::12
//!        │                        │                 │
//!   ─────┴──── ilb-<run>-lan: bridge br0, ports client, node1, node2, ... ────
//! ```
//!
//! * The bridge lives in a namespace of its own (`lan`) because the root namespace's
//!   bridge netfilter hooks may drop forwarded frames, and so nothing leaks to the host.
//! * Every host has one interface, `eth0`, and `lo` up. IPv4 from 192.0.2.0/24 (client
//!   `.1`, node *i* (1-based) `.10+i`), IPv6 from 2001:db8:1::/64 with the same suffix
//!   written as hex digits (`2001:db8:1::1`, `2001:db8:1::11`, `2001:db8:1::12`, ...).
//!   Duplicate address detection is off, so addresses are usable at once.
//! * The bridge has multicast snooping off, so Neighbor Solicitations to solicited-node
//!   groups reach every node whether or not someone sent an MLD report for them.
//! * [`POOL_V4`] and [`POOL_V6`] are free ranges on the LAN for load-balancer pools.
//!
//! # Names
//!
//! An ephemeral lab's namespaces are `ilb-<pid>-<seq>-<role>`: the pid of the process
//! that built it and a per-process counter, so labs in parallel tests (threads of one
//! process, or several processes) never collide. [`Lab`] removes everything on drop;
//! [`sweep_leftovers`] (run once per process by [`Lab::build`]) removes the namespaces of
//! runs whose process is gone. A named lab (`ilb-<name>-<role>`, for `ironlb-lab up`)
//! is never swept; [`destroy_named`] removes it.
//!
//! # VIPs
//!
//! [`Lab::add_vip`] plays kube-proxy's IPVS part: the VIP goes on the node's `lo` (/32 or
//! /128) with `arp_ignore=1` / `arp_announce=2`, so the node accepts traffic for it but
//! its kernel never answers ARP for it. For IPv6 no extra step is needed: Linux answers a
//! Neighbor Solicitation only for addresses on the interface it arrived on (a global
//! address on `lo` is not looked up for `eth0`), so a speaker is the only answerer. The
//! tests `kernel_does_not_answer_arp_for_a_vip_on_lo` and `..._ndp_...` check both.
//!
//! # Root
//!
//! Everything here needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). Tests start with
//! [`require_root_or_skip`].

mod error;
mod exec;
mod lab;
mod names;
mod probe;

pub use error::NetlabError;
pub use exec::{
    bind_tcp_in, bind_udp_in, command_in, in_netns, kill_all_in, pids_in, run_in, run_in_ok, spawn,
    wait_tcp_in, CmdOutput, ProcessGuard,
};
pub use lab::{
    destroy_named, sweep_leftovers, Host, Lab, LabConfig, LabDescription, POOL_V4, POOL_V6,
};
pub use names::{netns_exists, RunId};
pub use probe::{arping, mac_of, ndisc, neighbours, Neighbour, ProbeReplies};

/// Result type of this crate.
pub type Result<T, E = NetlabError> = std::result::Result<T, E>;

/// Environment variable that, set to `1`, lets lab tests skip when not root.
pub const SKIP_ENV: &str = "IRONLB_SKIP_NETNS";

/// Decides whether a network-namespace test can run: `true` as root. When not root it
/// panics with a message saying that root is needed, unless `IRONLB_SKIP_NETNS=1` is
/// set, in which case it prints a note and returns `false` (the test then returns early).
///
/// Every lab test, in every crate, starts with
/// `if !ironlb_netlab::require_root_or_skip() { return; }`.
pub fn require_root_or_skip() -> bool {
    let is_root = nix::unistd::geteuid().is_root();
    match root_decision(is_root, std::env::var(SKIP_ENV).ok().as_deref()) {
        RootDecision::Run => true,
        RootDecision::Skip => {
            eprintln!("note: skipping a network-namespace test: not root and {SKIP_ENV}=1 is set");
            false
        }
        RootDecision::Fail => panic!(
            "this test builds network namespaces and needs root (CAP_NET_ADMIN, \
             CAP_SYS_ADMIN); run it as root (sudo), or set {SKIP_ENV}=1 to skip the lab \
             tests explicitly"
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RootDecision {
    Run,
    Skip,
    Fail,
}

/// Only an explicit `1` skips: an unset or mistyped variable must not hide the tests.
fn root_decision(is_root: bool, skip: Option<&str>) -> RootDecision {
    match (is_root, skip) {
        (true, _) => RootDecision::Run,
        (false, Some("1")) => RootDecision::Skip,
        (false, _) => RootDecision::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_runs_the_lab_tests_whatever_the_skip_variable_says() {
        assert_eq!(root_decision(true, None), RootDecision::Run);
        assert_eq!(root_decision(true, Some("1")), RootDecision::Run);
    }

    #[test]
    fn without_root_only_an_explicit_skip_avoids_failing() {
        assert_eq!(root_decision(false, Some("1")), RootDecision::Skip);
        assert_eq!(root_decision(false, None), RootDecision::Fail);
        assert_eq!(root_decision(false, Some("true")), RootDecision::Fail);
        assert_eq!(root_decision(false, Some("0")), RootDecision::Fail);
    }
}
