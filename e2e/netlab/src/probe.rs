//! Looking at the LAN from inside a namespace: neighbour tables, MACs, ARP and NDP probes.
//! Parsers are plain functions over command output, tested without root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::exec::{run_in, run_in_ok};
use crate::{NetlabError, Result};

/// One entry of a neighbour table (`ip neigh show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The neighbour's IP.
    pub ip: IpAddr,
    /// Interface the entry is on.
    pub dev: String,
    /// Its link-layer address, lowercase `aa:bb:cc:dd:ee:ff`; `None` while unresolved.
    pub mac: Option<String>,
    /// Kernel states, e.g. `["REACHABLE"]`, `["STALE"]`, `["FAILED"]`.
    pub state: Vec<String>,
}

impl Neighbour {
    /// Whether the entry holds a usable MAC (not INCOMPLETE / FAILED).
    pub fn is_resolved(&self) -> bool {
        self.mac.is_some()
            && !self
                .state
                .iter()
                .any(|s| s == "INCOMPLETE" || s == "FAILED")
    }
}

/// Replies seen by an active probe ([`arping`] / [`ndisc`]): one MAC per reply, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReplies {
    /// The MAC of every reply, lowercase, duplicates kept.
    pub macs: Vec<String>,
}

impl ProbeReplies {
    /// Number of replies.
    pub fn count(&self) -> usize {
        self.macs.len()
    }

    /// Distinct answering MACs, sorted.
    pub fn distinct(&self) -> Vec<String> {
        let mut macs = self.macs.clone();
        macs.sort();
        macs.dedup();
        macs
    }
}

/// The neighbour table of namespace `netns`, both families.
pub fn neighbours(netns: &str) -> Result<Vec<Neighbour>> {
    parse_neighbours(&run_in_ok(netns, "ip", ["-j", "neigh", "show"])?)
}

/// The MAC of interface `iface` in `netns`, lowercase.
pub fn mac_of(netns: &str, iface: &str) -> Result<String> {
    parse_link_mac(&run_in_ok(
        netns,
        "ip",
        ["-j", "link", "show", "dev", iface],
    )?)
}

/// Sends `count` ARP requests for `target` out of `iface` in `netns` (200 ms apart) and
/// collects every reply, so that two answerers show up as two MACs. Uses `arping`
/// (Thomas Habets' version, Debian package `arping`).
pub fn arping(netns: &str, iface: &str, target: Ipv4Addr, count: u32) -> Result<ProbeReplies> {
    let out = run_in(
        netns,
        "arping",
        [
            "-c".to_string(),
            count.to_string(),
            "-W".into(),
            "0.2".into(),
            "-i".into(),
            iface.into(),
            target.to_string(),
        ],
    )?;
    // arping exits 1 when nothing answered: that is a result, not an error.
    if !out.stdout.contains("packets transmitted") {
        return Err(NetlabError::Command {
            command: format!("arping in {netns} for {target}"),
            status: out.status.to_string(),
            stderr: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        });
    }
    Ok(parse_arping(&out.stdout))
}

/// Sends Neighbor Solicitations for `target` out of `iface` in `netns` (3 tries, 300 ms
/// each) and collects every Neighbor Advertisement. Uses `ndisc6` (package `ndisc6`).
pub fn ndisc(netns: &str, iface: &str, target: Ipv6Addr) -> Result<ProbeReplies> {
    let out = run_in(
        netns,
        "ndisc6",
        [
            "-m".to_string(),
            "-n".into(),
            "-r".into(),
            "3".into(),
            "-w".into(),
            "300".into(),
            target.to_string(),
            iface.into(),
        ],
    )?;
    if !out.stdout.contains("Soliciting") {
        return Err(NetlabError::Command {
            command: format!("ndisc6 in {netns} for {target}"),
            status: out.status.to_string(),
            stderr: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        });
    }
    Ok(parse_ndisc(&out.stdout))
}

