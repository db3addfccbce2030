//! Which interface announces an IP: the L2Announcement's names or patterns, or by
//! default the interface whose subnet holds the IP.

use std::net::IpAddr;

/// An address configured on an interface, with its prefix length (as `ip addr` shows
/// `192.0.2.5/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceAddr {
    /// The address.
    pub ip: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6; larger is treated as a host
    /// route).
    pub prefix_len: u8,
}

impl InterfaceAddr {
    /// Whether `ip` is in this address's subnet (same family, same first `prefix_len`
    /// bits). IPv4-mapped IPv6 addresses count as IPv4.
    pub fn subnet_contains(&self, ip: IpAddr) -> bool {
        match (self.ip.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix_len.min(32),
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix_len.min(128))
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, len: u8) -> bool {
    let mask = match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    };
    a & mask == b & mask
}

/// A network interface as the speaker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddrs {
    /// Interface name (`eth0`).
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<InterfaceAddr>,
}

/// The default interface for `ip`: the one with an address whose subnet holds `ip`,
/// preferring the longest prefix (the most specific subnet), then the first listed.
/// Host routes (/32, /128) do not count: a VIP on `lo` is not a subnet to announce on.
pub fn default_interface(ip: IpAddr, interfaces: &[InterfaceAddrs]) -> Option<&str> {
    let mut best: Option<(&str, u8)> = None;
    for iface in interfaces {
        for addr in &iface.addrs {
            let host_len = if addr.ip.to_canonical().is_ipv4() {
                32
            } else {
                128
            };
            if addr.prefix_len >= host_len || !addr.subnet_contains(ip) {
                continue;
            }
            if best.is_none_or(|(_, len)| addr.prefix_len > len) {
                best = Some((&iface.name, addr.prefix_len));
            }
        }
    }
    best.map(|(name, _)| name)
}

/// Shell-style match of an interface name against a pattern from an L2Announcement:
/// `*` matches any run of characters, `?` any one character, everything else itself.
/// A pattern without wildcards is a plain name.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative glob with single-star backtracking: linear in practice, never
    // exponential, whatever the pattern.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> InterfaceAddr {
        let (ip, len) = s.split_once('/').unwrap();
        InterfaceAddr {
            ip: ip.parse().unwrap(),
            prefix_len: len.parse().unwrap(),
        }
    }

    fn iface(name: &str, addrs: &[&str]) -> InterfaceAddrs {
        InterfaceAddrs {
            name: name.into(),
            addrs: addrs.iter().map(|a| addr(a)).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_contain_their_addresses_only() {
        assert!(addr("192.0.2.5/24").subnet_contains(ip("192.0.2.200")));
        assert!(!addr("192.0.2.5/24").subnet_contains(ip("198.51.100.1")));
        assert!(addr("192.0.2.5/0").subnet_contains(ip("203.0.113.9")));
        assert!(addr("2001:db8::5/64").subnet_contains(ip("2001:db8::ffff")));
        assert!(!addr("2001:db8::5/64").subnet_contains(ip("2001:db8:0:1::1")));
        assert!(!addr("2001:db8::5/64").subnet_contains(ip("192.0.2.1")));
        assert!(addr("192.0.2.5/24").subnet_contains(ip("::ffff:192.0.2.9")));
    }

    #[test]
    fn the_most_specific_subnet_picks_the_interface() {
        let ifaces = [
            iface("lo", &["127.0.0.1/8", "192.0.2.10/32"]),
            iface("eth0", &["192.0.2.5/24", "2001:db8::5/64"]),
            iface("eth1", &["192.0.2.130/25"]),
        ];
        assert_eq!(default_interface(ip("192.0.2.10"), &ifaces), Some("eth0"));
        assert_eq!(default_interface(ip("192.0.2.200"), &ifaces), Some("eth1"));
        assert_eq!(default_interface(ip("2001:db8::1"), &ifaces), Some("eth0"));
        assert_eq!(default_interface(ip("198.51.100.1"), &ifaces), None);
    }

    #[test]
    fn interface_patterns_glob() {
        assert!(name_matches("eth0", "eth0"));
        assert!(!name_matches("eth0", "eth01"));
        assert!(name_matches("eth*", "eth0"));
        assert!(name_matches("eth*", "eth"));
        assert!(name_matches("enp?s*", "enp0s31f6"));
        assert!(!name_matches("en?s*", "enp0s31f6"));
        assert!(name_matches("*", "bond0.100"));
        assert!(name_matches("*.100", "bond0.100"));
        assert!(!name_matches("*.100", "bond0.200"));
        assert!(!name_matches("veth?", "veth10"));
        assert!(name_matches("a*b*c", "aXbYbZc"));
        assert!(!name_matches("", "eth0"));
        assert!(name_matches("", ""));
    }
}
