//! Ethernet II framing, with one optional 802.1Q / 802.1ad tag.

use crate::{Error, MacAddr};

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad service tag (accepted on decode as a single tag).
pub const TPID_8021AD: u16 = 0x88a8;
/// Destination + source + ethertype.
pub const HEADER_LEN: usize = 14;
/// Bytes a VLAN tag adds.
pub const VLAN_TAG_LEN: usize = 4;
/// The minimum Ethernet frame without its FCS. Encoders pad to it, as the IEEE 802.3
/// minimum requires, rather than rely on every driver to do so.
pub const MIN_FRAME_LEN: usize = 60;

/// The parts of an Ethernet header this crate cares about. The ethertype is not here:
/// it follows from the payload and is passed to [`encode`] / returned by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ethernet {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// VLAN ID (12 bits) of a single 802.1Q tag, if the frame carries one. Priority and
    /// DEI bits are dropped on decode and written as zero on encode.
    pub vlan: Option<u16>,
}

/// Splits a frame into its header, ethertype and payload (everything after the
/// ethertype, padding included; upper layers bound themselves by their own lengths).
///
/// One tag with TPID 0x8100 or 0x88a8 is skipped and its VLAN ID recorded. A second
/// (inner) tag is left in place: the frame then reports ethertype 0x8100, which no
/// caller here handles, so stacked-VLAN traffic is ignored rather than misread.
pub fn decode(frame: &[u8]) -> Result<(Ethernet, u16, &[u8]), Error> {
    let header = frame.get(..HEADER_LEN).ok_or(Error::Truncated {
        what: "Ethernet header",
        need: HEADER_LEN,
        have: frame.len(),
    })?;
    let dst = mac_at(header, 0);
    let src = mac_at(header, 6);
    let mut ethertype = be16(header, 12);
    let mut rest = &frame[HEADER_LEN..];
    let mut vlan = None;
    if ethertype == TPID_8021Q || ethertype == TPID_8021AD {
        let tag = rest.get(..VLAN_TAG_LEN).ok_or(Error::Truncated {
            what: "802.1Q tag",
            need: HEADER_LEN + VLAN_TAG_LEN,
            have: frame.len(),
        })?;
        vlan = Some(be16(tag, 0) & 0x0fff);
        ethertype = be16(tag, 2);
        rest = &rest[VLAN_TAG_LEN..];
    }
    Ok((Ethernet { dst, src, vlan }, ethertype, rest))
}

/// Builds a frame: header (with an 802.1Q tag if `header.vlan` is set), payload, and
/// zero padding up to [`MIN_FRAME_LEN`].
pub fn encode(header: &Ethernet, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MIN_FRAME_LEN.max(HEADER_LEN + VLAN_TAG_LEN + payload.len()));
    out.extend_from_slice(&header.dst.0);
    out.extend_from_slice(&header.src.0);
    if let Some(id) = header.vlan {
        out.extend_from_slice(&TPID_8021Q.to_be_bytes());
        out.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    if out.len() < MIN_FRAME_LEN {
        out.resize(MIN_FRAME_LEN, 0);
    }
    out
}

/// Reads a MAC at `at`; callers have checked the length.
pub(crate) fn mac_at(bytes: &[u8], at: usize) -> MacAddr {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[at..at + 6]);
    MacAddr(mac)
}

/// Reads a big-endian u16 at `at`; callers have checked the length.
pub(crate) fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: MacAddr = MacAddr::BROADCAST;
    const SRC: MacAddr = MacAddr::new(0x02, 0, 0x5e, 0, 0, 0x01);

    #[test]
    fn untagged_frame_is_padded_to_the_minimum() {
        let frame = encode(
            &Ethernet {
                dst: DST,
                src: SRC,
                vlan: None,
            },
            ETHERTYPE_ARP,
            &[0xaa, 0xbb],
        );
        assert_eq!(frame.len(), MIN_FRAME_LEN);
        assert_eq!(
            &frame[..16],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x01, 0x08, 0x06,
                0xaa, 0xbb
            ]
        );
        assert!(frame[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn tagged_frame_carries_tpid_and_vlan_id() {
        let header = Ethernet {
            dst: DST,
            src: SRC,
            vlan: Some(100),
        };
        let frame = encode(&header, ETHERTYPE_IPV6, &[1, 2, 3]);
        assert_eq!(&frame[12..20], &[0x81, 0x00, 0x00, 0x64, 0x86, 0xdd, 1, 2]);
        let (decoded, ethertype, payload) = decode(&frame).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(ethertype, ETHERTYPE_IPV6);
        assert_eq!(&payload[..3], &[1, 2, 3]);
    }

    #[test]
    fn decode_masks_priority_bits_and_accepts_8021ad() {
        let mut frame = vec![0xff; 12];
        frame.extend_from_slice(&[0x88, 0xa8, 0xe0, 0x2a, 0x08, 0x06]);
        let (header, ethertype, payload) = decode(&frame).unwrap();
        assert_eq!(header.vlan, Some(42));
        assert_eq!(ethertype, ETHERTYPE_ARP);
        assert!(payload.is_empty());
    }

    #[test]
    fn truncated_header_and_tag_are_errors() {
        assert!(matches!(
            decode(&[0; 13]),
            Err(Error::Truncated {
                what: "Ethernet header",
                ..
            })
        ));
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert!(matches!(
            decode(&frame),
            Err(Error::Truncated {
                what: "802.1Q tag",
                ..
            })
        ));
    }
}
