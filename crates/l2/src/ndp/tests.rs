use super::*;
use crate::frame::{decode, encode_nd, Packet};
use crate::testdata::{NA_FRAME, NS_FRAME};
use crate::Ethernet;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const CLIENT_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x0a);
const NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);

fn ns_packet() -> NdPacket {
    NdPacket {
        src: ip("2001:db8::10"),
        dst: ip("ff02::1:ff00:1"),
        message: NdMessage::Solicitation(NeighborSolicitation {
            target: ip("2001:db8::1"),
            source_ll: Some(CLIENT_MAC),
        }),
    }
}

fn na_packet() -> NdPacket {
    NdPacket {
        src: ip("2001:db8::1"),
        dst: ip("2001:db8::10"),
        message: NdMessage::Advertisement(NeighborAdvertisement {
            flags: NaFlags {
                router: false,
                solicited: true,
                override_flag: true,
            },
            target: ip("2001:db8::1"),
            target_ll: Some(NODE_MAC),
        }),
    }
}

/// A second checksum, written differently from the crate's (byte by byte into two
/// accumulators, high and low octets), so a shared mistake is unlikely.
fn independent_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(msg);
    let (mut hi, mut lo) = (0u32, 0u32);
    for (i, b) in bytes.iter().enumerate() {
        if i % 2 == 0 {
            hi += u32::from(*b);
        } else {
            lo += u32::from(*b);
        }
    }
    let mut sum = (hi << 8) + lo;
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn a_neighbor_solicitation_encodes_to_the_golden_bytes() {
    let eth = Ethernet {
        dst: MacAddr::new(0x33, 0x33, 0xff, 0, 0, 1),
        src: CLIENT_MAC,
        vlan: None,
    };
    assert_eq!(encode_nd(&eth, &ns_packet()), NS_FRAME);
    let frame = decode(&NS_FRAME).unwrap();
    assert_eq!(frame.ethernet, eth);
    assert_eq!(frame.packet, Packet::Nd(ns_packet()));
}

#[test]
fn a_solicited_advertisement_encodes_to_the_golden_bytes() {
    let eth = Ethernet {
        dst: CLIENT_MAC,
        src: NODE_MAC,
        vlan: None,
    };
    assert_eq!(encode_nd(&eth, &na_packet()), NA_FRAME);
    assert_eq!(decode(&NA_FRAME).unwrap().packet, Packet::Nd(na_packet()));
}

#[test]
fn golden_checksums_agree_with_an_independent_implementation() {
    for (frame, src, dst) in [
        (&NS_FRAME, "2001:db8::10", "ff02::1:ff00:1"),
        (&NA_FRAME, "2001:db8::1", "2001:db8::10"),
    ] {
        let mut icmp = frame[54..].to_vec();
        let carried = u16::from_be_bytes([icmp[2], icmp[3]]);
        icmp[2] = 0;
        icmp[3] = 0;
        assert_eq!(independent_checksum(ip(src), ip(dst), &icmp), carried);
        assert_eq!(icmpv6_checksum(ip(src), ip(dst), &icmp), carried);
        assert_eq!(icmpv6_checksum(ip(src), ip(dst), &frame[54..]), 0);
    }
}

#[test]
fn dad_and_unsolicited_checksums_match_python() {
    let dad = NdPacket {
        src: Ipv6Addr::UNSPECIFIED,
        dst: ip("ff02::1:ff00:1"),
        message: NdMessage::Solicitation(NeighborSolicitation {
            target: ip("2001:db8::1"),
            source_ll: None,
        }),
    };
    assert_eq!(&dad.encode()[42..44], &[0x4c, 0xed]);
    let unsolicited = NdPacket {
        src: ip("fe80::1"),
        dst: ip("ff02::1"),
        message: NdMessage::Advertisement(NeighborAdvertisement {
            flags: NaFlags {
                override_flag: true,
                ..NaFlags::default()
            },
            target: ip("2001:db8::1"),
            target_ll: Some(NODE_MAC),
        }),
    };
    assert_eq!(&unsolicited.encode()[42..44], &[0x28, 0x63]);
}

