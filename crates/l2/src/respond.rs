//! The responder decision: a received frame in, the reply to send or the reason not to.
//!
//! Like MetalLB's `internal/layer2/arp.go` / `ndp.go`, every frame that gets no answer
//! gets a [`DropReason`], so the glue can count them and tests can say exactly why a
//! frame was ignored.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frame::{decode, encode_arp, encode_nd, Packet, Unsupported};
use crate::ipv6::{solicited_node_multicast, ALL_NODES};
use crate::{
    ArpOp, ArpPacket, Error, Ethernet, MacAddr, NaFlags, NdMessage, NdPacket,
    NeighborAdvertisement, NeighborSolicitation,
};

/// What the responder knows about the interface a frame arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceInfo {
    /// The interface's MAC: replies claim it, frames from it are our own.
    pub mac: MacAddr,
    /// The interface's IPv6 link-local address, used as the source of Neighbor
    /// Advertisements (as MetalLB and most hosts do). Without one, the advertised VIP
    /// itself is the source, which RFC 4861 also allows (an address of the interface).
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// The VLAN the VIPs live on when the socket sees tagged frames (a trunk port);
    /// `None` for the usual case of untagged frames on the VIP's own interface. Frames
    /// on any other VLAN are dropped, and replies carry this tag.
    pub vlan: Option<u16>,
}

impl InterfaceInfo {
    /// An untagged interface with this MAC and no IPv6 link-local address.
    pub fn new(mac: MacAddr) -> InterfaceInfo {
        InterfaceInfo {
            mac,
            ipv6_link_local: None,
            vlan: None,
        }
    }

    /// The same interface with an IPv6 link-local source for advertisements.
    pub fn with_link_local(mut self, ip: Ipv6Addr) -> InterfaceInfo {
        self.ipv6_link_local = Some(ip);
        self
    }

    /// The same interface, seeing (and replying with) tag `vlan`.
    pub fn with_vlan(mut self, vlan: u16) -> InterfaceInfo {
        self.vlan = Some(vlan & 0x0fff);
        self
    }

    pub(crate) fn ethernet_to(&self, dst: MacAddr) -> Ethernet {
        Ethernet {
            dst,
            src: self.mac,
            vlan: self.vlan,
        }
    }

    pub(crate) fn na_source(&self, target: Ipv6Addr) -> Ipv6Addr {
        self.ipv6_link_local.unwrap_or(target)
    }
}

/// The IPs this node owns (won the election for) on one interface.
///
/// IPv4-mapped IPv6 addresses are stored as IPv4, so `::ffff:192.0.2.1` and
/// `192.0.2.1` are the same entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedIps(BTreeSet<IpAddr>);

impl OwnedIps {
    /// No IPs.
    pub fn new() -> OwnedIps {
        OwnedIps::default()
    }

    /// Adds an IP; true if it was not there.
    pub fn insert(&mut self, ip: IpAddr) -> bool {
        self.0.insert(ip.to_canonical())
    }

    /// Removes an IP; true if it was there.
    pub fn remove(&mut self, ip: IpAddr) -> bool {
        self.0.remove(&ip.to_canonical())
    }

    /// Whether this node answers for `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The IPs, v4 before v6, each in address order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.0.iter().copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The solicited-node multicast groups of the IPv6 IPs: the groups the interface
    /// must have joined, or solicitations for them never arrive. Several IPs may share
    /// one group.
    pub fn solicited_node_groups(&self) -> BTreeSet<Ipv6Addr> {
        self.iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(solicited_node_multicast(v6)),
                IpAddr::V4(_) => None,
            })
            .collect()
    }

    /// What changes going from `self` to `next`: IPs to start announcing (send the
    /// gratuitous burst), IPs to stop answering, and multicast groups to join and leave.
    pub fn diff(&self, next: &OwnedIps) -> OwnedIpsChange {
        let (old_groups, new_groups) = (self.solicited_node_groups(), next.solicited_node_groups());
        OwnedIpsChange {
            gained: next.0.difference(&self.0).copied().collect(),
            lost: self.0.difference(&next.0).copied().collect(),
            join: new_groups.difference(&old_groups).copied().collect(),
            leave: old_groups.difference(&new_groups).copied().collect(),
        }
    }
}

impl FromIterator<IpAddr> for OwnedIps {
    fn from_iter<T: IntoIterator<Item = IpAddr>>(iter: T) -> Self {
        OwnedIps(iter.into_iter().map(|ip| ip.to_canonical()).collect())
    }
}

impl Extend<IpAddr> for OwnedIps {
    fn extend<T: IntoIterator<Item = IpAddr>>(&mut self, iter: T) {
        self.0.extend(iter.into_iter().map(|ip| ip.to_canonical()));
    }
}

