//! The fixed IPv6 header (RFC 8200), the ICMPv6 checksum (RFC 4443 2.3) and the
//! multicast addresses Neighbor Discovery uses.

use std::net::Ipv6Addr;

use crate::ethernet::be16;
use crate::Error;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next Header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The fixed IPv6 header. Extension headers are not parsed: a packet whose Next Header
/// is not ICMPv6 is simply not Neighbor Discovery for this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Header {
    /// Traffic Class.
    pub traffic_class: u8,
    /// Flow Label (low 20 bits used).
    pub flow_label: u32,
    /// Payload Length: bytes after this header.
    pub payload_len: u16,
    /// Next Header.
    pub next_header: u8,
    /// Hop Limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Parses the header and returns it with exactly `payload_len` bytes of payload
    /// (Ethernet padding after it is cut off).
    pub fn decode(bytes: &[u8]) -> Result<(Ipv6Header, &[u8]), Error> {
        let b = bytes.get(..HEADER_LEN).ok_or(Error::Truncated {
            what: "IPv6 header",
            need: HEADER_LEN,
            have: bytes.len(),
        })?;
        let version = b[0] >> 4;
        if version != 6 {
            return Err(Error::Ipv6Version(version));
        }
        let header = Ipv6Header {
            traffic_class: (b[0] << 4) | (b[1] >> 4),
            flow_label: u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]]),
            payload_len: be16(b, 4),
            next_header: b[6],
            hop_limit: b[7],
            src: addr_at(b, 8),
            dst: addr_at(b, 24),
        };
        let rest = &bytes[HEADER_LEN..];
        let payload =
            rest.get(..usize::from(header.payload_len))
                .ok_or(Error::Ipv6PayloadLength {
                    declared: header.payload_len,
                    available: rest.len(),
                })?;
        Ok((header, payload))
    }

    /// Appends the 40 header bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let flow = self.flow_label & 0x000f_ffff;
        out.push(0x60 | (self.traffic_class >> 4));
        out.push((self.traffic_class << 4) | (flow >> 16) as u8);
        out.extend_from_slice(&(flow as u16).to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The Internet checksum of an ICMPv6 message with the IPv6 pseudo-header (source,
/// destination, upper-layer length, next header 58).
///
/// Over a message whose checksum field is zero, this is the value to write into it.
/// Over a message as received, it is 0 when the carried checksum is right.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for pair in &mut chunks {
            sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // The upper-layer length is a u32; messages here come from a u16 payload length.
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The solicited-node multicast address of `ip` (RFC 4291 2.7.1): ff02::1:ff00:0/104
/// plus the low 24 bits of `ip`. Neighbor Solicitations for `ip` are sent there, so a
/// node answering for `ip` must join this group.
pub fn solicited_node_multicast(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `ip` is some solicited-node multicast address.
pub fn is_solicited_node_multicast(ip: Ipv6Addr) -> bool {
    ip.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Ipv6Header {
        Ipv6Header {
            traffic_class: 0xab,
            flow_label: 0x0c_def0,
            payload_len: 2,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: "2001:db8::1".parse().unwrap(),
            dst: "ff02::1".parse().unwrap(),
        }
    }

    #[test]
    fn header_fields_are_packed_per_rfc_8200() {
        let mut b = Vec::new();
        header().encode_into(&mut b);
        assert_eq!(&b[..8], &[0x6a, 0xbc, 0xde, 0xf0, 0x00, 0x02, 58, 255]);
        assert_eq!(b.len(), HEADER_LEN);
        b.extend_from_slice(&[9, 9, 0, 0]); // payload then padding
        let (decoded, payload) = Ipv6Header::decode(&b).unwrap();
        assert_eq!(decoded, header());
        assert_eq!(payload, &[9, 9]);
    }

    #[test]
    fn wrong_version_and_short_payload_are_errors() {
        let mut b = Vec::new();
        header().encode_into(&mut b);
        assert_eq!(
            Ipv6Header::decode(&b),
            Err(Error::Ipv6PayloadLength {
                declared: 2,
                available: 0
            })
        );
        b[0] = 0x45;
        assert_eq!(Ipv6Header::decode(&b), Err(Error::Ipv6Version(4)));
        assert!(matches!(
            Ipv6Header::decode(&b[..39]),
            Err(Error::Truncated { need: 40, .. })
        ));
    }

    #[test]
    fn solicited_node_group_keeps_low_24_bits() {
        let ip: Ipv6Addr = "2001:db8::abcd:12:3456".parse().unwrap();
        let group = solicited_node_multicast(ip);
        assert_eq!(group, "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node_multicast(group));
        assert!(!is_solicited_node_multicast(ALL_NODES));
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        let a: Ipv6Addr = "::".parse().unwrap();
        // Pseudo-header: length 1, next header 58; message 0x01 padded to 0x0100.
        let expect = !(1u16 + 58 + 0x0100);
        assert_eq!(icmpv6_checksum(a, a, &[1]), expect);
    }
}
