//! Plain data in and out of the allocator.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::selector::{LabelSelector, Labels};

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A Service's identity: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One port a Service exposes; two Services sharing an IP must not expose the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl Port {
    /// A TCP port.
    pub fn tcp(port: u16) -> Self {
        Port {
            protocol: Protocol::Tcp,
            port,
        }
    }
    /// A UDP port.
    pub fn udp(port: u16) -> Self {
        Port {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        write!(f, "{p}/{}", self.port)
    }
}

/// `spec.ipFamilyPolicy` of the Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpFamilyPolicy {
    /// One address, of the first family in `ip_families`.
    #[default]
    SingleStack,
    /// Both families when the pool can, else the first family alone.
    PreferDualStack,
    /// Both families or an error; never one alone.
    RequireDualStack,
}

/// `spec.externalTrafficPolicy`, which decides who may share an IP (MetalLB's rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Any node forwards: shares with other Cluster Services of the same key.
    #[default]
    Cluster,
    /// Only nodes with local endpoints answer, so Services sharing an IP must have
    /// the same endpoints: shares only with Local Services with the same selector.
    Local {
        /// The Service's pod selector in a canonical form (e.g. sorted `k=v,k=v`).
        selector: String,
    },
}

/// What one Service asks for. Built by the controller from the Service and its
/// Namespace; the allocator does not parse annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationRequest {
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ipFamilies` in order (the first is primary). Empty means `[V4]`.
    pub ip_families: Vec<Family>,
    /// Specific addresses asked for (annotation or `spec.loadBalancerIP`), at most
    /// one per family. When given, they are the whole answer.
    pub requested_ips: Vec<IpAddr>,
    /// Explicit pool name (annotation). Selectors and `autoAssign` do not apply then.
    pub pool: Option<String>,
    /// Sharing key (allow-shared-ip annotation).
    pub sharing_key: Option<String>,
    /// External traffic policy, part of the sharing rule.
    pub traffic_policy: TrafficPolicy,
    /// Ports the Service exposes (for the sharing rule).
    pub ports: Vec<Port>,
    /// The Service's labels, matched against pools' service selectors.
    pub service_labels: Labels,
    /// The Namespace's labels, matched against pools' namespace selectors.
    pub namespace_labels: Labels,
}

impl AllocationRequest {
    /// Asks for this exact address (call twice for dual-stack).
    pub fn requesting(mut self, ip: IpAddr) -> Self {
        self.requested_ips.push(ip);
        self
    }
    /// Asks for a pool by name.
    pub fn from_pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }
    /// Sets the sharing key.
    pub fn sharing(mut self, key: impl Into<String>) -> Self {
        self.sharing_key = Some(key.into());
        self
    }
    /// Sets the exposed ports.
    pub fn ports(mut self, ports: impl IntoIterator<Item = Port>) -> Self {
        self.ports = ports.into_iter().collect();
        self
    }
    /// Sets family policy and families.
    pub fn families(
        mut self,
        policy: IpFamilyPolicy,
        families: impl IntoIterator<Item = Family>,
    ) -> Self {
        self.ip_family_policy = policy;
        self.ip_families = families.into_iter().collect();
        self
    }
    /// Sets `externalTrafficPolicy: Local` with the Service's pod selector.
    pub fn local(mut self, selector: impl Into<String>) -> Self {
        self.traffic_policy = TrafficPolicy::Local {
            selector: selector.into(),
        };
        self
    }
    /// Sets the Service's labels.
    pub fn service_labels<K: Into<String>, V: Into<String>>(
        mut self,
        l: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.service_labels = l.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }
    /// Sets the Namespace's labels.
    pub fn namespace_labels<K: Into<String>, V: Into<String>>(
        mut self,
        l: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.namespace_labels = l.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }
}

/// One address held by a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedIp {
    /// The address.
    pub ip: IpAddr,
    /// The pool it came from.
    pub pool: Arc<str>,
}

/// What a Service holds: one address per family, primary family first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The addresses, in the order of the request's families.
    pub ips: Vec<AssignedIp>,
}

impl Assignment {
    /// Just the addresses.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ips.iter().map(|a| a.ip).collect()
    }
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

/// An IPPool as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Pool name (unique).
    pub name: String,
    /// Entries as written: CIDR, `a-b` range or single IP, v4 and v6 mixed.
    pub addresses: Vec<String>,
    /// Whether Services without an explicit pool or IP may get addresses here.
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 and .255.
    pub avoid_buggy_ips: bool,
    /// Lower first.
    pub priority: i32,
    /// Services matched for automatic assignment (None: all).
    pub service_selector: Option<LabelSelector>,
    /// Namespaces matched for automatic assignment (None: all).
    pub namespace_selector: Option<LabelSelector>,
    /// Creation time (e.g. Unix seconds) when known. When pools overlap, the one
    /// that was already valid wins, then the older, then the smaller name, so a new
    /// overlapping pool never takes addresses from an existing one, even after a restart.
    pub created: Option<i64>,
}

impl PoolSpec {
    /// An auto-assign pool with default settings.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        addresses: impl IntoIterator<Item = S>,
    ) -> Self {
        PoolSpec {
            name: name.into(),
            addresses: addresses.into_iter().map(Into::into).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            priority: 0,
            service_selector: None,
            namespace_selector: None,
            created: None,
        }
    }
}

/// A Service that lost addresses because the pools or reserved addresses changed.
/// The lost addresses are already released; allocate again to replace them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stranded {
    /// The Service.
    pub service: ServiceKey,
    /// Addresses taken away.
    pub released: Vec<IpAddr>,
    /// Why, for the Warning Event.
    pub reason: String,
}

/// Result of [`crate::Allocator::set_pools`] / [`crate::Allocator::set_reserved`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolsReport {
    /// Every pool by name: `Ok` when usable, `Err(message)` when Invalid.
    pub pools: BTreeMap<String, Result<(), String>>,
    /// Assignments released by the change, sorted by Service.
    pub stranded: Vec<Stranded>,
}

/// Counts for an IPPool's status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pool name.
    pub name: String,
    /// `None` when the pool is usable, else why it is Invalid.
    pub invalid: Option<String>,
    /// Addresses that may be handed out, by family (`[v4, v6]`), after removing
    /// buggy addresses (when avoided) and reserved ones.
    pub total: [u128; 2],
    /// Distinct addresses in use, by family.
    pub assigned: [u64; 2],
    /// `total - assigned`, by family.
    pub available: [u128; 2],
    /// Reserved addresses (Nodes' own) inside the pool, sorted.
    pub reserved: Vec<IpAddr>,
}

impl PoolStats {
    /// `available` as a saturating `u64`, for metrics.
    pub fn available_saturating(&self, family: Family) -> u64 {
        u64::try_from(self.available[family.index()]).unwrap_or(u64::MAX)
    }
}

/// Parses a requested-IPs annotation value (`ironlb.io/ips`, MetalLB's
/// `loadBalancerIPs`): addresses separated by commas, spaces allowed. The message
/// names the bad entry, for a Warning Event that names the annotation.
pub fn parse_ip_list(value: &str) -> Result<Vec<IpAddr>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| format!("'{s}' is not an IP address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_lists_parse_with_spaces_and_say_which_entry_is_bad() {
        let got = parse_ip_list(" 192.0.2.1, 2001:db8::1 ,").unwrap();
        assert_eq!(
            got,
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(parse_ip_list("").unwrap().is_empty());
        assert_eq!(
            parse_ip_list("192.0.2.1,banana").unwrap_err(),
            "'banana' is not an IP address"
        );
    }
}
