//! The speaker's decisions, pure: from the objects the watches hold and the set of live
//! speakers to which IPs exist, which nodes may announce each one, who owns it, and on
//! which interfaces this node announces what it owns.
//!
//! No client, no sockets, no clock: the glue gathers a [`World`] and applies the
//! [`Plan`]. Owner election itself is [`ironlb_l2::owners`] (rendezvous hashing), so
//! every speaker that sees the same objects and the same live set agrees.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ironlb_api::names::{LABEL_EXCLUDE_FROM_EXTERNAL_LB, LOAD_BALANCER_CLASS};
use ironlb_api::{IPPool, L2Announcement};
use ironlb_l2::{ElectionInput, InterfaceAddr, InterfaceAddrs, OwnedIps};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

/// Label EndpointSlices carry with their Service's name.
const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

// === inputs ===

/// What the watches hold, borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct World<'a> {
    /// Every Service (any type; only LoadBalancer ones and externalIPs matter).
    pub services: &'a [Service],
    /// Every EndpointSlice (for `externalTrafficPolicy: Local`).
    pub slices: &'a [EndpointSlice],
    /// Every Node.
    pub nodes: &'a [Node],
    /// Every L2Announcement.
    pub announcements: &'a [L2Announcement],
    /// Every IPPool (the pool of an IP is the one whose addresses hold it).
    pub pools: &'a [IPPool],
}

/// The speaker's own settings that shape decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Announce `spec.externalIPs` at all (off by default: CVE-2020-8554).
    pub external_ips_enabled: bool,
    /// Only externalIPs inside one of these are announced.
    pub external_ips_allowed: Vec<Cidr>,
}

/// A CIDR such as `192.0.2.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(InterfaceAddr);

impl Cidr {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.subnet_contains(ip)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, len) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a CIDR (expected address/prefix)"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{s}' is not a CIDR: bad address"))?;
        let prefix_len: u8 = len
            .parse()
            .map_err(|_| format!("'{s}' is not a CIDR: bad prefix length"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(format!("'{s}' is not a CIDR: prefix longer than {max}"));
        }
        Ok(Cidr(InterfaceAddr { ip, prefix_len }))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.ip, self.0.prefix_len)
    }
}

/// `namespace/name` of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// The key of `svc`.
    pub fn of(svc: &Service) -> ServiceKey {
        ServiceKey {
            namespace: svc.namespace().unwrap_or_default(),
            name: svc.name_any(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

// === outputs ===

/// Where an IP of a Service comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `status.loadBalancer.ingress` (assigned by the controller).
    LoadBalancer,
    /// `spec.externalIPs` (set by the user; opt-in).
    ExternalIp,
}

/// Why an IP is not announced by anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnnounced {
    /// No IPPool holds the IP and no L2Announcement covers every pool.
    NoPool,
    /// No L2Announcement selects the IP's pool.
    NoL2Announcement {
        /// The pool, if any holds the IP.
        pool: Option<String>,
    },
    /// Announcements select the pool, but no node passes the rules; one reason per
    /// node considered (bounded list in the message).
    NoEligibleNode {
        /// Node → why not.
        why: BTreeMap<String, Ineligible>,
    },
    /// Eligible nodes exist, but no speaker on them is live.
    NoLiveSpeaker {
        /// The eligible nodes.
        eligible: Vec<String>,
    },
}

impl NotAnnounced {
    /// A short CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            NotAnnounced::NoPool | NotAnnounced::NoL2Announcement { .. } => "NoL2Announcement",
            NotAnnounced::NoEligibleNode { .. } => "NoEligibleNode",
            NotAnnounced::NoLiveSpeaker { .. } => "NoLiveSpeaker",
        }
    }
}

