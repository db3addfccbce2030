//! Pure layer-2 logic for the IronLB speaker.
//!
//! Everything here takes bytes or plain data and returns bytes or plain data: no
//! sockets, no threads, no clocks (time is passed in). The speaker's raw-socket glue
//! reads a frame, calls [`respond()`], and writes the [`Reply`] if there is one; it
//! asks [`Announcer`] which IPs are due for a gratuitous ARP / unsolicited NA and builds
//! them with [`announcements`]; it decides which IPs it owns with [`owner`].
//!
//! * [`mac`], [`ethernet`], [`arp`], [`ipv6`], [`ndp`]: codecs. Decoding never panics
//!   and returns a typed [`Error`] for malformed input; encoding produces exact bytes.
//! * [`frame`]: one call from raw Ethernet bytes to a typed ARP or ND packet.
//! * [`respond`](mod@respond): the responder decision, with a [`DropReason`] for every
//!   frame that gets no answer.
//! * [`announce`]: gratuitous ARP (request and reply forms), unsolicited NA, the
//!   solicited-node multicast group to join, and the burst/refresh schedule.
//! * [`election`]: rendezvous-hash owner election.
//! * [`interfaces`]: which interface announces an IP (subnet match, name patterns).
//!
//! # How the speaker uses it
//!
//! ```
//! use std::net::IpAddr;
//! use std::time::Instant;
//! use ironlb_l2::{
//!     announcements, owned_by, respond, AnnouncePolicy, Announcer, DropReason, ElectionInput,
//!     InterfaceInfo, MacAddr, OwnedIps,
//! };
//!
//! let me = "node-b";
//! let iface = InterfaceInfo::new(MacAddr::new(0x02, 0, 0, 0, 0, 0x01))
//!     .with_link_local("fe80::1".parse().unwrap());
//!
//! // Membership or Service change: elect, diff against what we had, act on the change.
//! let vip: IpAddr = "192.0.2.1".parse().unwrap();
//! let inputs = [ElectionInput::new(vip, ["node-a", "node-b"])];
//! let live = |node: &str| node == "node-a" || node == "node-b";
//! let before = OwnedIps::new();
//! let now_owned: OwnedIps = owned_by(me, &inputs, live);
//! let change = before.diff(&now_owned);
//! assert_eq!(change.gained, vec![vip]); // node-b wins 192.0.2.1 against node-a
//! // (join `change.join` multicast groups, leave `change.leave`)
//!
//! // The announcer thread: send whatever is due, sleep until the next deadline.
//! let mut announcer = Announcer::new(AnnouncePolicy::default());
//! announcer.sync(&now_owned, Instant::now());
//! for ip in announcer.poll(Instant::now()) {
//!     for frame in announcements(&iface, ip) {
//!         assert_eq!(frame.len(), 60); // write `frame` to the raw socket
//!     }
//! }
//!
//! // The receive loop: every frame read from the raw socket.
//! let garbage = [0u8; 20];
//! match respond(&garbage, &iface, &now_owned) {
//!     Ok(_reply) => { /* write _reply.frame; count _reply.kind */ }
//!     Err(reason @ DropReason::Conflict { .. }) => { /* warn: {reason} */ }
//!     Err(reason) => assert_eq!(reason.label(), "not_arp_or_nd"),
//! }
//! ```

pub mod announce;
pub mod arp;
pub mod election;
pub mod ethernet;
pub mod frame;
pub mod interfaces;
pub mod ipv6;
pub mod mac;
pub mod ndp;
pub mod respond;
#[cfg(test)]
mod testdata;

use std::net::Ipv6Addr;

pub use announce::{
    announcements, gratuitous_arp, gratuitous_arps, solicited_node_mac, unsolicited_na,
    AnnouncePolicy, Announcer,
};
pub use arp::{ArpOp, ArpPacket};
pub use election::{owned_by, owner, owners, score, ElectionInput};
pub use ethernet::Ethernet;
pub use frame::{decode, Frame, Packet, Unsupported};
pub use interfaces::{default_interface, name_matches, InterfaceAddr, InterfaceAddrs};
pub use ipv6::{solicited_node_multicast, Ipv6Header};
pub use mac::MacAddr;
pub use ndp::{NaFlags, NdMessage, NdPacket, NeighborAdvertisement, NeighborSolicitation};
pub use respond::{respond, DropReason, InterfaceInfo, OwnedIps, OwnedIpsChange, Reply, ReplyKind};

