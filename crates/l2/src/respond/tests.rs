use super::*;
use crate::frame::{decode, encode_arp, encode_nd};
use crate::testdata::{ARP_REPLY_FRAME, ARP_REQUEST_FRAME, NA_FRAME, NS_FRAME};
use crate::Frame;

const NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);
const CLIENT_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x0a);
const OTHER_NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x02);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The node's untagged interface, without a link-local address.
fn node() -> InterfaceInfo {
    InterfaceInfo::new(NODE_MAC)
}

fn owning(ips: &[&str]) -> OwnedIps {
    ips.iter().map(|s| ip(s)).collect()
}

/// The node owns 192.0.2.1 and 2001:db8::1.
fn owned() -> OwnedIps {
    owning(&["192.0.2.1", "2001:db8::1"])
}

// === ARP fixtures ===

/// An ARP frame under construction, starting as a broadcast who-has from the client.
#[derive(Clone, Copy)]
struct ArpFrame {
    eth: Ethernet,
    arp: ArpPacket,
}

fn client_asks_who_has(target: &str) -> ArpFrame {
    ArpFrame {
        eth: Ethernet {
            dst: MacAddr::BROADCAST,
            src: CLIENT_MAC,
            vlan: None,
        },
        arp: ArpPacket {
            op: ArpOp::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: v4("192.0.2.10"),
            target_mac: MacAddr::ZERO,
            target_ip: v4(target),
        },
    }
}

impl ArpFrame {
    fn sent_by(mut self, mac: MacAddr, ip: &str) -> Self {
        self.eth.src = mac;
        self.arp.sender_mac = mac;
        self.arp.sender_ip = v4(ip);
        self
    }
    fn as_reply(mut self) -> Self {
        self.arp.op = ArpOp::Reply;
        self
    }
    fn unicast_to(mut self, mac: MacAddr) -> Self {
        self.eth.dst = mac;
        self
    }
    fn tagged(mut self, vlan: u16) -> Self {
        self.eth.vlan = Some(vlan);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        encode_arp(&self.eth, &self.arp)
    }
}

fn respond_to(frame: ArpFrame) -> Result<Reply, DropReason> {
    respond(&frame.bytes(), &node(), &owned())
}

#[test]
fn an_arp_request_for_an_owned_ip_gets_the_golden_reply() {
    assert_eq!(client_asks_who_has("192.0.2.1").bytes(), ARP_REQUEST_FRAME);
    let reply = respond(&ARP_REQUEST_FRAME, &node(), &owned()).unwrap();
    assert_eq!(reply.frame, ARP_REPLY_FRAME);
    assert_eq!(reply.ip, ip("192.0.2.1"));
    assert_eq!(reply.to, CLIENT_MAC);
    assert_eq!(reply.kind, ReplyKind::ArpReply);
}

#[test]
fn an_arp_request_for_an_ip_not_owned_is_dropped() {
    assert_eq!(
        respond_to(client_asks_who_has("192.0.2.2")),
        Err(DropReason::NotOwned(ip("192.0.2.2")))
    );
}

#[test]
fn an_rfc_5227_probe_for_an_owned_ip_is_answered_to_the_prober() {
    let probe = client_asks_who_has("192.0.2.1").sent_by(CLIENT_MAC, "0.0.0.0");
    let reply = respond_to(probe).unwrap();
    let Frame { ethernet, packet } = decode(&reply.frame).unwrap();
    assert_eq!(ethernet.dst, CLIENT_MAC);
    assert_eq!(
        packet,
        Packet::Arp(ArpPacket {
            op: ArpOp::Reply,
            sender_mac: NODE_MAC,
            sender_ip: v4("192.0.2.1"),
            target_mac: CLIENT_MAC,
            target_ip: Ipv4Addr::UNSPECIFIED,
        })
    );
}