impl fmt::Display for NotAnnounced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAnnounced::NoPool => {
                f.write_str("no IPPool holds it and no L2Announcement selects every pool")
            }
            NotAnnounced::NoL2Announcement { pool: Some(p) } => {
                write!(f, "no L2Announcement selects IPPool {p}")
            }
            NotAnnounced::NoL2Announcement { pool: None } => {
                f.write_str("no L2Announcement selects it")
            }
            NotAnnounced::NoEligibleNode { why } => {
                f.write_str("no eligible node")?;
                for (i, (node, reason)) in why.iter().enumerate() {
                    if i == 5 {
                        return write!(f, "; and {} more", why.len() - 5);
                    }
                    write!(f, "{} {node}: {reason}", if i == 0 { ":" } else { ";" })?;
                }
                Ok(())
            }
            NotAnnounced::NoLiveSpeaker { eligible } => write!(
                f,
                "no live speaker on the eligible nodes ({})",
                eligible.join(", ")
            ),
        }
    }
}

/// Why one node may not announce one IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// No L2Announcement for the pool selects the node.
    NotSelected,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    Excluded,
    /// Condition NetworkUnavailable is True.
    NetworkUnavailable,
    /// `externalTrafficPolicy: Local` and no ready endpoint of the Service on the node.
    NoLocalEndpoint(ServiceKey),
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::NotSelected => f.write_str("not selected by the L2Announcements"),
            Ineligible::Excluded => write!(f, "labelled {LABEL_EXCLUDE_FROM_EXTERNAL_LB}"),
            Ineligible::NetworkUnavailable => f.write_str("NetworkUnavailable"),
            Ineligible::NoLocalEndpoint(svc) => {
                write!(
                    f,
                    "no ready endpoint of {svc} (externalTrafficPolicy Local)"
                )
            }
        }
    }
}

/// An externalIP that is not announced, and why (a Warning Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedExternalIp {
    /// The Service.
    pub service: ServiceKey,
    /// The address as written (it may not even parse).
    pub ip: String,
    /// Why.
    pub why: String,
}

/// One IP to announce, with everything decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPlan {
    /// The Services that use it (several when shared), sorted.
    pub services: Vec<ServiceKey>,
    /// Its pool, if an IPPool holds it.
    pub pool: Option<String>,
    /// Nodes allowed to announce it (before liveness), sorted.
    pub eligible: Vec<String>,
    /// The elected owner among live eligible nodes, or why nobody announces it.
    pub owner: Result<String, NotAnnounced>,
}

/// Everything decided for one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every IP that some Service wants announced.
    pub ips: BTreeMap<IpAddr, IpPlan>,
    /// externalIPs refused by policy.
    pub refused: Vec<RefusedExternalIp>,
}

impl Plan {
    /// The IPs `node` owns.
    pub fn owned_by(&self, node: &str) -> impl Iterator<Item = IpAddr> + '_ {
        let node = node.to_string();
        self.ips
            .iter()
            .filter(move |(_, p)| p.owner.as_deref() == Ok(node.as_str()))
            .map(|(ip, _)| *ip)
    }

    /// The IPs of `service` with their plans, in address order.
    pub fn of_service<'a>(
        &'a self,
        service: &'a ServiceKey,
    ) -> impl Iterator<Item = (IpAddr, &'a IpPlan)> + 'a {
        self.ips
            .iter()
            .filter(move |(_, p)| p.services.contains(service))
            .map(|(ip, p)| (*ip, p))
    }

    /// Every Service with at least one IP to announce.
    pub fn services(&self) -> BTreeSet<ServiceKey> {
        self.ips
            .values()
            .flat_map(|p| p.services.iter().cloned())
            .collect()
    }
}

// === the decision ===