/// The difference between two [`OwnedIps`], see [`OwnedIps::diff`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedIpsChange {
    /// Newly owned: announce now and over the next seconds.
    pub gained: Vec<IpAddr>,
    /// No longer owned: stop answering at once.
    pub lost: Vec<IpAddr>,
    /// Solicited-node groups to join.
    pub join: Vec<Ipv6Addr>,
    /// Solicited-node groups no owned IP needs any more.
    pub leave: Vec<Ipv6Addr>,
}

impl OwnedIpsChange {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// A frame to send back, with what it says for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The Ethernet frame, ready for the raw socket.
    pub frame: Vec<u8>,
    /// The owned IP the reply claims.
    pub ip: IpAddr,
    /// The Ethernet destination.
    pub to: MacAddr,
    /// ARP reply or Neighbor Advertisement.
    pub kind: ReplyKind,
}

/// What kind of reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ARP is-at, unicast to the requester.
    ArpReply,
    /// Neighbor Advertisement; `solicited` is false for the answer to a Duplicate
    /// Address Detection probe, which goes to all-nodes.
    NeighborAdvertisement {
        /// The S flag.
        solicited: bool,
    },
}

/// Why a frame got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// ARP or ND that breaks the rules (truncated, bad checksum, hop limit, ...).
    Malformed(Error),
    /// Not ARP or NS/NA at all.
    NotArpOrNd(Unsupported),
    /// Tagged with a VLAN other than the interface's (or tagged when the interface is
    /// not, or the reverse).
    OtherVlan(Option<u16>),
    /// Sent by this interface: packet sockets also see outgoing frames, including our
    /// own gratuitous ARPs.
    FromOurselves,
    /// The sender's hardware or IPv6 address is multicast/broadcast: nothing to reply to.
    InvalidSender,
    /// Someone else claims an IP we own: an ARP packet with it as sender address, or a
    /// Neighbor Advertisement for it with another MAC. Expected briefly during
    /// failover; lasting, it means two announcers (or an address conflict).
    Conflict {
        /// The owned IP.
        ip: IpAddr,
        /// The other claimant.
        mac: MacAddr,
    },
    /// An ARP reply or Neighbor Advertisement (that is not a conflict).
    NotARequest,
    /// A gratuitous ARP (announcement) for an IP we do not own: never answered.
    Gratuitous(Ipv4Addr),
    /// Neither to us nor to the group the request belongs to (e.g. unicast to another
    /// MAC, or an NS sent to another solicited-node group).
    NotAddressedToUs,
    /// A request for an IP this node does not own on this interface.
    NotOwned(IpAddr),
}

impl DropReason {
    /// A short stable label, for a metric's `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Malformed(_) => "malformed",
            DropReason::NotArpOrNd(_) => "not_arp_or_nd",
            DropReason::OtherVlan(_) => "other_vlan",
            DropReason::FromOurselves => "from_ourselves",
            DropReason::InvalidSender => "invalid_sender",
            DropReason::Conflict { .. } => "conflict",
            DropReason::NotARequest => "not_a_request",
            DropReason::Gratuitous(_) => "gratuitous",
            DropReason::NotAddressedToUs => "not_addressed_to_us",
            DropReason::NotOwned(_) => "not_owned",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(e) => write!(f, "malformed: {e}"),
            DropReason::NotArpOrNd(u) => write!(f, "not ARP or NS/NA: {u:?}"),
            DropReason::OtherVlan(Some(v)) => write!(f, "tagged with VLAN {v}"),
            DropReason::OtherVlan(None) => f.write_str("untagged on a VLAN interface"),
            DropReason::FromOurselves => f.write_str("sent by this interface"),
            DropReason::InvalidSender => f.write_str("multicast or broadcast sender"),
            DropReason::Conflict { ip, mac } => write!(f, "{mac} also claims owned {ip}"),
            DropReason::NotARequest => f.write_str("a reply or advertisement, not a request"),
            DropReason::Gratuitous(ip) => write!(f, "gratuitous ARP for {ip}"),
            DropReason::NotAddressedToUs => f.write_str("not addressed to this interface"),
            DropReason::NotOwned(ip) => write!(f, "{ip} is not owned here"),
        }
    }
}

/// Decides what to do with one received frame.
///
/// Answers an ARP request (RFC 826: unicast is-at to the requester, probes from
/// 0.0.0.0 included, which defends the address per RFC 5227) or a Neighbor
/// Solicitation (RFC 4861 7.2.4: solicited + override NA to the soliciter; a Duplicate
/// Address Detection probe from :: gets an NA to all-nodes without the solicited flag)
/// when the target is in `owned`. Never panics, whatever the bytes.
pub fn respond(frame: &[u8], iface: &InterfaceInfo, owned: &OwnedIps) -> Result<Reply, DropReason> {
    let frame = decode(frame).map_err(DropReason::Malformed)?;
    let eth = frame.ethernet;
    if let Packet::Unsupported(what) = frame.packet {
        return Err(DropReason::NotArpOrNd(what));
    }
    if eth.vlan != iface.vlan {
        return Err(DropReason::OtherVlan(eth.vlan));
    }
    if eth.src == iface.mac {
        return Err(DropReason::FromOurselves);
    }
    if eth.src.is_multicast() {
        return Err(DropReason::InvalidSender);
    }
    match frame.packet {
        Packet::Arp(arp) => respond_arp(&eth, &arp, iface, owned),
        Packet::Nd(nd) => respond_nd(&eth, &nd, iface, owned),
        Packet::Unsupported(what) => Err(DropReason::NotArpOrNd(what)),
    }
}