/// Decodes `frame` after `edit`, with the checksum recomputed so that only the edit is
/// under test.
fn decode_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Frame, Error> {
    let mut f = NS_FRAME.to_vec();
    edit(&mut f);
    fix_checksum(&mut f);
    decode(&f)
}

fn fix_checksum(f: &mut [u8]) {
    let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
    f[56] = 0;
    f[57] = 0;
    let c = icmpv6_checksum(src, dst, &f[54..54 + len]);
    f[56..58].copy_from_slice(&c.to_be_bytes());
}

use crate::Frame;

#[test]
fn a_flipped_bit_fails_the_checksum() {
    let mut f = NS_FRAME;
    // A high-order byte of the target: the sum grows by 0x100, the checksum shrinks.
    f[70] ^= 0x01;
    assert_eq!(
        decode(&f),
        Err(Error::Icmpv6Checksum {
            found: 0x1c11,
            computed: 0x1b11
        })
    );
}

#[test]
fn a_routed_solicitation_is_rejected_by_hop_limit() {
    assert_eq!(decode_edited(|f| f[21] = 64), Err(Error::NdHopLimit(64)));
}

#[test]
fn rfc_4861_validity_rules_are_enforced() {
    assert_eq!(decode_edited(|f| f[55] = 1), Err(Error::NdCode(1)));
    assert_eq!(
        decode_edited(|f| f[62] = 0xff),
        Err(Error::NdTargetMulticast(ip("ff01:db8::1")))
    );
    assert_eq!(
        decode_edited(|f| f[79] = 0),
        Err(Error::NdOptionLengthZero(1))
    );
    assert_eq!(
        decode_edited(|f| f[79] = 2),
        Err(Error::NdOptionOverrun { kind: 1, len: 16 })
    );
    // DAD (source ::) with a source link-layer option.
    assert_eq!(
        decode_edited(|f| f[22..38].fill(0)),
        Err(Error::NdUnspecifiedWithSourceLinkLayer)
    );
    // DAD to a unicast address.
    assert_eq!(
        decode_edited(|f| {
            f[22..38].fill(0);
            f[38..54].copy_from_slice(&ip("2001:db8::1").octets());
            f[18..20].copy_from_slice(&[0, 24]);
            f.truncate(78);
        }),
        Err(Error::NdUnspecifiedToNonSolicitedNode(ip("2001:db8::1")))
    );
    // Truncated below the fixed 24 bytes.
    assert!(matches!(
        decode_edited(|f| {
            f[18..20].copy_from_slice(&[0, 20]);
            f.truncate(74);
        }),
        Err(Error::Truncated {
            need: 24,
            have: 20,
            ..
        })
    ));
}

#[test]
fn solicited_advertisement_to_multicast_is_rejected() {
    let mut bad = na_packet();
    bad.dst = crate::ipv6::ALL_NODES;
    let eth = Ethernet {
        dst: MacAddr::IPV6_ALL_NODES,
        src: NODE_MAC,
        vlan: None,
    };
    assert_eq!(
        decode(&encode_nd(&eth, &bad)),
        Err(Error::NaSolicitedToMulticast(crate::ipv6::ALL_NODES))
    );
}

#[test]
fn unknown_options_are_skipped_and_first_link_layer_option_wins() {
    let f = decode_edited(|f| {
        // A 16-byte nonce-like option, then a second source link-layer option.
        f.extend_from_slice(&[14, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        f.extend_from_slice(&[1, 1, 0x02, 0xee, 0xee, 0xee, 0xee, 0xee]);
        f[18..20].copy_from_slice(&[0, 32 + 24]);
    })
    .unwrap();
    assert_eq!(f.packet, Packet::Nd(ns_packet()));
}

#[test]
fn long_link_layer_option_is_rejected() {
    assert_eq!(
        decode_edited(|f| {
            f[79] = 2;
            f.extend_from_slice(&[0; 8]);
            f[18..20].copy_from_slice(&[0, 40]);
        }),
        Err(Error::NdLinkLayerOptionLength { kind: 1, units: 2 })
    );
}

#[test]
fn other_icmpv6_types_are_unsupported_not_errors() {
    let f = decode_edited(|f| f[54] = 128).unwrap(); // echo request
    assert_eq!(
        f.packet,
        Packet::Unsupported(crate::Unsupported::Icmpv6Type(128))
    );
}
