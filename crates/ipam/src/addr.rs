//! Address arithmetic: every address as one `u128` (IPv4 as IPv4-mapped IPv6, so
//! the two families never collide and one ordered space holds both), parsing of pool
//! entries, and the "buggy IP" rule computed rather than enumerated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Family;

/// Where IPv4 lives in the shared `u128` space: `::ffff:0:0/96`.
const V4_BASE: u128 = 0xffff_0000_0000;
const V4_MASK: u128 = !0xffff_ffff;

/// An address as a `u128` key. IPv6 addresses inside `::ffff:0:0/96` (IPv4-mapped)
/// have no key: they would alias IPv4 addresses and no pool may contain them.
pub(crate) fn key(ip: IpAddr) -> Option<u128> {
    match ip {
        IpAddr::V4(v4) => Some(V4_BASE | u128::from(u32::from(v4))),
        IpAddr::V6(v6) => {
            let k = u128::from(v6);
            (k & V4_MASK != V4_BASE).then_some(k)
        }
    }
}

/// The address behind a key made by [`key`].
pub(crate) fn ip(key: u128) -> IpAddr {
    if key & V4_MASK == V4_BASE {
        IpAddr::V4(Ipv4Addr::from((key & 0xffff_ffff) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(key))
    }
}

/// Family of a key made by [`key`].
pub(crate) fn family(key: u128) -> Family {
    if key & V4_MASK == V4_BASE {
        Family::V4
    } else {
        Family::V6
    }
}

/// IPv4 addresses ending in .0 or .255 confuse the smurf protection of some old
/// firmware (MetalLB's `avoidBuggyIPs`). Only meaningful for IPv4 keys.
pub(crate) fn is_buggy(key: u128) -> bool {
    matches!(key & 0xff, 0 | 0xff)
}

/// Number of buggy IPv4 addresses in the inclusive range `[start, end]`, computed.
pub(crate) fn buggy_count(start: u128, end: u128) -> u128 {
    // Buggy addresses in [0, n]: two per complete /24 below n's, plus n's own /24 part.
    fn upto(n: u128) -> u128 {
        2 * (n >> 8) + 1 + u128::from(n & 0xff == 0xff)
    }
    if start == 0 {
        upto(end)
    } else {
        upto(end) - upto(start - 1)
    }
}

/// An inclusive range of keys of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Range {
    pub start: u128,
    pub end: u128,
}

impl Range {
    pub fn family(&self) -> Family {
        family(self.start)
    }

    /// Addresses in the range that may be handed out.
    pub fn allocatable(&self, avoid_buggy: bool) -> u128 {
        let n = self.end - self.start + 1;
        if avoid_buggy && self.family() == Family::V4 {
            n - buggy_count(self.start, self.end)
        } else {
            n
        }
    }
}

/// Parses one pool entry: a CIDR (`192.0.2.0/24`; host bits are masked off), a range
/// (`192.0.2.10-192.0.2.20`) or a single IP. The message says what is wrong.
pub(crate) fn parse_entry(entry: &str) -> Result<Range, String> {
    let range = parse_range(entry)?;
    // A v6 range covering ::ffff:0:0/96 would alias IPv4 keys.
    if range.family() == Family::V6 && range.start <= V4_BASE | 0xffff_ffff && range.end >= V4_BASE
    {
        return Err(format!(
            "'{}' covers the IPv4-mapped range ::ffff:0:0/96",
            entry.trim()
        ));
    }
    Ok(range)
}

