//! Whatever arrives on the wire, decode and respond return instead of panicking, and a
//! reply only ever claims an owned IP with our MAC. This runs the fuzz target's body on
//! stable, in CI: over the committed fuzz seeds, random bytes, and mutated valid frames.

use std::net::IpAddr;
use std::path::Path;

use ironlb_l2::frame::{decode, encode_arp, encode_nd};
use ironlb_l2::{
    respond, ArpOp, ArpPacket, Ethernet, InterfaceInfo, MacAddr, NdMessage, NdPacket,
    NeighborSolicitation, OwnedIps, Packet, ReplyKind,
};
use proptest::prelude::*;

const NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);

fn iface() -> InterfaceInfo {
    InterfaceInfo::new(NODE_MAC).with_link_local("fe80::1".parse().unwrap())
}

fn owned() -> OwnedIps {
    ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]
        .iter()
        .map(|s| s.parse::<IpAddr>().unwrap())
        .collect()
}

/// What the fuzz target checks, besides not panicking.
fn check(bytes: &[u8]) {
    let _ = decode(bytes);
    let owned = owned();
    if let Ok(reply) = respond(bytes, &iface(), &owned) {
        assert!(owned.contains(reply.ip), "replied for {}", reply.ip);
        let frame = decode(&reply.frame).expect("our reply decodes");
        assert_eq!(frame.ethernet.src, NODE_MAC);
        match (frame.packet, reply.kind) {
            (Packet::Arp(arp), ReplyKind::ArpReply) => {
                assert_eq!(arp.op, ArpOp::Reply);
                assert_eq!(IpAddr::V4(arp.sender_ip), reply.ip);
                assert_eq!(arp.sender_mac, NODE_MAC);
            }
            (Packet::Nd(nd), ReplyKind::NeighborAdvertisement { solicited }) => {
                let NdMessage::Advertisement(na) = nd.message else {
                    panic!("replied with an NS")
                };
                assert_eq!(IpAddr::V6(na.target), reply.ip);
                assert_eq!(na.target_ll, Some(NODE_MAC));
                assert_eq!(na.flags.solicited, solicited);
                assert!(na.flags.override_flag);
            }
            other => panic!("reply kind mismatch: {other:?}"),
        }
    }
}

#[test]
fn committed_fuzz_seeds_are_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz seeds directory") {
        check(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

/// The seeds were built by a Python script with its own checksum code, so this also
/// cross-checks the codecs against an independent implementation.
#[test]
fn committed_fuzz_seeds_get_the_decisions_their_names_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    let expect = [
        ("arp-request-owned", "reply"),
        ("arp-request-other", "not_owned"),
        ("arp-request-vlan", "other_vlan"),
        ("arp-probe", "reply"),
        ("arp-gratuitous-reply", "conflict"),
        ("ns-owned", "reply"),
        ("ns-dad", "reply"),
        ("ns-unicast-nonce", "reply"),
        ("na-unsolicited", "conflict"),
        ("ipv6-echo", "not_arp_or_nd"),
    ];
    for (name, want) in expect {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let got = match respond(&bytes, &iface(), &owned()) {
            Ok(_) => "reply",
            Err(reason) => reason.label(),
        };
        assert_eq!(got, want, "seed {name}");
    }
}

/// Valid requests for owned and unowned IPs, to mutate.
fn valid_frames() -> Vec<Vec<u8>> {
    let client = MacAddr::new(0x02, 0, 0, 0, 0, 0x0a);
    let mut out = Vec::new();
    for target in ["192.0.2.1", "192.0.2.3"] {
        out.push(encode_arp(
            &Ethernet {
                dst: MacAddr::BROADCAST,
                src: client,
                vlan: None,
            },
            &ArpPacket {
                op: ArpOp::Request,
                sender_mac: client,
                sender_ip: "192.0.2.10".parse().unwrap(),
                target_mac: MacAddr::ZERO,
                target_ip: target.parse().unwrap(),
            },
        ));
    }
    for target in ["2001:db8::1", "2001:db8::3"] {
        let target = target.parse().unwrap();
        let group = ironlb_l2::solicited_node_multicast(target);
        out.push(encode_nd(
            &Ethernet {
                dst: MacAddr::ipv6_multicast(group),
                src: client,
                vlan: None,
            },
            &NdPacket {
                src: "2001:db8::10".parse().unwrap(),
                dst: group,
                message: NdMessage::Solicitation(NeighborSolicitation {
                    target,
                    source_ll: Some(client),
                }),
            },
        ));
    }
    out
}

#[test]
fn valid_requests_for_owned_ips_are_answered() {
    let answered: Vec<bool> = valid_frames()
        .iter()
        .map(|f| respond(f, &iface(), &owned()).is_ok())
        .collect();
    assert_eq!(answered, vec![true, false, true, false]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut frame = valid_frames().swap_remove(which);
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        if truncate {
            let n = cut.index(frame.len());
            frame.truncate(n);
        }
        check(&frame);
    }
}