#[derive(Deserialize)]
struct RawNeighbour {
    dst: String,
    #[serde(default)]
    dev: String,
    #[serde(default)]
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

pub(crate) fn parse_neighbours(json: &str) -> Result<Vec<Neighbour>> {
    let json = if json.trim().is_empty() { "[]" } else { json };
    let raw: Vec<RawNeighbour> = serde_json::from_str(json).map_err(|e| NetlabError::Parse {
        what: "`ip -j neigh show`".into(),
        detail: e.to_string(),
    })?;
    raw.into_iter()
        .map(|n| {
            let ip = n.dst.parse().map_err(|_| NetlabError::Parse {
                what: "`ip -j neigh show`".into(),
                detail: format!("'{}' is not an IP", n.dst),
            })?;
            Ok(Neighbour {
                ip,
                dev: n.dev,
                mac: n.lladdr.map(|m| m.to_ascii_lowercase()),
                state: n.state,
            })
        })
        .collect()
}

pub(crate) fn parse_link_mac(json: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct RawLink {
        address: Option<String>,
    }
    let links: Vec<RawLink> = serde_json::from_str(json).map_err(|e| NetlabError::Parse {
        what: "`ip -j link show`".into(),
        detail: e.to_string(),
    })?;
    links
        .into_iter()
        .next()
        .and_then(|l| l.address)
        .map(|m| m.to_ascii_lowercase())
        .ok_or_else(|| NetlabError::Parse {
            what: "`ip -j link show`".into(),
            detail: "no link address".into(),
        })
}

/// `42 bytes from 62:fe:91:ef:93:93 (192.0.2.11): index=0 time=9.778 usec`
pub(crate) fn parse_arping(stdout: &str) -> ProbeReplies {
    let macs = stdout
        .lines()
        .filter_map(|line| line.split_once(" bytes from ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|mac| mac.to_ascii_lowercase())
        .collect();
    ProbeReplies { macs }
}

/// `Target link-layer address: 62:FE:91:EF:93:93`
pub(crate) fn parse_ndisc(stdout: &str) -> ProbeReplies {
    let macs = stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Target link-layer address:"))
        .map(|mac| mac.trim().to_ascii_lowercase())
        .collect();
    ProbeReplies { macs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arping_output_yields_one_mac_per_reply() {
        let out = "ARPING 192.0.2.100\n\
            42 bytes from 62:fe:91:ef:93:93 (192.0.2.100): index=0 time=9.778 usec\n\
            42 bytes from 0A:00:00:00:00:02 (192.0.2.100): index=1 time=6.612 usec\n\
            Timeout\n\n--- 192.0.2.100 statistics ---\n\
            3 packets transmitted, 2 packets received,  33% unanswered (0 extra)\n";
        let replies = parse_arping(out);
        assert_eq!(replies.macs, ["62:fe:91:ef:93:93", "0a:00:00:00:00:02"]);
        assert_eq!(replies.distinct().len(), 2);
    }

    #[test]
    fn arping_without_answers_yields_nothing() {
        let out = "ARPING 192.0.2.100\nTimeout\nTimeout\n\n--- 192.0.2.100 statistics ---\n\
            2 packets transmitted, 0 packets received, 100% unanswered (0 extra)\n";
        assert_eq!(parse_arping(out).count(), 0);
    }

    #[test]
    fn ndisc6_output_yields_the_target_link_layer_addresses() {
        let out = "Soliciting 2001:db8:1::11 (2001:db8:1::11) on eth0...\n\
            Target link-layer address: 62:FE:91:EF:93:93\n from 2001:db8:1::11\n";
        assert_eq!(parse_ndisc(out).macs, ["62:fe:91:ef:93:93"]);
        let none =
            "Soliciting 2001:db8:1::100 (2001:db8:1::100) on eth0...\nTimed out.\nNo response.\n";
        assert_eq!(parse_ndisc(none).count(), 0);
    }

    #[test]
    fn neighbour_json_is_read_with_states_and_lowercase_macs() {
        let json = r#"[{"dst":"192.0.2.11","dev":"eth0","lladdr":"62:FE:91:EF:93:93","state":["REACHABLE"]},
            {"dst":"2001:db8:1::100","dev":"eth0","state":["FAILED"]}]"#;
        let table = parse_neighbours(json).unwrap();
        assert_eq!(table[0].ip, "192.0.2.11".parse::<IpAddr>().unwrap());
        assert_eq!(table[0].mac.as_deref(), Some("62:fe:91:ef:93:93"));
        assert!(table[0].is_resolved());
        assert_eq!(table[1].mac, None);
        assert!(!table[1].is_resolved());
        assert!(parse_neighbours("").unwrap().is_empty());
    }

    #[test]
    fn link_json_gives_the_mac() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","address":"62:FE:91:EF:93:93"}]"#;
        assert_eq!(parse_link_mac(json).unwrap(), "62:fe:91:ef:93:93");
        assert!(parse_link_mac("[]").is_err());
    }
}