/// Decides everything for one pass: which IPs exist, who may announce each, who does.
/// `is_live` says which speakers are live (membership).
pub fn plan(world: &World<'_>, policy: &Policy, is_live: impl Fn(&str) -> bool) -> Plan {
    let mut wanted: BTreeMap<IpAddr, Vec<&Service>> = BTreeMap::new();
    let mut refused = Vec::new();
    for svc in world.services {
        let (ips, no) = service_ips(svc, policy);
        refused.extend(no);
        for (ip, _) in ips {
            wanted.entry(ip).or_default().push(svc);
        }
    }

    let mut ips = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut pending = Vec::new();
    for (ip, services) in wanted {
        let pool = pool_of(ip, world.pools);
        let announcements = announcements_for(pool, world.announcements);
        let mut keys: Vec<ServiceKey> = services.iter().map(|s| ServiceKey::of(s)).collect();
        keys.sort();
        keys.dedup();
        let pool_name = pool.map(|p| p.name_any());
        if announcements.is_empty() {
            let why = match pool {
                None => NotAnnounced::NoPool,
                Some(_) => NotAnnounced::NoL2Announcement {
                    pool: pool_name.clone(),
                },
            };
            ips.insert(
                ip,
                IpPlan {
                    services: keys,
                    pool: pool_name,
                    eligible: Vec::new(),
                    owner: Err(why),
                },
            );
            continue;
        }
        let mut eligible = Vec::new();
        let mut why = BTreeMap::new();
        for node in world.nodes {
            match node_eligible(node, &services, &announcements, world.slices) {
                Ok(()) => eligible.push(node.name_any()),
                Err(e) => {
                    why.insert(node.name_any(), e);
                }
            }
        }
        eligible.sort();
        if eligible.is_empty() {
            ips.insert(
                ip,
                IpPlan {
                    services: keys,
                    pool: pool_name,
                    eligible,
                    owner: Err(NotAnnounced::NoEligibleNode { why }),
                },
            );
            continue;
        }
        inputs.push(ElectionInput::new(ip, eligible.clone()));
        pending.push((ip, keys, pool_name, eligible));
    }

    let owners = ironlb_l2::owners(&inputs, &is_live);
    for (ip, services, pool, eligible) in pending {
        let owner = match owners.get(&ip.to_canonical()).copied().flatten() {
            Some(node) => Ok(node.to_string()),
            None => Err(NotAnnounced::NoLiveSpeaker {
                eligible: eligible.clone(),
            }),
        };
        ips.insert(
            ip,
            IpPlan {
                services,
                pool,
                eligible,
                owner,
            },
        );
    }
    Plan { ips, refused }
}

/// The IPs `svc` wants announced, and the externalIPs refused by policy.
///
/// LoadBalancer Services of our class (or no class) contribute the IPs of
/// `status.loadBalancer.ingress`; any Service contributes `spec.externalIPs` when the
/// policy enables them and they are inside an allowed CIDR.
pub fn service_ips(
    svc: &Service,
    policy: &Policy,
) -> (Vec<(IpAddr, Source)>, Vec<RefusedExternalIp>) {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    let Some(spec) = svc.spec.as_ref() else {
        return (out, refused);
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return (out, refused);
    }
    let ours = spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == LOAD_BALANCER_CLASS);
    if ours {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for entry in ingress.into_iter().flatten() {
            if let Some(ip) = entry.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
                out.push((ip.to_canonical(), Source::LoadBalancer));
            }
        }
    }
    for raw in spec.external_ips.iter().flatten() {
        let why = match raw.trim().parse::<IpAddr>() {
            Err(_) => Some("is not an IP address".to_string()),
            Ok(_) if !policy.external_ips_enabled => {
                Some("externalIPs are not announced (--externalips-enabled is off)".to_string())
            }
            Ok(ip) if !policy.external_ips_allowed.iter().any(|c| c.contains(ip)) => Some(format!(
                "is outside the allowed CIDRs ({})",
                policy
                    .external_ips_allowed
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Ok(ip) => {
                out.push((ip.to_canonical(), Source::ExternalIp));
                None
            }
        };
        if let Some(why) = why {
            refused.push(RefusedExternalIp {
                service: ServiceKey::of(svc),
                ip: raw.clone(),
                why,
            });
        }
    }
    out.sort_by_key(|(ip, _)| *ip);
    out.dedup_by_key(|(ip, _)| *ip);
    (out, refused)
}

/// The IPPool whose addresses hold `ip` (the first by name if pools overlap, which the
/// controller reports as Invalid anyway).
pub fn pool_of(ip: IpAddr, pools: &[IPPool]) -> Option<&IPPool> {
    let mut found: Vec<&IPPool> = pools
        .iter()
        .filter(|p| p.spec.addresses.iter().any(|a| entry_contains(a, ip)))
        .collect();
    found.sort_by_key(|p| p.name_any());
    found.into_iter().next()
}

/// Whether a pool entry (`a-b`, `x/n` or one IP) holds `ip`. Malformed entries hold
/// nothing.
pub fn entry_contains(entry: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let entry = entry.trim();
    if let Some((a, b)) = entry.split_once('-') {
        match (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => match (key(a), key(b), key(ip)) {
                (Some((fa, a)), Some((fb, b)), Some((f, k))) => {
                    fa == fb && fa == f && a <= k && k <= b
                }
                _ => false,
            },
            _ => false,
        }
    } else if entry.contains('/') {
        entry.parse::<Cidr>().is_ok_and(|c| c.contains(ip))
    } else {
        entry
            .parse::<IpAddr>()
            .is_ok_and(|e| e.to_canonical() == ip)
    }
}

/// Family and numeric value of an address, for range comparisons.
fn key(ip: IpAddr) -> Option<(u8, u128)> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Some((4, u128::from(u32::from(v4)))),
        IpAddr::V6(v6) => Some((6, u128::from(v6))),
    }
}

