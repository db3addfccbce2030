//! decode(encode(x)) == x for every codec, over generated packets.

use std::net::{Ipv4Addr, Ipv6Addr};

use ironlb_l2::frame::{decode, encode_arp, encode_nd};
use ironlb_l2::ipv6::solicited_node_multicast;
use ironlb_l2::{
    ethernet, ArpOp, ArpPacket, Ethernet, Frame, Ipv6Header, MacAddr, NaFlags, NdMessage, NdPacket,
    NeighborAdvertisement, NeighborSolicitation, Packet,
};
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// Not multicast: ND targets (and solicited NA destinations) must not be.
fn v6_unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(|v| {
        let v = if v >> 120 == 0xff {
            v & !(0xff << 120)
        } else {
            v
        };
        Ipv6Addr::from(v)
    })
}

fn eth() -> impl Strategy<Value = Ethernet> {
    (mac(), mac(), proptest::option::of(0u16..4096)).prop_map(|(dst, src, vlan)| Ethernet {
        dst,
        src,
        vlan,
    })
}

fn arp() -> impl Strategy<Value = ArpPacket> {
    (
        prop_oneof![Just(ArpOp::Request), Just(ArpOp::Reply)],
        mac(),
        any::<u32>(),
        mac(),
        any::<u32>(),
    )
        .prop_map(|(op, sm, si, tm, ti)| ArpPacket {
            op,
            sender_mac: sm,
            sender_ip: Ipv4Addr::from(si),
            target_mac: tm,
            target_ip: Ipv4Addr::from(ti),
        })
}

/// Neighbor Discovery packets that RFC 4861 7.1 accepts.
fn nd() -> impl Strategy<Value = NdPacket> {
    let ns = (
        any::<bool>(),
        v6_unicast(),
        v6(),
        v6_unicast(),
        proptest::option::of(mac()),
    )
        .prop_map(|(dad, src, dst, target, source_ll)| {
            if dad {
                NdPacket {
                    src: Ipv6Addr::UNSPECIFIED,
                    dst: solicited_node_multicast(target),
                    message: NdMessage::Solicitation(NeighborSolicitation {
                        target,
                        source_ll: None,
                    }),
                }
            } else {
                NdPacket {
                    src,
                    dst,
                    message: NdMessage::Solicitation(NeighborSolicitation { target, source_ll }),
                }
            }
        });
    let na = (
        any::<[bool; 3]>(),
        v6(),
        v6(),
        v6_unicast(),
        proptest::option::of(mac()),
    )
        .prop_map(
            |([router, solicited, override_flag], src, dst, target, target_ll)| {
                let dst = if solicited && dst.is_multicast() {
                    Ipv6Addr::from(u128::from(dst) & !(0xff << 120))
                } else {
                    dst
                };
                NdPacket {
                    src,
                    dst,
                    message: NdMessage::Advertisement(NeighborAdvertisement {
                        flags: NaFlags {
                            router,
                            solicited,
                            override_flag,
                        },
                        target,
                        target_ll,
                    }),
                }
            },
        );
    prop_oneof![ns, na]
}

proptest! {
    #[test]
    fn arp_packets_roundtrip(p in arp()) {
        prop_assert_eq!(ArpPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn ethernet_headers_roundtrip(h in eth(), ethertype in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..80)) {
        // A tag-looking ethertype inside an untagged frame would read as a tag.
        prop_assume!(ethertype != ethernet::TPID_8021Q && ethertype != ethernet::TPID_8021AD);
        let frame = ethernet::encode(&h, ethertype, &payload);
        prop_assert!(frame.len() >= ethernet::MIN_FRAME_LEN);
        let (decoded, et, rest) = ethernet::decode(&frame).unwrap();
        prop_assert_eq!(decoded, h);
        prop_assert_eq!(et, ethertype);
        prop_assert_eq!(&rest[..payload.len()], &payload[..]);
        prop_assert!(rest[payload.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn ipv6_headers_roundtrip(
        tc in any::<u8>(), flow in 0u32..(1 << 20), nh in any::<u8>(), hl in any::<u8>(),
        src in v6(), dst in v6(), payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let h = Ipv6Header {
            traffic_class: tc, flow_label: flow, payload_len: payload.len() as u16,
            next_header: nh, hop_limit: hl, src, dst,
        };
        let mut bytes = Vec::new();
        h.encode_into(&mut bytes);
        bytes.extend_from_slice(&payload);
        prop_assert_eq!(Ipv6Header::decode(&bytes), Ok((h, &payload[..])));
    }

    #[test]
    fn arp_frames_roundtrip(e in eth(), p in arp()) {
        let frame = Frame { ethernet: e, packet: Packet::Arp(p) };
        prop_assert_eq!(decode(&encode_arp(&e, &p)), Ok(frame));
        prop_assert_eq!(frame.encode(), Some(encode_arp(&e, &p)));
    }

    #[test]
    fn nd_frames_roundtrip(e in eth(), p in nd()) {
        prop_assert_eq!(decode(&encode_nd(&e, &p)), Ok(Frame { ethernet: e, packet: Packet::Nd(p) }));
    }
}
