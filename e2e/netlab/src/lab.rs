//! Building and removing a lab.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Once;

use serde::{Deserialize, Serialize};

use crate::exec::{bind_tcp_in, ip, kill_all_in, run_in_ok};
use crate::names::{
    belongs_to_named, ephemeral_owner, lab_namespaces, netns_exists, pid_alive, RunId,
};
use crate::probe::{arping, mac_of, ndisc, neighbours, Neighbour, ProbeReplies};
use crate::{NetlabError, Result};

/// A v4 range on the lab LAN that no host uses: for load-balancer pools and VIPs.
pub const POOL_V4: &str = "192.0.2.100-192.0.2.199";
/// A v6 range on the lab LAN that no host uses: for load-balancer pools and VIPs.
pub const POOL_V6: &str = "2001:db8:1::100-2001:db8:1::1ff";

const SUBNET_V4: &str = "192.0.2.0/24";
const SUBNET_V6: &str = "2001:db8:1::/64";
const BRIDGE: &str = "br0";
const HOST_IFACE: &str = "eth0";
const MAX_NODES: usize = 89;

/// What lab to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Number of node namespaces (1 to 89).
    pub nodes: usize,
    /// `None`: an ephemeral lab owned by this process. `Some(name)`: a lab meant to
    /// outlive it (see [`Lab::persist`], [`destroy_named`]).
    pub name: Option<String>,
}

impl LabConfig {
    /// An ephemeral lab with `n` nodes.
    pub fn nodes(n: usize) -> LabConfig {
        LabConfig {
            nodes: n,
            name: None,
        }
    }

    /// Gives the lab a fixed name (lowercase letters and digits, starting with a letter).
    pub fn named(mut self, name: &str) -> LabConfig {
        self.name = Some(name.to_string());
        self
    }
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig::nodes(3)
    }
}

/// One host on the LAN: the client or a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// `client`, `node1`, `node2`, ... (also a good Kubernetes node name).
    pub role: String,
    /// Its network namespace.
    pub netns: String,
    /// Its LAN interface inside `netns` (`eth0`).
    pub iface: String,
    /// The peer of `iface`: a port of the bridge in the LAN namespace (named like `role`).
    pub bridge_port: String,
    /// IPv4 address on the LAN (/24).
    pub ipv4: Ipv4Addr,
    /// IPv6 address on the LAN (/64).
    pub ipv6: Ipv6Addr,
    /// MAC of `iface`, lowercase.
    pub mac: String,
}

/// A lab as plain data, e.g. for `ironlb-lab up` to write as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabDescription {
    /// The run id embedded in every namespace name.
    pub id: String,
    /// Namespace holding the bridge.
    pub lan_netns: String,
    /// The bridge's name inside `lan_netns`.
    pub bridge: String,
    /// The client outside the cluster.
    pub client: Host,
    /// The nodes, `node1` first.
    pub nodes: Vec<Host>,
    /// The LAN's IPv4 subnet.
    pub subnet_v4: String,
    /// The LAN's IPv6 subnet.
    pub subnet_v6: String,
    /// Free v4 range for pools ([`POOL_V4`]).
    pub pool_v4: String,
    /// Free v6 range for pools ([`POOL_V6`]).
    pub pool_v6: String,
    /// How to run a command inside one of the namespaces.
    pub exec: String,
}

impl LabDescription {
    /// Every namespace of the lab, LAN last.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.nodes.iter().map(|h| h.netns.clone()).collect();
        all.push(self.client.netns.clone());
        all.push(self.lan_netns.clone());
        all
    }
}

/// A running lab. Dropping it kills every process inside its namespaces and deletes them
/// (never panicking); [`Lab::destroy`] does the same and reports errors.
#[derive(Debug)]
pub struct Lab {
    desc: LabDescription,
    /// Namespaces created so far (a half-built lab is cleaned up too).
    created: Vec<String>,
    armed: bool,
}

static SWEEP: Once = Once::new();

