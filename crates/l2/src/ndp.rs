//! ICMPv6 Neighbor Solicitation and Neighbor Advertisement (RFC 4861 4.3, 4.4, 7.1).

use std::net::Ipv6Addr;

use crate::ethernet::mac_at;
use crate::ipv6::{
    icmpv6_checksum, is_solicited_node_multicast, Ipv6Header, HEADER_LEN, NEXT_HEADER_ICMPV6,
};
use crate::{Error, MacAddr};

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The only hop limit Neighbor Discovery accepts and sends.
pub const ND_HOP_LIMIT: u8 = 255;
/// Type, code, checksum, flags/reserved, target address.
pub const ND_FIXED_LEN: usize = 24;
/// Option type of a Source Link-Layer Address.
pub const OPT_SOURCE_LL: u8 = 1;
/// Option type of a Target Link-Layer Address.
pub const OPT_TARGET_LL: u8 = 2;

/// A Neighbor Solicitation: "who has `target`?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborSolicitation {
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The soliciter's MAC (Source Link-Layer Address option), if present.
    pub source_ll: Option<MacAddr>,
}

/// The three Neighbor Advertisement flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a Neighbor Solicitation.
    pub solicited: bool,
    /// O: receivers should replace an existing cache entry with this MAC.
    pub override_flag: bool,
}

impl NaFlags {
    fn to_byte(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.override_flag) << 5)
    }

    fn from_byte(b: u8) -> NaFlags {
        NaFlags {
            router: b & 0x80 != 0,
            solicited: b & 0x40 != 0,
            override_flag: b & 0x20 != 0,
        }
    }
}

/// A Neighbor Advertisement: "`target` is at `target_ll`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborAdvertisement {
    /// Router / Solicited / Override.
    pub flags: NaFlags,
    /// The address being advertised.
    pub target: Ipv6Addr,
    /// The advertised MAC (Target Link-Layer Address option), if present.
    pub target_ll: Option<MacAddr>,
}

/// One of the two Neighbor Discovery messages this crate handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdMessage {
    /// Type 135.
    Solicitation(NeighborSolicitation),
    /// Type 136.
    Advertisement(NeighborAdvertisement),
}

impl NdMessage {
    /// The target address of either message.
    pub fn target(&self) -> Ipv6Addr {
        match self {
            NdMessage::Solicitation(ns) => ns.target,
            NdMessage::Advertisement(na) => na.target,
        }
    }
}

/// A Neighbor Discovery message with the IPv6 addresses it travelled between.
///
/// Hop limit (always 255), traffic class and flow label are not kept: decoding checks
/// the first, encoding writes 255, 0 and 0. Options other than the link-layer address
/// options (nonces, for instance) are skipped on decode and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdPacket {
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// IPv6 destination address.
    pub dst: Ipv6Addr,
    /// The message.
    pub message: NdMessage,
}