/// The L2Announcements that cover `pool`: by name in `ipPools`, by `ipPoolSelectors`,
/// or every pool when both are empty. An IP in no pool (an externalIP) is covered only
/// by announcements for every pool.
pub fn announcements_for<'a>(
    pool: Option<&IPPool>,
    announcements: &'a [L2Announcement],
) -> Vec<&'a L2Announcement> {
    announcements
        .iter()
        .filter(|a| a.metadata.deletion_timestamp.is_none())
        .filter(|a| {
            let spec = &a.spec;
            if spec.ip_pools.is_empty() && spec.ip_pool_selectors.is_empty() {
                return true;
            }
            let Some(pool) = pool else {
                return false;
            };
            spec.ip_pools.contains(&pool.name_any())
                || spec
                    .ip_pool_selectors
                    .iter()
                    .any(|s| selector_matches(s, pool.metadata.labels.as_ref()))
        })
        .collect()
}

/// Whether `node` may announce an IP used by `services` and covered by `announcements`.
pub fn node_eligible(
    node: &Node,
    services: &[&Service],
    announcements: &[&L2Announcement],
    slices: &[EndpointSlice],
) -> Result<(), Ineligible> {
    if node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_FROM_EXTERNAL_LB))
    {
        return Err(Ineligible::Excluded);
    }
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    if network_unavailable {
        return Err(Ineligible::NetworkUnavailable);
    }
    if !announcements.iter().any(|a| selects_node(a, node)) {
        return Err(Ineligible::NotSelected);
    }
    let name = node.name_any();
    for svc in services {
        if is_local(svc) && !has_ready_endpoint_on(svc, &name, slices) {
            return Err(Ineligible::NoLocalEndpoint(ServiceKey::of(svc)));
        }
    }
    Ok(())
}

/// Whether the announcement's node selectors pick `node` (no selectors: every node).
pub fn selects_node(announcement: &L2Announcement, node: &Node) -> bool {
    let selectors = &announcement.spec.node_selectors;
    selectors.is_empty()
        || selectors
            .iter()
            .any(|s| selector_matches(s, node.metadata.labels.as_ref()))
}