impl Lab {
    /// Builds the lab (see the crate docs for the topology). The first build in a process
    /// first sweeps away leftovers of crashed runs.
    pub fn build(cfg: &LabConfig) -> Result<Lab> {
        if cfg.nodes == 0 || cfg.nodes > MAX_NODES {
            return Err(NetlabError::Invalid(format!(
                "a lab has 1 to {MAX_NODES} nodes, not {}",
                cfg.nodes
            )));
        }
        SWEEP.call_once(|| match sweep_leftovers() {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "removed leftovers of crashed lab runs")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping lab leftovers"),
        });
        let id = match &cfg.name {
            Some(name) => RunId::named(name)?,
            None => RunId::fresh(),
        };
        let lan = id.netns("lan");
        if netns_exists(&lan) {
            return Err(NetlabError::Invalid(format!(
                "a lab '{id}' already exists ({lan}); remove it first"
            )));
        }
        let placeholder = |role: &str, n: u8| Host {
            role: role.to_string(),
            netns: id.netns(role),
            iface: HOST_IFACE.to_string(),
            bridge_port: role.to_string(),
            ipv4: Ipv4Addr::new(192, 0, 2, n),
            // Same digits as the v4 octet, read as hex: .11 -> ::11.
            ipv6: format!("2001:db8:1::{n}")
                .parse()
                .expect("valid v6 literal"),
            mac: String::new(),
        };
        let mut lab = Lab {
            desc: LabDescription {
                id: id.to_string(),
                lan_netns: lan.clone(),
                bridge: BRIDGE.to_string(),
                client: placeholder("client", 1),
                nodes: (1..=cfg.nodes)
                    .map(|i| placeholder(&format!("node{i}"), 10 + i as u8))
                    .collect(),
                subnet_v4: SUBNET_V4.to_string(),
                subnet_v6: SUBNET_V6.to_string(),
                pool_v4: POOL_V4.to_string(),
                pool_v6: POOL_V6.to_string(),
                exec: "ip netns exec <netns> <command> [args...]".to_string(),
            },
            created: Vec::new(),
            armed: true,
        };
        // On error `lab` drops here and removes what was created.
        lab.create_lan()?;
        let mut client = lab.desc.client.clone();
        lab.create_host(&mut client)?;
        lab.desc.client = client;
        for i in 0..lab.desc.nodes.len() {
            let mut node = lab.desc.nodes[i].clone();
            lab.create_host(&mut node)?;
            lab.desc.nodes[i] = node;
        }
        tracing::info!(id = %lab.desc.id, nodes = cfg.nodes, "lab built");
        Ok(lab)
    }

    fn add_netns(&mut self, name: &str) -> Result<()> {
        ip(["netns", "add", name])?;
        self.created.push(name.to_string());
        // Loopback up; no duplicate address detection on interfaces created later; and
        // keep v6 addresses across a link down/up, as v4 ones are kept.
        run_in_ok(name, "ip", ["link", "set", "lo", "up"])?;
        sysctl(
            name,
            &[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.keep_addr_on_down=1",
                "net.ipv6.conf.default.keep_addr_on_down=1",
            ],
        )
    }

    fn create_lan(&mut self) -> Result<()> {
        let lan = self.desc.lan_netns.clone();
        self.add_netns(&lan)?;
        // The switch itself has no addresses: no IPv6 on its ports either.
        sysctl(
            &lan,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        // Snooping off: a Neighbor Solicitation to a solicited-node group must reach every
        // node even if the speaker that owns the VIP never sent an MLD report.
        ip([
            "-n",
            &lan,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(["-n", &lan, "link", "set", BRIDGE, "up"])?;
        Ok(())
    }

    fn create_host(&mut self, host: &mut Host) -> Result<()> {
        let lan = self.desc.lan_netns.clone();
        self.add_netns(&host.netns)?;
        ip([
            "-n",
            &lan,
            "link",
            "add",
            &host.bridge_port,
            "type",
            "veth",
            "peer",
            "name",
            &host.iface,
            "netns",
            &host.netns,
        ])?;
        ip([
            "-n",
            &lan,
            "link",
            "set",
            &host.bridge_port,
            "master",
            BRIDGE,
            "up",
        ])?;
        let ns = host.netns.as_str();
        let v4 = format!("{}/24", host.ipv4);
        let v6 = format!("{}/64", host.ipv6);
        ip(["-n", ns, "addr", "add", &v4, "dev", &host.iface])?;
        ip([
            "-n",
            ns,
            "-6",
            "addr",
            "add",
            &v6,
            "dev",
            &host.iface,
            "nodad",
        ])?;
        ip(["-n", ns, "link", "set", &host.iface, "up"])?;
        host.mac = mac_of(ns, &host.iface)?;
        Ok(())
    }

    // === accessors ===

    /// The lab as plain data.
    pub fn description(&self) -> &LabDescription {
        &self.desc
    }

    /// The run id embedded in the namespace names.
    pub fn id(&self) -> &str {
        &self.desc.id
    }

    /// The namespace holding the bridge.
    pub fn lan_netns(&self) -> &str {
        &self.desc.lan_netns
    }

    /// The client.
    pub fn client(&self) -> &Host {
        &self.desc.client
    }

    /// All nodes, `node1` first.
    pub fn nodes(&self) -> &[Host] {
        &self.desc.nodes
    }

    /// Node number `n`, counting from 1 like the names (`node(1)` is `node1`).
    /// Panics when there is no such node: a test bug.
    pub fn node(&self, n: usize) -> &Host {
        assert!(
            (1..=self.desc.nodes.len()).contains(&n),
            "the lab has nodes 1..={}, not {n}",
            self.desc.nodes.len()
        );
        &self.desc.nodes[n - 1]
    }

    /// The host with this role (`client`, `node2`, ...).
    pub fn host(&self, role: &str) -> Option<&Host> {
        std::iter::once(&self.desc.client)
            .chain(&self.desc.nodes)
            .find(|h| h.role == role)
    }

    /// Binds `addr` (typically `127.0.0.1:PORT`) inside every node's namespace, returning
    /// `(role, listener)` pairs: one in-process server (the embedded API server) can then
    /// serve all nodes at the same local address.
    pub fn bind_tcp_on_nodes(&self, addr: SocketAddr) -> Result<Vec<(String, TcpListener)>> {
        self.desc
            .nodes
            .iter()
            .map(|n| Ok((n.role.clone(), bind_tcp_in(&n.netns, addr)?)))
            .collect()
    }

    // === VIPs, links, failures ===

    /// Puts `vip` on `node`'s `lo` (/32 or /128) the way kube-proxy's IPVS mode does:
    /// the node accepts traffic for it, and with `arp_ignore=1` / `arp_announce=2` its
    /// kernel never answers ARP for it nor uses it as an ARP source, leaving the answer
    /// to a speaker. (For IPv6 the kernel already ignores solicitations for addresses on
    /// other interfaces; see the crate docs.)
    pub fn add_vip(&self, node: &Host, vip: IpAddr) -> Result<()> {
        let ns = node.netns.as_str();
        let iface = node.iface.as_str();
        sysctl(
            ns,
            &[
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                &format!("net.ipv4.conf.{iface}.arp_ignore=1"),
                &format!("net.ipv4.conf.{iface}.arp_announce=2"),
            ],
        )?;
        let cidr = vip_cidr(vip);
        match vip {
            IpAddr::V4(_) => ip(["-n", ns, "addr", "add", &cidr, "dev", "lo"])?,
            IpAddr::V6(_) => ip(["-n", ns, "-6", "addr", "add", &cidr, "dev", "lo", "nodad"])?,
        };
        Ok(())
    }

    /// Removes a VIP added by [`Lab::add_vip`].
    pub fn remove_vip(&self, node: &Host, vip: IpAddr) -> Result<()> {
        ip([
            "-n",
            &node.netns,
            "addr",
            "del",
            &vip_cidr(vip),
            "dev",
            "lo",
        ])?;
        Ok(())
    }

    /// Plugs (`up`) or unplugs a host's cable: sets its bridge port up or down, so the
    /// host's own interface loses carrier as with a real cable pull.
    pub fn set_link(&self, host: &Host, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip([
            "-n",
            &self.desc.lan_netns,
            "link",
            "set",
            &host.bridge_port,
            state,
        ])?;
        Ok(())
    }

    /// Sets the host's own interface (inside its namespace) up or down, as an
    /// administrator on the host would.
    pub fn set_host_link(&self, host: &Host, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(["-n", &host.netns, "link", "set", &host.iface, state])?;
        Ok(())
    }

    /// Pulls the plug on a node: unplugs its cable and SIGKILLs every process inside its
    /// namespace. Returns how many processes were killed. [`Lab::set_link`] with `true`
    /// plugs it back in (restart its processes yourself).
    pub fn kill_node(&self, node: &Host) -> Result<usize> {
        self.set_link(node, false)?;
        kill_all_in(&node.netns)
    }

    // === looking at the LAN from the client ===

    /// The client's neighbour table.
    pub fn client_neighbours(&self) -> Result<Vec<Neighbour>> {
        neighbours(&self.desc.client.netns)
    }

    /// The client's neighbour entry for `ip`, if any.
    pub fn client_neighbour(&self, ip: IpAddr) -> Result<Option<Neighbour>> {
        Ok(self.client_neighbours()?.into_iter().find(|n| n.ip == ip))
    }

    /// Empties the client's neighbour table, so its next packet to an IP resolves afresh.
    pub fn flush_client_neighbours(&self) -> Result<()> {
        ip(["-n", &self.desc.client.netns, "neigh", "flush", "all"])?;
        Ok(())
    }

    /// ARP-probes `vip` from the client `count` times; every reply counted.
    pub fn arping_from_client(&self, vip: Ipv4Addr, count: u32) -> Result<ProbeReplies> {
        arping(&self.desc.client.netns, &self.desc.client.iface, vip, count)
    }

    /// Neighbor-Solicits `vip` from the client; every advertisement counted.
    pub fn ndisc_from_client(&self, vip: Ipv6Addr) -> Result<ProbeReplies> {
        ndisc(&self.desc.client.netns, &self.desc.client.iface, vip)
    }

    // === lifetime ===

    /// Keeps the lab after this value is gone (for `ironlb-lab up`) and returns its
    /// description. Only named labs should outlive their process: an ephemeral one would
    /// be swept by the next run once this process exits.
    pub fn persist(mut self) -> LabDescription {
        self.armed = false;
        self.desc.clone()
    }

    /// Removes the lab now, reporting the first error (after trying everything).
    pub fn destroy(mut self) -> Result<()> {
        self.armed = false;
        teardown(&std::mem::take(&mut self.created))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = teardown(&self.created) {
                tracing::warn!(lab = %self.desc.id, error = %e, "removing the lab");
            }
        }
    }
}

fn vip_cidr(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn sysctl(netns: &str, settings: &[&str]) -> Result<()> {
    let mut args = vec!["-q", "-w"];
    args.extend_from_slice(settings);
    run_in_ok(netns, "sysctl", args)?;
    Ok(())
}

/// Kills every process in each namespace, then deletes it; tries all, returns the first
/// error. Deleting a host's namespace also deletes its veth pair.
fn teardown(namespaces: &[String]) -> Result<()> {
    let mut first_error = None;
    // Hosts before the LAN: reverse creation order.
    for ns in namespaces.iter().rev() {
        if !netns_exists(ns) {
            continue;
        }
        let _ = kill_all_in(ns);
        if let Err(e) = ip(["netns", "del", ns]) {
            // Someone else (a concurrent sweep) may have won the race.
            if netns_exists(ns) {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes the namespaces of ephemeral labs whose owning process is gone (crashed or
/// killed runs). Labs of live processes and named labs are left alone. Returns the
/// namespaces removed.
pub fn sweep_leftovers() -> Result<Vec<String>> {
    let me = std::process::id();
    let stale: Vec<String> = lab_namespaces()?
        .into_iter()
        .filter(|ns| ephemeral_owner(ns).is_some_and(|pid| pid != me && !pid_alive(pid)))
        .collect();
    teardown(&stale)?;
    Ok(stale)
}

/// Removes the named lab `name` (what `ironlb-lab down` does); returns the namespaces
/// removed. No error when there is nothing to remove.
pub fn destroy_named(name: &str) -> Result<Vec<String>> {
    RunId::named(name)?;
    let mut mine: Vec<String> = lab_namespaces()?
        .into_iter()
        .filter(|ns| belongs_to_named(ns, name))
        .collect();
    // teardown goes in reverse: put the LAN first so it is removed last.
    mine.sort_by_key(|ns| !ns.ends_with("-lan"));
    teardown(&mine)?;
    Ok(mine)
}
