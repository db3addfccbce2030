//! Ethernet MAC addresses.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::Error;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    /// 33:33:00:00:00:01, the Ethernet group of the IPv6 all-nodes address ff02::1.
    pub const IPV6_ALL_NODES: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

    /// A MAC address from its six octets.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> MacAddr {
        MacAddr([a, b, c, d, e, f])
    }

    /// The six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Group bit set (includes broadcast).
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// All zero.
    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// The Ethernet multicast address an IPv6 multicast group maps to (RFC 2464 7):
    /// 33:33 followed by the group's low 32 bits.
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `02:00:5e:10:00:01` or `02-00-5e-10-00-01` (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::InvalidMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_and_parses_lowercase_colon_form() {
        let mac = MacAddr::new(0x02, 0x00, 0x5e, 0x10, 0xab, 0x01);
        assert_eq!(mac.to_string(), "02:00:5e:10:ab:01");
        assert_eq!("02:00:5E:10:AB:01".parse::<MacAddr>().unwrap(), mac);
        assert_eq!("02-00-5e-10-ab-01".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_malformed_strings() {
        for s in [
            "",
            "02:00:5e:10:ab",
            "02:00:5e:10:ab:01:02",
            "2:00:5e:10:ab:01",
            "zz:00:5e:10:ab:01",
            "+2:00:5e:10:ab:01",
        ] {
            assert!(
                matches!(s.parse::<MacAddr>(), Err(Error::InvalidMac(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn ipv6_multicast_maps_low_32_bits() {
        let group: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(group),
            MacAddr::new(0x33, 0x33, 0xff, 0x12, 0x34, 0x56)
        );
        assert_eq!(
            MacAddr::ipv6_multicast("ff02::1".parse().unwrap()),
            MacAddr::IPV6_ALL_NODES
        );
    }

    #[test]
    fn classifies_group_addresses() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::IPV6_ALL_NODES.is_multicast());
        assert!(!MacAddr::new(0x02, 0, 0, 0, 0, 1).is_multicast());
        assert!(MacAddr::ZERO.is_zero());
    }
}