#[test]
fn arp_replies_are_not_requests() {
    assert_eq!(
        respond_to(client_asks_who_has("192.0.2.1").as_reply()),
        Err(DropReason::NotARequest)
    );
}

#[test]
fn our_own_frames_are_ignored() {
    // Our own gratuitous ARP, seen again by the packet socket.
    let own = crate::gratuitous_arp(&node(), v4("192.0.2.1"), ArpOp::Request);
    assert_eq!(
        respond(&own, &node(), &owned()),
        Err(DropReason::FromOurselves)
    );
    // Our MAC as ARP sender behind some other Ethernet source.
    let mut spoofed = client_asks_who_has("192.0.2.1");
    spoofed.arp.sender_mac = NODE_MAC;
    assert_eq!(respond_to(spoofed), Err(DropReason::FromOurselves));
}

#[test]
fn a_gratuitous_arp_for_someone_elses_ip_is_not_answered() {
    let garp = client_asks_who_has("192.0.2.10");
    assert_eq!(
        respond_to(garp),
        Err(DropReason::Gratuitous(v4("192.0.2.10")))
    );
}

#[test]
fn another_node_claiming_an_owned_ip_is_a_conflict() {
    let garp = client_asks_who_has("192.0.2.1").sent_by(OTHER_NODE_MAC, "192.0.2.1");
    let conflict = Err(DropReason::Conflict {
        ip: ip("192.0.2.1"),
        mac: OTHER_NODE_MAC,
    });
    assert_eq!(respond_to(garp), conflict);
    assert_eq!(respond_to(garp.as_reply()), conflict);
}

#[test]
fn a_unicast_request_is_answered_only_when_sent_to_our_mac() {
    assert!(respond_to(client_asks_who_has("192.0.2.1").unicast_to(NODE_MAC)).is_ok());
    assert_eq!(
        respond_to(client_asks_who_has("192.0.2.1").unicast_to(OTHER_NODE_MAC)),
        Err(DropReason::NotAddressedToUs)
    );
}

#[test]
fn vlan_tags_must_match_the_interface_and_replies_carry_them() {
    let tagged = client_asks_who_has("192.0.2.1").tagged(100);
    assert_eq!(respond_to(tagged), Err(DropReason::OtherVlan(Some(100))));
    let on_vlan_100 = node().with_vlan(100);
    assert_eq!(
        respond(
            &client_asks_who_has("192.0.2.1").bytes(),
            &on_vlan_100,
            &owned()
        ),
        Err(DropReason::OtherVlan(None))
    );
    let reply = respond(&tagged.bytes(), &on_vlan_100, &owned()).unwrap();
    assert_eq!(decode(&reply.frame).unwrap().ethernet.vlan, Some(100));
}

#[test]
fn a_multicast_sender_is_invalid() {
    let mut bad = client_asks_who_has("192.0.2.1");
    bad.arp.sender_mac = MacAddr::BROADCAST;
    assert_eq!(respond_to(bad), Err(DropReason::InvalidSender));
    let bad = client_asks_who_has("192.0.2.1").sent_by(MacAddr::IPV6_ALL_NODES, "192.0.2.10");
    assert_eq!(respond_to(bad), Err(DropReason::InvalidSender));
}

#[test]
fn malformed_and_foreign_frames_are_classified() {
    assert!(matches!(
        respond(&ARP_REQUEST_FRAME[..30], &node(), &owned()),
        Err(DropReason::Malformed(Error::Truncated { .. }))
    ));
    let mut ipv4 = ARP_REQUEST_FRAME;
    ipv4[13] = 0x00; // ethertype 0x0800
    assert_eq!(
        respond(&ipv4, &node(), &owned()),
        Err(DropReason::NotArpOrNd(Unsupported::EtherType(0x0800)))
    );
    assert_eq!(
        respond(&ipv4, &node(), &owned()).unwrap_err().label(),
        "not_arp_or_nd"
    );
}

// === Neighbor Discovery fixtures ===