/// Everything that can be wrong with a frame or an address string.
///
/// This is the crate's one error type. Decoding returns it for malformed input; a
/// well-formed frame that is simply not ARP or Neighbor Discovery is not an error
/// (see [`Packet::Unsupported`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended before a header or field did.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Which layer was being read ("Ethernet header", "ARP packet", ...).
        what: &'static str,
        /// Bytes that layer needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// ARP hardware type other than Ethernet (1).
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    ArpHardwareType(u16),
    /// ARP protocol type other than IPv4 (0x0800).
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    ArpProtocolType(u16),
    /// ARP address lengths other than 6 (MAC) and 4 (IPv4).
    #[error("ARP address lengths hlen={hlen} plen={plen}, expected 6 and 4")]
    ArpAddressLengths {
        /// Hardware address length.
        hlen: u8,
        /// Protocol address length.
        plen: u8,
    },
    /// ARP operation other than request (1) or reply (2).
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    ArpOperation(u16),
    /// IP version nibble is not 6 in an IPv6 ethertype frame.
    #[error("IP version {0} in an IPv6 frame")]
    Ipv6Version(u8),
    /// IPv6 payload length larger than the bytes that follow the header.
    #[error("IPv6 payload length {declared} exceeds the {available} bytes present")]
    Ipv6PayloadLength {
        /// Payload Length field.
        declared: u16,
        /// Bytes actually after the header.
        available: usize,
    },
    /// ICMPv6 checksum mismatch (pseudo-header included).
    #[error("ICMPv6 checksum {found:#06x}, computed {computed:#06x}")]
    Icmpv6Checksum {
        /// Checksum carried in the packet.
        found: u16,
        /// Checksum the packet should carry.
        computed: u16,
    },
    /// Neighbor Discovery packet whose IPv6 hop limit is not 255 (RFC 4861 7.1): it
    /// may have been forwarded by a router, so it did not originate on this link.
    #[error("Neighbor Discovery with hop limit {0}, must be 255")]
    NdHopLimit(u8),
    /// Neighbor Discovery ICMPv6 code other than 0.
    #[error("Neighbor Discovery ICMPv6 code {0}, must be 0")]
    NdCode(u8),
    /// Neighbor Solicitation / Advertisement for a multicast target address.
    #[error("Neighbor Discovery target {0} is multicast")]
    NdTargetMulticast(Ipv6Addr),
    /// A Neighbor Discovery option with length 0 (RFC 4861 4.6: discard the packet).
    #[error("Neighbor Discovery option type {0} has length 0")]
    NdOptionLengthZero(u8),
    /// A Neighbor Discovery option that runs past the end of the message.
    #[error("Neighbor Discovery option type {kind} of {len} bytes runs past the message end")]
    NdOptionOverrun {
        /// Option type.
        kind: u8,
        /// Option length in bytes.
        len: usize,
    },
    /// A link-layer address option whose length is not one 8-octet unit (Ethernet).
    #[error("link-layer address option type {kind} has {units} 8-octet units, expected 1")]
    NdLinkLayerOptionLength {
        /// Option type (1 source, 2 target).
        kind: u8,
        /// Length field.
        units: u8,
    },
    /// Duplicate Address Detection solicitation (source ::) carrying a Source
    /// Link-Layer Address option (RFC 4861 7.1.1 says discard).
    #[error("Neighbor Solicitation from :: carries a source link-layer address")]
    NdUnspecifiedWithSourceLinkLayer,
    /// DAD solicitation (source ::) not sent to a solicited-node multicast address.
    #[error("Neighbor Solicitation from :: sent to {0}, not a solicited-node multicast address")]
    NdUnspecifiedToNonSolicitedNode(Ipv6Addr),
    /// Neighbor Advertisement to a multicast address with the Solicited flag set.
    #[error("Neighbor Advertisement to multicast {0} has the Solicited flag set")]
    NaSolicitedToMulticast(Ipv6Addr),
    /// A MAC address string that is not six colon- or dash-separated hex octets.
    #[error("'{0}' is not a MAC address (expected six hex octets such as 02:00:5e:10:00:01)")]
    InvalidMac(String),
}