fn is_local(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// Whether an EndpointSlice of `svc` has a ready endpoint on `node`. An endpoint
/// without a `ready` condition counts as ready (the API's rule for consumers).
pub fn has_ready_endpoint_on(svc: &Service, node: &str, slices: &[EndpointSlice]) -> bool {
    let ns = svc.namespace();
    let name = svc.name_any();
    slices
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE_NAME))
                == Some(&name)
        })
        .flat_map(|s| s.endpoints.iter())
        .any(|e| {
            e.node_name.as_deref() == Some(node)
                && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
        })
}

fn selector_matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    ironlb_api::convert::label_selector(selector).matches(labels.unwrap_or(&empty))
}

// === this node's interfaces ===

/// The interfaces this node announces `ip` on: the union, over the L2Announcements
/// that cover the IP's pool and select this node, of their interface names/patterns
/// matched against `local`; an announcement without interfaces contributes the
/// interface whose subnet holds the IP. Sorted, no duplicates; empty when nothing
/// matches (the IP is then owned but cannot be announced: the caller says so).
pub fn interfaces_for(
    ip: IpAddr,
    node: &Node,
    world: &World<'_>,
    local: &[InterfaceAddrs],
    override_patterns: &[String],
) -> Vec<String> {
    let mut out = BTreeSet::new();
    let pool = pool_of(ip, world.pools);
    for a in announcements_for(pool, world.announcements) {
        if !selects_node(a, node) {
            continue;
        }
        let patterns = if override_patterns.is_empty() {
            &a.spec.interfaces
        } else {
            override_patterns
        };
        if patterns.is_empty() {
            if let Some(name) = ironlb_l2::default_interface(ip, local) {
                out.insert(name.to_string());
            }
            continue;
        }
        for iface in local {
            if iface.name != "lo"
                && patterns
                    .iter()
                    .any(|p| ironlb_l2::name_matches(p, &iface.name))
            {
                out.insert(iface.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// What this node announces: interface → owned IPs, and the owned IPs with no
/// interface to announce on.
pub fn owned_per_interface(
    plan: &Plan,
    me: &str,
    world: &World<'_>,
    local: &[InterfaceAddrs],
    override_patterns: &[String],
) -> (BTreeMap<String, OwnedIps>, Vec<IpAddr>) {
    let mut per: BTreeMap<String, OwnedIps> = BTreeMap::new();
    let mut stranded = Vec::new();
    let Some(node) = world.nodes.iter().find(|n| n.name_any() == me) else {
        return (per, plan.owned_by(me).collect());
    };
    for ip in plan.owned_by(me) {
        let ifaces = interfaces_for(ip, node, world, local, override_patterns);
        if ifaces.is_empty() {
            stranded.push(ip);
        }
        for i in ifaces {
            per.entry(i).or_default().insert(ip);
        }
    }
    (per, stranded)
}

// === peers ===

/// A speaker found through the API: its Pod's node, address and readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `spec.nodeName`.
    pub node: String,
    /// `status.podIP` (the node's IP for a hostNetwork Pod).
    pub addr: Option<IpAddr>,
    /// Ready condition True and not being deleted.
    pub ready: bool,
}

/// The speakers the API knows about, one per node (a Ready Pod wins over a not-ready
/// one on the same node, e.g. during a rolling update).
pub fn peers_from_pods(pods: &[Pod]) -> BTreeMap<String, Peer> {
    let mut out: BTreeMap<String, Peer> = BTreeMap::new();
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let status = pod.status.as_ref();
        let ready = pod.metadata.deletion_timestamp.is_none()
            && status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
        let addr = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let peer = Peer {
            node: node.clone(),
            addr,
            ready,
        };
        match out.get(&node) {
            Some(existing) if existing.ready && !peer.ready => {}
            _ => {
                out.insert(node, peer);
            }
        }
    }
    out
}

/// The one speaker that reports about Services nobody announces (the False condition
/// and its Event), so that N speakers do not write N copies: the lexically first live
/// speaker.
pub fn reporter<'a>(live: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    live.into_iter().min()
}

#[cfg(test)]
mod tests;