/// A Neighbor Solicitation under construction, starting as the client's multicast
/// solicitation for `target`.
#[derive(Clone, Copy)]
struct NsFrame {
    eth: Ethernet,
    nd: NdPacket,
}

fn client_solicits(target: &str) -> NsFrame {
    let target = v6(target);
    let group = solicited_node_multicast(target);
    NsFrame {
        eth: Ethernet {
            dst: MacAddr::ipv6_multicast(group),
            src: CLIENT_MAC,
            vlan: None,
        },
        nd: NdPacket {
            src: v6("2001:db8::10"),
            dst: group,
            message: NdMessage::Solicitation(NeighborSolicitation {
                target,
                source_ll: Some(CLIENT_MAC),
            }),
        },
    }
}

impl NsFrame {
    fn ns(&mut self) -> &mut NeighborSolicitation {
        match &mut self.nd.message {
            NdMessage::Solicitation(ns) => ns,
            NdMessage::Advertisement(_) => unreachable!(),
        }
    }
    /// Duplicate Address Detection: from ::, no source link-layer option.
    fn as_dad(mut self) -> Self {
        self.nd.src = Ipv6Addr::UNSPECIFIED;
        self.ns().source_ll = None;
        self
    }
    /// A unicast NS (neighbour unreachability detection) to the target, without the
    /// source link-layer option.
    fn unicast_to(mut self, mac: MacAddr) -> Self {
        self.eth.dst = mac;
        self.nd.dst = self.ns().target;
        self.ns().source_ll = None;
        self
    }
    fn bytes(&self) -> Vec<u8> {
        encode_nd(&self.eth, &self.nd)
    }
}

fn advertisement(frame: &[u8]) -> (Ethernet, NdPacket, NeighborAdvertisement) {
    let Frame { ethernet, packet } = decode(frame).unwrap();
    match packet {
        Packet::Nd(
            nd @ NdPacket {
                message: NdMessage::Advertisement(na),
                ..
            },
        ) => (ethernet, nd, na),
        other => panic!("not an NA: {other:?}"),
    }
}

#[test]
fn a_solicitation_for_an_owned_ip_gets_the_golden_advertisement() {
    assert_eq!(client_solicits("2001:db8::1").bytes(), NS_FRAME);
    let reply = respond(&NS_FRAME, &node(), &owned()).unwrap();
    assert_eq!(reply.frame, NA_FRAME);
    assert_eq!(reply.to, CLIENT_MAC);
    assert_eq!(
        reply.kind,
        ReplyKind::NeighborAdvertisement { solicited: true }
    );
}

#[test]
fn advertisements_come_from_the_link_local_address_when_known() {
    let iface = node().with_link_local(v6("fe80::1"));
    let reply = respond(&NS_FRAME, &iface, &owned()).unwrap();
    let (_, nd, na) = advertisement(&reply.frame);
    assert_eq!(nd.src, v6("fe80::1"));
    assert_eq!(nd.dst, v6("2001:db8::10"));
    assert_eq!(na.target, v6("2001:db8::1"));
    assert_eq!(na.target_ll, Some(NODE_MAC));
    assert!(na.flags.solicited && na.flags.override_flag && !na.flags.router);
}

#[test]
fn a_dad_probe_for_an_owned_ip_is_answered_to_all_nodes_unsolicited() {
    let reply = respond(
        &client_solicits("2001:db8::1").as_dad().bytes(),
        &node(),
        &owned(),
    )
    .unwrap();
    let (eth, nd, na) = advertisement(&reply.frame);
    assert_eq!(eth.dst, MacAddr::IPV6_ALL_NODES);
    assert_eq!(nd.dst, crate::ipv6::ALL_NODES);
    assert!(!na.flags.solicited && na.flags.override_flag);
    assert_eq!(
        reply.kind,
        ReplyKind::NeighborAdvertisement { solicited: false }
    );
}