impl NdPacket {
    /// Validates and parses an ICMPv6 message per RFC 4861 7.1.1 / 7.1.2.
    ///
    /// Returns `Ok(None)` for ICMPv6 types other than NS and NA (those are not checked
    /// further). `header` must be the IPv6 header the message came in and `icmp`
    /// exactly its payload.
    pub fn decode(header: &Ipv6Header, icmp: &[u8]) -> Result<Option<NdPacket>, Error> {
        let Some(&kind) = icmp.first() else {
            return Err(Error::Truncated {
                what: "ICMPv6 message",
                need: 4,
                have: 0,
            });
        };
        if kind != TYPE_NEIGHBOR_SOLICITATION && kind != TYPE_NEIGHBOR_ADVERTISEMENT {
            return Ok(None);
        }
        if icmp.len() < ND_FIXED_LEN {
            return Err(Error::Truncated {
                what: "Neighbor Discovery message",
                need: ND_FIXED_LEN,
                have: icmp.len(),
            });
        }
        if icmpv6_checksum(header.src, header.dst, icmp) != 0 {
            let mut zeroed = icmp.to_vec();
            zeroed[2] = 0;
            zeroed[3] = 0;
            return Err(Error::Icmpv6Checksum {
                found: u16::from_be_bytes([icmp[2], icmp[3]]),
                computed: icmpv6_checksum(header.src, header.dst, &zeroed),
            });
        }
        if header.hop_limit != ND_HOP_LIMIT {
            return Err(Error::NdHopLimit(header.hop_limit));
        }
        if icmp[1] != 0 {
            return Err(Error::NdCode(icmp[1]));
        }
        let mut t = [0u8; 16];
        t.copy_from_slice(&icmp[8..24]);
        let target = Ipv6Addr::from(t);
        if target.is_multicast() {
            return Err(Error::NdTargetMulticast(target));
        }
        let options = parse_options(&icmp[ND_FIXED_LEN..])?;
        let message = if kind == TYPE_NEIGHBOR_SOLICITATION {
            if header.src.is_unspecified() {
                if options.source_ll.is_some() {
                    return Err(Error::NdUnspecifiedWithSourceLinkLayer);
                }
                if !is_solicited_node_multicast(header.dst) {
                    return Err(Error::NdUnspecifiedToNonSolicitedNode(header.dst));
                }
            }
            NdMessage::Solicitation(NeighborSolicitation {
                target,
                source_ll: options.source_ll,
            })
        } else {
            let flags = NaFlags::from_byte(icmp[4]);
            if flags.solicited && header.dst.is_multicast() {
                return Err(Error::NaSolicitedToMulticast(header.dst));
            }
            NdMessage::Advertisement(NeighborAdvertisement {
                flags,
                target,
                target_ll: options.target_ll,
            })
        };
        Ok(Some(NdPacket {
            src: header.src,
            dst: header.dst,
            message,
        }))
    }

    /// The IPv6 packet (header and ICMPv6 message, checksum filled in) for this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut icmp = Vec::with_capacity(ND_FIXED_LEN + 8);
        let (kind, flags, target, option) = match self.message {
            NdMessage::Solicitation(ns) => (
                TYPE_NEIGHBOR_SOLICITATION,
                0,
                ns.target,
                ns.source_ll.map(|m| (OPT_SOURCE_LL, m)),
            ),
            NdMessage::Advertisement(na) => (
                TYPE_NEIGHBOR_ADVERTISEMENT,
                na.flags.to_byte(),
                na.target,
                na.target_ll.map(|m| (OPT_TARGET_LL, m)),
            ),
        };
        icmp.extend_from_slice(&[kind, 0, 0, 0, flags, 0, 0, 0]);
        icmp.extend_from_slice(&target.octets());
        if let Some((opt, mac)) = option {
            icmp.extend_from_slice(&[opt, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        let checksum = icmpv6_checksum(self.src, self.dst, &icmp);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

        let mut out = Vec::with_capacity(HEADER_LEN + icmp.len());
        Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: icmp.len() as u16, // at most 32 bytes
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: ND_HOP_LIMIT,
            src: self.src,
            dst: self.dst,
        }
        .encode_into(&mut out);
        out.extend_from_slice(&icmp);
        out
    }
}

#[derive(Default)]
struct LinkLayerOptions {
    source_ll: Option<MacAddr>,
    target_ll: Option<MacAddr>,
}

/// Walks the TLV options. Every option must have a non-zero length and fit; the first
/// source / target link-layer address option of each kind is kept, the rest skipped.
fn parse_options(mut rest: &[u8]) -> Result<LinkLayerOptions, Error> {
    let mut found = LinkLayerOptions::default();
    while !rest.is_empty() {
        let [kind, units, ..] = *rest else {
            return Err(Error::Truncated {
                what: "Neighbor Discovery option",
                need: 2,
                have: rest.len(),
            });
        };
        if units == 0 {
            return Err(Error::NdOptionLengthZero(kind));
        }
        let len = usize::from(units) * 8;
        let option = rest
            .get(..len)
            .ok_or(Error::NdOptionOverrun { kind, len })?;
        if kind == OPT_SOURCE_LL || kind == OPT_TARGET_LL {
            if units != 1 {
                return Err(Error::NdLinkLayerOptionLength { kind, units });
            }
            let slot = if kind == OPT_SOURCE_LL {
                &mut found.source_ll
            } else {
                &mut found.target_ll
            };
            slot.get_or_insert(mac_at(option, 2));
        }
        rest = &rest[len..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
