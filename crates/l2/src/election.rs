//! Owner election by rendezvous (highest random weight) hashing.
//!
//! Every speaker computes, for each IP, a score per live eligible node and picks the
//! node with the highest score. The answer depends only on the IP and the set of
//! nodes, so all speakers agree without talking; and removing a node only moves the
//! IPs that node owned (every other node's score for an IP is unchanged).
//!
//! # The score, fixed forever
//!
//! `score(ip, node)` is the first 8 bytes, big-endian, of
//! `SHA-256("ironlb-l2-owner-v1" || 0x00 || family || ip octets || node name UTF-8)`
//! where `family` is the byte 4 followed by the 4 octets of an IPv4 address, or the
//! byte 6 followed by the 16 octets of an IPv6 address (IPv4-mapped IPv6 addresses are
//! first turned into IPv4). The fixed-length IP makes the encoding unambiguous.
//! SHA-256 is used because it is standard and identical on every platform and
//! version; changing anything here changes owners during a rolling upgrade, so a
//! new scheme needs a new tag, and the test `score_is_pinned` guards this one.
//! Ties (in practice never) go to the lexicographically smallest node name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

const TAG: &[u8] = b"ironlb-l2-owner-v1\0";

/// The rendezvous score of `node` for `ip` (see the module docs for the exact
/// definition).
pub fn score(ip: IpAddr, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(TAG);
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            h.update([4]);
            h.update(v4.octets());
        }
        IpAddr::V6(v6) => {
            h.update([6]);
            h.update(v6.octets());
        }
    }
    h.update(node.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The node that announces `ip`, among the live eligible nodes; `None` if there are
/// none. The order of `live_eligible_nodes` and duplicates in it do not matter.
pub fn owner<'a>(ip: IpAddr, live_eligible_nodes: &[&'a str]) -> Option<&'a str> {
    live_eligible_nodes
        .iter()
        .map(|node| (score(ip, node), *node))
        // Highest score; on a tie the smaller name, so `max_by` sees it as greater.
        .max_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| nb.cmp(na)))
        .map(|(_, node)| node)
}

/// One IP to place, with the nodes allowed to announce it (selected by an
/// L2Announcement, not excluded, not network-unavailable, and for
/// `externalTrafficPolicy: Local` holding a ready endpoint). Liveness is separate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionInput {
    /// The IP.
    pub ip: IpAddr,
    /// Node names eligible to announce it.
    pub eligible: Vec<String>,
}

impl ElectionInput {
    /// An IP with its eligible nodes.
    pub fn new<S: Into<String>>(ip: IpAddr, eligible: impl IntoIterator<Item = S>) -> Self {
        ElectionInput {
            ip,
            eligible: eligible.into_iter().map(Into::into).collect(),
        }
    }
}

/// The owner of every IP in `inputs`, given which nodes are live.
///
/// Several inputs with the same IP (Services sharing it) are merged by intersecting
/// their eligible nodes: the one node that answers for the IP must be able to serve
/// every Service on it. An IP with no live eligible node maps to `None`, so the glue
/// can say why it is not announced.
pub fn owners<'a>(
    inputs: &'a [ElectionInput],
    is_live: impl Fn(&str) -> bool,
) -> BTreeMap<IpAddr, Option<&'a str>> {
    let mut candidates: BTreeMap<IpAddr, Vec<&'a str>> = BTreeMap::new();
    for input in inputs {
        let ip = input.ip.to_canonical();
        let these: Vec<&'a str> = input.eligible.iter().map(String::as_str).collect();
        candidates
            .entry(ip)
            .and_modify(|sofar| sofar.retain(|n| these.contains(n)))
            .or_insert(these);
    }
    candidates
        .into_iter()
        .map(|(ip, nodes)| {
            let live: Vec<&'a str> = nodes.into_iter().filter(|n| is_live(n)).collect();
            (ip, owner(ip, &live))
        })
        .collect()
}

/// The IPs `node` owns: the entries of [`owners`] that name it.
pub fn owned_by(
    node: &str,
    inputs: &[ElectionInput],
    is_live: impl Fn(&str) -> bool,
) -> crate::OwnedIps {
    owners(inputs, is_live)
        .into_iter()
        .filter(|(_, o)| *o == Some(node))
        .map(|(ip, _)| ip)
        .collect()
}

#[cfg(test)]
mod tests;