#[test]
fn a_unicast_solicitation_without_source_option_is_answered_to_the_frame_source() {
    let ns = client_solicits("2001:db8::1").unicast_to(NODE_MAC);
    let reply = respond(&ns.bytes(), &node(), &owned()).unwrap();
    let (eth, nd, _) = advertisement(&reply.frame);
    assert_eq!(eth.dst, CLIENT_MAC);
    assert_eq!(nd.dst, v6("2001:db8::10"));
}

#[test]
fn a_solicitation_for_an_ip_not_owned_is_dropped() {
    assert_eq!(
        respond(&client_solicits("2001:db8::2").bytes(), &node(), &owned()),
        Err(DropReason::NotOwned(ip("2001:db8::2")))
    );
}

#[test]
fn a_solicitation_sent_to_another_group_or_mac_is_not_for_us() {
    let mut wrong_group = client_solicits("2001:db8::1");
    wrong_group.nd.dst = v6("ff02::1:ff00:2");
    wrong_group.eth.dst = MacAddr::ipv6_multicast(wrong_group.nd.dst);
    assert_eq!(
        respond(&wrong_group.bytes(), &node(), &owned()),
        Err(DropReason::NotAddressedToUs)
    );
    let wrong_mac = client_solicits("2001:db8::1").unicast_to(OTHER_NODE_MAC);
    assert_eq!(
        respond(&wrong_mac.bytes(), &node(), &owned()),
        Err(DropReason::NotAddressedToUs)
    );
}

#[test]
fn advertisements_are_not_requests_unless_they_conflict() {
    // Our own reply, seen by someone else's speaker that does not own the IP.
    assert_eq!(
        respond(
            &NA_FRAME,
            &InterfaceInfo::new(OTHER_NODE_MAC),
            &OwnedIps::new()
        ),
        Err(DropReason::NotARequest)
    );
    // ... and by one that also believes it owns it.
    assert_eq!(
        respond(&NA_FRAME, &InterfaceInfo::new(OTHER_NODE_MAC), &owned()),
        Err(DropReason::Conflict {
            ip: ip("2001:db8::1"),
            mac: NODE_MAC
        })
    );
    // Our own unsolicited NA looped back.
    let own = crate::unsolicited_na(&node(), v6("2001:db8::1"));
    assert_eq!(
        respond(&own, &node(), &owned()),
        Err(DropReason::FromOurselves)
    );
}

#[test]
fn a_corrupted_solicitation_is_malformed() {
    let mut bad = NS_FRAME;
    bad[57] ^= 0xff;
    assert!(matches!(
        respond(&bad, &node(), &owned()),
        Err(DropReason::Malformed(Error::Icmpv6Checksum { .. }))
    ));
}

// === OwnedIps ===

#[test]
fn owned_ips_treat_mapped_ipv6_as_ipv4() {
    let owned = owning(&["::ffff:192.0.2.1"]);
    assert!(owned.contains(ip("192.0.2.1")));
    assert_eq!(owned.iter().collect::<Vec<_>>(), vec![ip("192.0.2.1")]);
}

#[test]
fn diff_lists_gains_losses_and_multicast_groups() {
    let before = owning(&["192.0.2.1", "2001:db8::1", "2001:db8::1:0:1"]);
    let after = owning(&["192.0.2.2", "2001:db8::1", "2001:db8::2"]);
    let change = before.diff(&after);
    assert_eq!(change.gained, vec![ip("192.0.2.2"), ip("2001:db8::2")]);
    assert_eq!(change.lost, vec![ip("192.0.2.1"), ip("2001:db8::1:0:1")]);
    // 2001:db8::1 and 2001:db8::1:0:1 share ff02::1:ff00:1, still needed after.
    assert_eq!(change.join, vec![v6("ff02::1:ff00:2")]);
    assert!(change.leave.is_empty());
    assert!(after.diff(&after).is_empty());
    assert_eq!(after.diff(&OwnedIps::new()).leave.len(), 2);
}
