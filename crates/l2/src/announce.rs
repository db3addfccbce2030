//! Announcements: gratuitous ARP, unsolicited Neighbor Advertisements, and when to
//! send them.
//!
//! The VIP is on no interface of the node, so nothing else announces it: on takeover
//! the new owner must tell the LAN at once (and again, in case a packet is lost), and
//! keep telling it now and then, because a switch that ages the MAC out of its table
//! floods or black-holes the VIP's traffic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::frame::{encode_arp, encode_nd};
use crate::ipv6::{solicited_node_multicast, ALL_NODES};
use crate::{
    ArpOp, ArpPacket, InterfaceInfo, MacAddr, NaFlags, NdMessage, NdPacket, NeighborAdvertisement,
    OwnedIps,
};

/// A broadcast gratuitous ARP for `ip` claiming the interface's MAC.
///
/// Both forms have sender and target protocol address `ip`. The request form has a
/// zero target hardware address (RFC 5227 2.3 "ARP Announcement"); the reply form
/// repeats the sender's MAC there (RFC 5944 4.6), which is also what Linux requires
/// to treat a reply as gratuitous. Some hosts only heed one form; send both.
pub fn gratuitous_arp(iface: &InterfaceInfo, ip: Ipv4Addr, op: ArpOp) -> Vec<u8> {
    let arp = ArpPacket {
        op,
        sender_mac: iface.mac,
        sender_ip: ip,
        target_mac: match op {
            ArpOp::Request => MacAddr::ZERO,
            ArpOp::Reply => iface.mac,
        },
        target_ip: ip,
    };
    encode_arp(&iface.ethernet_to(MacAddr::BROADCAST), &arp)
}

/// Both gratuitous ARP forms for `ip`: request first, then reply.
pub fn gratuitous_arps(iface: &InterfaceInfo, ip: Ipv4Addr) -> [Vec<u8>; 2] {
    [
        gratuitous_arp(iface, ip, ArpOp::Request),
        gratuitous_arp(iface, ip, ArpOp::Reply),
    ]
}

/// An unsolicited Neighbor Advertisement for `ip` to all-nodes (ff02::1, Ethernet
/// 33:33:00:00:00:01) with the override flag, so neighbours replace a cached MAC
/// (RFC 4861 7.2.6).
pub fn unsolicited_na(iface: &InterfaceInfo, ip: Ipv6Addr) -> Vec<u8> {
    let na = NdPacket {
        src: iface.na_source(ip),
        dst: ALL_NODES,
        message: NdMessage::Advertisement(NeighborAdvertisement {
            flags: NaFlags {
                router: false,
                solicited: false,
                override_flag: true,
            },
            target: ip,
            target_ll: Some(iface.mac),
        }),
    };
    encode_nd(&iface.ethernet_to(MacAddr::IPV6_ALL_NODES), &na)
}

/// The frames that announce `ip`: both gratuitous ARP forms for IPv4, one unsolicited
/// NA for IPv6. IPv4-mapped IPv6 addresses are announced as IPv4.
pub fn announcements(iface: &InterfaceInfo, ip: IpAddr) -> Vec<Vec<u8>> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => gratuitous_arps(iface, v4).into(),
        IpAddr::V6(v6) => vec![unsolicited_na(iface, v6)],
    }
}

/// The Ethernet group of `ip`'s solicited-node multicast address (33:33:ff:XX:XX:XX).
/// The group itself is [`solicited_node_multicast`].
pub fn solicited_node_mac(ip: Ipv6Addr) -> MacAddr {
    MacAddr::ipv6_multicast(solicited_node_multicast(ip))
}

/// When to announce an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncePolicy {
    /// Repeats after the immediate announcement on gaining an IP (or on the link coming
    /// back), as offsets from that moment, ascending. A repeat covers a lost first
    /// packet; MetalLB repeats for a few seconds too (`announcer.go`).
    pub burst: Vec<Duration>,
    /// After the burst, announce again this long after the previous announcement.
    /// `None` disables refreshing. Keep it well under switch MAC ageing (commonly 300 s).
    pub refresh: Option<Duration>,
}

impl Default for AnnouncePolicy {
    /// Repeats at 0.2 s, 1 s, 2 s and 5 s, then every 60 s.
    fn default() -> Self {
        AnnouncePolicy {
            burst: vec![
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            refresh: Some(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// When the current burst started.
    since: Instant,
    /// Index into `burst` of the next repeat; `burst.len()` once the burst is over.
    step: usize,
    /// When to announce next; `None` once done (burst over, refresh off).
    next: Option<Instant>,
}

/// Which owned IPs are due for an announcement, given the time. Pure: the caller
/// passes `now` and sends [`announcements`] for what [`Announcer::poll`] returns.
///
/// If polled late, an IP is announced once and its schedule skips the repeats that
/// are already past, so a stalled thread never causes a catch-up storm.
#[derive(Debug, Clone)]
pub struct Announcer {
    policy: AnnouncePolicy,
    ips: BTreeMap<IpAddr, Schedule>,
}

impl Announcer {
    /// No IPs yet.
    pub fn new(policy: AnnouncePolicy) -> Announcer {
        Announcer {
            policy,
            ips: BTreeMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &AnnouncePolicy {
        &self.policy
    }

    /// Starts announcing `ip`: due at once, then the burst. An IP already held keeps
    /// its schedule (re-gaining what we hold is not a takeover).
    pub fn gain(&mut self, ip: IpAddr, now: Instant) {
        self.ips.entry(ip.to_canonical()).or_insert(Schedule {
            since: now,
            step: 0,
            next: Some(now),
        });
    }

    /// Stops announcing `ip`.
    pub fn lose(&mut self, ip: IpAddr) {
        self.ips.remove(&ip.to_canonical());
    }

    /// Makes the held IPs exactly `owned`: gains the new ones, loses the rest.
    pub fn sync(&mut self, owned: &OwnedIps, now: Instant) {
        self.ips.retain(|ip, _| owned.contains(*ip));
        for ip in owned.iter() {
            self.gain(ip, now);
        }
    }

    /// Starts a fresh burst for every held IP: the link came back up, and whatever
    /// the LAN learnt while it was down may be wrong.
    pub fn restart_all(&mut self, now: Instant) {
        for schedule in self.ips.values_mut() {
            *schedule = Schedule {
                since: now,
                step: 0,
                next: Some(now),
            };
        }
    }

    /// The IPs due at `now` (to announce now), advancing their schedules.
    pub fn poll(&mut self, now: Instant) -> Vec<IpAddr> {
        let mut due = Vec::new();
        for (ip, s) in self.ips.iter_mut() {
            if s.next.is_some_and(|t| t <= now) {
                due.push(*ip);
                while s.step < self.policy.burst.len() && s.since + self.policy.burst[s.step] <= now
                {
                    s.step += 1;
                }
                s.next = match self.policy.burst.get(s.step) {
                    Some(offset) => Some(s.since + *offset),
                    None => self.policy.refresh.map(|every| now + every),
                };
            }
        }
        due
    }

    /// The earliest time something is due, to sleep until; `None` if nothing ever is.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ips.values().filter_map(|s| s.next).min()
    }

    /// The IPs held, in address order.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.keys().copied()
    }
}

#[cfg(test)]
mod tests;