fn respond_arp(
    eth: &Ethernet,
    arp: &ArpPacket,
    iface: &InterfaceInfo,
    owned: &OwnedIps,
) -> Result<Reply, DropReason> {
    if arp.sender_mac == iface.mac {
        return Err(DropReason::FromOurselves);
    }
    if arp.sender_mac.is_multicast() {
        return Err(DropReason::InvalidSender);
    }
    if owned.contains(arp.sender_ip.into()) {
        return Err(DropReason::Conflict {
            ip: arp.sender_ip.into(),
            mac: arp.sender_mac,
        });
    }
    if arp.op != ArpOp::Request {
        return Err(DropReason::NotARequest);
    }
    if arp.is_gratuitous() {
        return Err(DropReason::Gratuitous(arp.target_ip));
    }
    if !eth.dst.is_broadcast() && eth.dst != iface.mac {
        return Err(DropReason::NotAddressedToUs);
    }
    let ip = IpAddr::V4(arp.target_ip);
    if !owned.contains(ip) {
        return Err(DropReason::NotOwned(ip));
    }
    let reply = ArpPacket {
        op: ArpOp::Reply,
        sender_mac: iface.mac,
        sender_ip: arp.target_ip,
        target_mac: arp.sender_mac,
        target_ip: arp.sender_ip,
    };
    Ok(Reply {
        frame: encode_arp(&iface.ethernet_to(arp.sender_mac), &reply),
        ip,
        to: arp.sender_mac,
        kind: ReplyKind::ArpReply,
    })
}

fn respond_nd(
    eth: &Ethernet,
    nd: &NdPacket,
    iface: &InterfaceInfo,
    owned: &OwnedIps,
) -> Result<Reply, DropReason> {
    let ns = match nd.message {
        NdMessage::Solicitation(ns) => ns,
        NdMessage::Advertisement(na) => {
            let mac = na.target_ll.unwrap_or(eth.src);
            return Err(if owned.contains(na.target.into()) && mac != iface.mac {
                DropReason::Conflict {
                    ip: na.target.into(),
                    mac,
                }
            } else {
                DropReason::NotARequest
            });
        }
    };
    if ns.source_ll == Some(iface.mac) {
        return Err(DropReason::FromOurselves);
    }
    if nd.src.is_multicast() || ns.source_ll.is_some_and(|m| m.is_multicast()) {
        return Err(DropReason::InvalidSender);
    }
    if !addressed_to_us(eth, nd, &ns, iface) {
        return Err(DropReason::NotAddressedToUs);
    }
    let ip = IpAddr::V6(ns.target);
    if !owned.contains(ip) {
        return Err(DropReason::NotOwned(ip));
    }
    let dad = nd.src.is_unspecified();
    let (dst_ip, dst_mac) = if dad {
        (ALL_NODES, MacAddr::IPV6_ALL_NODES)
    } else {
        // A unicast NS may omit the source link-layer option (RFC 4861 4.3); the frame's
        // source is then where the soliciter is.
        (nd.src, ns.source_ll.unwrap_or(eth.src))
    };
    let na = NdPacket {
        src: iface.na_source(ns.target),
        dst: dst_ip,
        message: NdMessage::Advertisement(NeighborAdvertisement {
            flags: NaFlags {
                router: false,
                solicited: !dad,
                override_flag: true,
            },
            target: ns.target,
            target_ll: Some(iface.mac),
        }),
    };
    Ok(Reply {
        frame: encode_nd(&iface.ethernet_to(dst_mac), &na),
        ip,
        to: dst_mac,
        kind: ReplyKind::NeighborAdvertisement { solicited: !dad },
    })
}

/// An NS is for us when the IPv6 destination is the target's solicited-node group, the
/// target itself or our link-local address, and the Ethernet destination is our MAC or
/// the group MAC of that IPv6 destination.
fn addressed_to_us(
    eth: &Ethernet,
    nd: &NdPacket,
    ns: &NeighborSolicitation,
    iface: &InterfaceInfo,
) -> bool {
    let ip_ok = nd.dst == solicited_node_multicast(ns.target)
        || nd.dst == ns.target
        || Some(nd.dst) == iface.ipv6_link_local;
    let mac_ok = eth.dst == iface.mac
        || (nd.dst.is_multicast() && eth.dst == MacAddr::ipv6_multicast(nd.dst));
    ip_ok && mac_ok
}

#[cfg(test)]
mod tests;
