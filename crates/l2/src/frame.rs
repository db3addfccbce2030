//! From raw Ethernet bytes to a typed ARP or Neighbor Discovery packet, and back.

use crate::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV6};
use crate::ipv6::{Ipv6Header, NEXT_HEADER_ICMPV6};
use crate::{ArpPacket, Error, Ethernet, NdPacket};

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Ethernet addresses and VLAN.
    pub ethernet: Ethernet,
    /// What it carries.
    pub packet: Packet,
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packet {
    /// An ARP request or reply.
    Arp(ArpPacket),
    /// A Neighbor Solicitation or Advertisement.
    Nd(NdPacket),
    /// Well-formed as far as it was read, but not something this crate handles.
    Unsupported(Unsupported),
}

/// Why a frame is not ARP or Neighbor Discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsupported {
    /// Neither ARP nor IPv6 (IPv4, LLDP, a second VLAN tag, ...).
    EtherType(u16),
    /// IPv6 but not directly ICMPv6 (TCP, UDP, an extension header, ...).
    Ipv6NextHeader(u8),
    /// ICMPv6 but not NS or NA (echo, router advertisement, MLD, ...).
    Icmpv6Type(u8),
}

/// Decodes an Ethernet frame as far as this crate cares. Never panics.
///
/// Malformed ARP or ND is an [`Error`]; other traffic is [`Packet::Unsupported`].
pub fn decode(bytes: &[u8]) -> Result<Frame, Error> {
    let (eth, ethertype, payload) = ethernet::decode(bytes)?;
    let packet = match ethertype {
        ETHERTYPE_ARP => Packet::Arp(ArpPacket::decode(payload)?),
        ETHERTYPE_IPV6 => {
            let (header, icmp) = Ipv6Header::decode(payload)?;
            if header.next_header != NEXT_HEADER_ICMPV6 {
                Packet::Unsupported(Unsupported::Ipv6NextHeader(header.next_header))
            } else {
                match NdPacket::decode(&header, icmp)? {
                    Some(nd) => Packet::Nd(nd),
                    // decode returned None, so the type byte exists.
                    None => Packet::Unsupported(Unsupported::Icmpv6Type(icmp[0])),
                }
            }
        }
        other => Packet::Unsupported(Unsupported::EtherType(other)),
    };
    Ok(Frame {
        ethernet: eth,
        packet,
    })
}

/// The Ethernet frame carrying an ARP packet (padded to the 60-byte minimum).
pub fn encode_arp(eth: &Ethernet, arp: &ArpPacket) -> Vec<u8> {
    ethernet::encode(eth, ETHERTYPE_ARP, &arp.encode())
}

/// The Ethernet frame carrying a Neighbor Discovery packet.
pub fn encode_nd(eth: &Ethernet, nd: &NdPacket) -> Vec<u8> {
    ethernet::encode(eth, ETHERTYPE_IPV6, &nd.encode())
}

impl Frame {
    /// The frame's bytes, or `None` for [`Packet::Unsupported`], which keeps too little
    /// to be rebuilt.
    pub fn encode(&self) -> Option<Vec<u8>> {
        match &self.packet {
            Packet::Arp(arp) => Some(encode_arp(&self.ethernet, arp)),
            Packet::Nd(nd) => Some(encode_nd(&self.ethernet, nd)),
            Packet::Unsupported(_) => None,
        }
    }
}