fn parse_range(entry: &str) -> Result<Range, String> {
    let text = entry.trim();
    let parse_ip = |s: &str| -> Result<u128, String> {
        let s = s.trim();
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address"))?;
        key(ip)
            .ok_or_else(|| format!("'{s}' is an IPv4-mapped IPv6 address; write the IPv4 address"))
    };
    if let Some((a, b)) = text.split_once('-') {
        let (start, end) = (parse_ip(a)?, parse_ip(b)?);
        if family(start) != family(end) {
            return Err(format!("range '{text}' mixes IPv4 and IPv6"));
        }
        if start > end {
            return Err(format!("range '{text}' ends before it starts"));
        }
        Ok(Range { start, end })
    } else if let Some((addr, len)) = text.split_once('/') {
        let base = parse_ip(addr)?;
        let bits = match family(base) {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let len: u32 = len.trim().parse().map_err(|_| {
            format!(
                "'{text}' is not a CIDR: '{}' is not a prefix length",
                len.trim()
            )
        })?;
        if len > bits {
            return Err(format!(
                "'{text}' is not a CIDR: prefix length {len} exceeds {bits}"
            ));
        }
        let host_bits = bits - len;
        let host_mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        Ok(Range {
            start: base & !host_mask,
            end: base | host_mask,
        })
    } else {
        let k = parse_ip(text)?;
        Ok(Range { start: k, end: k })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> u128 {
        key(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn keys_round_trip_both_families() {
        for s in [
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(super::ip(key(ip).unwrap()), ip);
        }
        assert_eq!(key("::ffff:192.0.2.1".parse().unwrap()), None);
        assert_eq!(family(k("192.0.2.1")), Family::V4);
        assert_eq!(family(k("2001:db8::1")), Family::V6);
    }

    #[test]
    fn entries_parse_as_cidrs_ranges_and_single_ips() {
        assert_eq!(
            parse_entry("192.0.2.0/24").unwrap(),
            Range {
                start: k("192.0.2.0"),
                end: k("192.0.2.255")
            }
        );
        assert_eq!(parse_entry("192.0.2.77/24").unwrap().start, k("192.0.2.0"));
        assert_eq!(
            parse_entry(" 192.0.2.10 - 192.0.2.20 ").unwrap(),
            Range {
                start: k("192.0.2.10"),
                end: k("192.0.2.20")
            }
        );
        assert_eq!(
            parse_entry("2001:db8::/64").unwrap().end,
            k("2001:db8::ffff:ffff:ffff:ffff")
        );
        assert_eq!(parse_entry("198.51.100.7").unwrap().allocatable(false), 1);
        assert_eq!(
            parse_entry("0.0.0.0/0").unwrap().allocatable(false),
            1 << 32
        );
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let err = |s: &str| parse_entry(s).unwrap_err();
        assert!(err("192.0.2.0/33").contains("prefix length 33 exceeds 32"));
        assert!(err("192.0.2.300").contains("not an IP address"));
        assert!(err("192.0.2.20-192.0.2.10").contains("ends before it starts"));
        assert!(err("192.0.2.1-2001:db8::1").contains("mixes IPv4 and IPv6"));
        assert!(err("192.0.2.0/x").contains("not a prefix length"));
        assert!(err("::/0").contains("IPv4-mapped"));
        assert!(err("::ffff:192.0.2.0/120").contains("IPv4-mapped"));
    }

    #[test]
    fn buggy_addresses_are_counted_not_enumerated() {
        let r = parse_entry("192.0.2.0/24").unwrap();
        assert_eq!(r.allocatable(true), 254);
        assert_eq!(
            parse_entry("198.18.0.0/16").unwrap().allocatable(true),
            65536 - 512
        );
        assert_eq!(
            parse_entry("192.0.2.255-192.0.3.0")
                .unwrap()
                .allocatable(true),
            0
        );
        assert_eq!(
            parse_entry("192.0.2.250-192.0.3.5")
                .unwrap()
                .allocatable(true),
            12 - 2
        );
        assert_eq!(
            parse_entry("2001:db8::/120").unwrap().allocatable(true),
            256
        );
        // Cross-check the formula against counting on many small ranges.
        for start in 0u128..600 {
            for len in [1u128, 2, 3, 255, 256, 257, 700] {
                let end = start + len - 1;
                let counted = (start..=end).filter(|x| is_buggy(*x)).count() as u128;
                assert_eq!(buggy_count(start, end), counted, "{start}..={end}");
            }
        }
    }
}
