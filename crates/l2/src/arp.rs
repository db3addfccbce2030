//! ARP for IPv4 over Ethernet (RFC 826).

use std::fmt;
use std::net::Ipv4Addr;

use crate::ethernet::{be16, mac_at, ETHERTYPE_IPV4};
use crate::{Error, MacAddr};

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;
/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    /// who-has (1)
    Request,
    /// is-at (2)
    Reply,
}

impl ArpOp {
    /// The operation field value.
    pub fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

impl fmt::Display for ArpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArpOp::Request => "request",
            ArpOp::Reply => "reply",
        })
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address (SHA).
    pub sender_mac: MacAddr,
    /// Sender protocol address (SPA).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (THA).
    pub target_mac: MacAddr,
    /// Target protocol address (TPA).
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses an ARP packet; bytes after the 28 that ARP uses (Ethernet padding) are
    /// ignored. Anything but Ethernet/IPv4 request or reply is an error.
    pub fn decode(bytes: &[u8]) -> Result<ArpPacket, Error> {
        let b = bytes.get(..ARP_LEN).ok_or(Error::Truncated {
            what: "ARP packet",
            need: ARP_LEN,
            have: bytes.len(),
        })?;
        let htype = be16(b, 0);
        if htype != HTYPE_ETHERNET {
            return Err(Error::ArpHardwareType(htype));
        }
        let ptype = be16(b, 2);
        if ptype != ETHERTYPE_IPV4 {
            return Err(Error::ArpProtocolType(ptype));
        }
        let (hlen, plen) = (b[4], b[5]);
        if hlen != 6 || plen != 4 {
            return Err(Error::ArpAddressLengths { hlen, plen });
        }
        let op = match be16(b, 6) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => return Err(Error::ArpOperation(other)),
        };
        Ok(ArpPacket {
            op,
            sender_mac: mac_at(b, 8),
            sender_ip: Ipv4Addr::new(b[14], b[15], b[16], b[17]),
            target_mac: mac_at(b, 18),
            target_ip: Ipv4Addr::new(b[24], b[25], b[26], b[27]),
        })
    }

    /// The 28 bytes of this packet.
    pub fn encode(&self) -> [u8; ARP_LEN] {
        let mut b = [0u8; ARP_LEN];
        b[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&self.op.code().to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }

    /// Sender and target protocol addresses are the same, non-zero address: an
    /// announcement (gratuitous ARP), in request or reply form.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }

    /// Sender protocol address 0.0.0.0: an RFC 5227 address probe.
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 192.0.2.1? Tell 192.0.2.10" from 02:00:00:00:00:0a, as written out by
    /// hand from RFC 826's field layout.
    const WHO_HAS: [u8; ARP_LEN] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // SHA
        192, 0, 2, 10, // SPA
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // THA
        192, 0, 2, 1, // TPA
    ];

    fn who_has() -> ArpPacket {
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: MacAddr::new(2, 0, 0, 0, 0, 0x0a),
            sender_ip: Ipv4Addr::new(192, 0, 2, 10),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 0, 2, 1),
        }
    }

    #[test]
    fn a_who_has_request_encodes_to_the_rfc_826_layout() {
        assert_eq!(who_has().encode(), WHO_HAS);
        assert_eq!(ArpPacket::decode(&WHO_HAS).unwrap(), who_has());
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut padded = WHO_HAS.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(ArpPacket::decode(&padded).unwrap(), who_has());
    }

    #[test]
    fn every_header_field_is_validated() {
        let with = |at: usize, v: u8| {
            let mut b = WHO_HAS;
            b[at] = v;
            ArpPacket::decode(&b)
        };
        assert_eq!(with(1, 6), Err(Error::ArpHardwareType(6)));
        assert_eq!(with(2, 0x86), Err(Error::ArpProtocolType(0x8600)));
        assert_eq!(
            with(4, 8),
            Err(Error::ArpAddressLengths { hlen: 8, plen: 4 })
        );
        assert_eq!(
            with(5, 16),
            Err(Error::ArpAddressLengths { hlen: 6, plen: 16 })
        );
        assert_eq!(with(7, 3), Err(Error::ArpOperation(3)));
        assert!(matches!(
            ArpPacket::decode(&WHO_HAS[..27]),
            Err(Error::Truncated {
                need: 28,
                have: 27,
                ..
            })
        ));
    }

    #[test]
    fn gratuitous_and_probe_are_recognised() {
        let mut p = who_has();
        assert!(!p.is_gratuitous() && !p.is_probe());
        p.sender_ip = p.target_ip;
        assert!(p.is_gratuitous());
        p.sender_ip = Ipv4Addr::UNSPECIFIED;
        assert!(p.is_probe() && !p.is_gratuitous());
    }
}
