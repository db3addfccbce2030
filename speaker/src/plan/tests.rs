use super::*;
use ironlb_api::{IPPoolSpec, L2AnnouncementSpec};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, NodeCondition, NodeStatus, PodCondition, PodSpec,
    PodStatus, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

// === fixtures that read like sentences ===

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn labelled(mut n: Node, pairs: &[(&str, &str)]) -> Node {
    n.metadata.labels = labels(pairs);
    n
}

fn network_unavailable(mut n: Node) -> Node {
    n.status = Some(NodeStatus {
        conditions: Some(vec![NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    n
}

fn lb(name: &str, ips: &[&str]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|i| LoadBalancerIngress {
                            ip: Some(i.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }),
    }
}

fn local(mut svc: Service) -> Service {
    svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    svc
}

fn with_external_ips(mut svc: Service, ips: &[&str]) -> Service {
    svc.spec.as_mut().unwrap().external_ips = Some(ips.iter().map(|s| s.to_string()).collect());
    svc
}

fn pool(name: &str, addresses: &[&str]) -> IPPool {
    let spec: IPPoolSpec =
        serde_json::from_value(serde_json::json!({ "addresses": addresses })).unwrap();
    IPPool::new(name, spec)
}

fn announce_all(name: &str) -> L2Announcement {
    L2Announcement::new(name, L2AnnouncementSpec::default())
}

fn announce_pools(name: &str, pools: &[&str]) -> L2Announcement {
    L2Announcement::new(
        name,
        L2AnnouncementSpec {
            ip_pools: pools.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

fn on_nodes(mut a: L2Announcement, pairs: &[(&str, &str)]) -> L2Announcement {
    a.spec.node_selectors.push(LabelSelector {
        match_labels: labels(pairs),
        ..Default::default()
    });
    a
}

fn on_interfaces(mut a: L2Announcement, patterns: &[&str]) -> L2Announcement {
    a.spec.interfaces = patterns.iter().map(|s| s.to_string()).collect();
    a
}

fn endpoints_of(svc: &str, ready_on: &[&str], not_ready_on: &[&str]) -> EndpointSlice {
    let ep = |node: &str, ready: bool| Endpoint {
        addresses: vec!["198.18.1.1".into()],
        node_name: Some(node.into()),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc}-abc")),
            namespace: Some("default".into()),
            labels: labels(&[(LABEL_SERVICE_NAME, svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ready_on
            .iter()
            .map(|n| ep(n, true))
            .chain(not_ready_on.iter().map(|n| ep(n, false)))
            .collect(),
        ports: None,
    }
}

fn all_live(_: &str) -> bool {
    true
}

struct Fixture {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    nodes: Vec<Node>,
    announcements: Vec<L2Announcement>,
    pools: Vec<IPPool>,
}

impl Fixture {
    /// Three plain nodes, pool `lan` = 192.0.2.100-192.0.2.199 + 2001:db8:1::/64,
    /// announced everywhere.
    fn lan() -> Fixture {
        Fixture {
            services: Vec::new(),
            slices: Vec::new(),
            nodes: vec![node("node1"), node("node2"), node("node3")],
            announcements: vec![announce_all("everywhere")],
            pools: vec![pool("lan", &["192.0.2.100-192.0.2.199", "2001:db8:1::/64"])],
        }
    }

    fn world(&self) -> World<'_> {
        World {
            services: &self.services,
            slices: &self.slices,
            nodes: &self.nodes,
            announcements: &self.announcements,
            pools: &self.pools,
        }
    }

    fn plan(&self, live: impl Fn(&str) -> bool) -> Plan {
        plan(&self.world(), &Policy::default(), live)
    }
}

// === which IPs ===

#[test]
fn a_load_balancer_ip_in_an_announced_pool_gets_an_owner() {
    let mut f = Fixture::lan();
    f.services.push(lb("web", &["192.0.2.100"]));
    let p = f.plan(all_live);
    let entry = &p.ips[&ip("192.0.2.100")];
    assert_eq!(entry.pool.as_deref(), Some("lan"));
    assert_eq!(entry.eligible, ["node1", "node2", "node3"]);
    let owner = entry.owner.clone().unwrap();
    assert_eq!(p.owned_by(&owner).collect::<Vec<_>>(), [ip("192.0.2.100")]);
}

#[test]
fn services_of_another_class_or_type_are_not_announced() {
    let mut f = Fixture::lan();
    let mut other = lb("other", &["192.0.2.101"]);
    other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    let mut cluster_ip = lb("plain", &["192.0.2.102"]);
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    f.services = vec![other, cluster_ip];
    assert!(f.plan(all_live).ips.is_empty());
}

#[test]
fn without_a_matching_l2announcement_an_ip_is_not_announced_and_says_why() {
    let mut f = Fixture::lan();
    f.announcements = vec![announce_pools("only-dmz", &["dmz"])];
    f.services.push(lb("web", &["192.0.2.100"]));
    let p = f.plan(all_live);
    let why = p.ips[&ip("192.0.2.100")].owner.clone().unwrap_err();
    assert_eq!(why.reason(), "NoL2Announcement");
    assert_eq!(why.to_string(), "no L2Announcement selects IPPool lan");
}

#[test]
fn pools_are_selected_by_name_or_by_label_selector() {
    let mut f = Fixture::lan();
    f.pools[0].metadata.labels = labels(&[("zone", "a")]);
    let mut by_label = L2Announcement::new("zone-a", L2AnnouncementSpec::default());
    by_label.spec.ip_pool_selectors.push(LabelSelector {
        match_labels: labels(&[("zone", "a")]),
        ..Default::default()
    });
    f.announcements = vec![by_label];
    f.services.push(lb("web", &["192.0.2.100"]));
    assert!(f.plan(all_live).ips[&ip("192.0.2.100")].owner.is_ok());

    f.announcements = vec![announce_pools("by-name", &["lan"])];
    assert!(f.plan(all_live).ips[&ip("192.0.2.100")].owner.is_ok());
}

#[test]
fn an_ip_in_no_pool_is_covered_only_by_announcements_for_every_pool() {
    let mut f = Fixture::lan();
    f.services.push(lb("web", &["203.0.113.5"]));
    assert!(f.plan(all_live).ips[&ip("203.0.113.5")].owner.is_ok());
    f.announcements = vec![announce_pools("lan-only", &["lan"])];
    let why = f.plan(all_live).ips[&ip("203.0.113.5")]
        .owner
        .clone()
        .unwrap_err();
    assert_eq!(why, NotAnnounced::NoPool);
}

// === eligibility ===

#[test]
fn node_selectors_limit_the_eligible_nodes() {
    let mut f = Fixture::lan();
    f.nodes[1] = labelled(node("node2"), &[("lb", "yes")]);
    f.announcements = vec![on_nodes(announce_all("lb-nodes"), &[("lb", "yes")])];
    f.services.push(lb("web", &["192.0.2.100"]));
    let p = f.plan(all_live);
    assert_eq!(p.ips[&ip("192.0.2.100")].eligible, ["node2"]);
    assert_eq!(p.ips[&ip("192.0.2.100")].owner, Ok("node2".to_string()));
}

#[test]
fn excluded_and_network_unavailable_nodes_are_not_eligible() {
    let mut f = Fixture::lan();
    f.nodes[0] = labelled(node("node1"), &[(LABEL_EXCLUDE_FROM_EXTERNAL_LB, "")]);
    f.nodes[1] = network_unavailable(node("node2"));
    f.services.push(lb("web", &["192.0.2.100"]));
    let p = f.plan(all_live);
    assert_eq!(p.ips[&ip("192.0.2.100")].eligible, ["node3"]);

    f.nodes[2] = network_unavailable(node("node3"));
    let why = f.plan(all_live).ips[&ip("192.0.2.100")]
        .owner
        .clone()
        .unwrap_err();
    assert_eq!(why.reason(), "NoEligibleNode");
    let text = why.to_string();
    assert!(
        text.contains("node1: labelled node.kubernetes.io/exclude"),
        "{text}"
    );
    assert!(text.contains("node2: NetworkUnavailable"), "{text}");
}

#[test]
fn traffic_policy_local_needs_a_ready_endpoint_on_the_node() {
    let mut f = Fixture::lan();
    f.services.push(local(lb("web", &["192.0.2.100"])));
    f.slices.push(endpoints_of("web", &["node3"], &["node1"]));
    let p = f.plan(all_live);
    assert_eq!(p.ips[&ip("192.0.2.100")].eligible, ["node3"]);
    assert_eq!(p.ips[&ip("192.0.2.100")].owner, Ok("node3".to_string()));

    f.slices.clear();
    let why = f.plan(all_live).ips[&ip("192.0.2.100")]
        .owner
        .clone()
        .unwrap_err();
    assert!(
        why.to_string().contains("no ready endpoint of default/web"),
        "{why}"
    );
}

#[test]
fn endpoints_of_another_service_do_not_count() {
    let mut f = Fixture::lan();
    f.services.push(local(lb("web", &["192.0.2.100"])));
    f.slices.push(endpoints_of("db", &["node1"], &[]));
    assert!(f.plan(all_live).ips[&ip("192.0.2.100")].eligible.is_empty());
}

#[test]
fn a_shared_ip_needs_a_node_eligible_for_every_service_on_it() {
    let mut f = Fixture::lan();
    f.services.push(local(lb("web", &["192.0.2.100"])));
    f.services.push(local(lb("api", &["192.0.2.100"])));
    f.slices.push(endpoints_of("web", &["node1", "node2"], &[]));
    f.slices.push(endpoints_of("api", &["node2", "node3"], &[]));
    let p = f.plan(all_live);
    let entry = &p.ips[&ip("192.0.2.100")];
    assert_eq!(entry.services.len(), 2);
    assert_eq!(entry.owner, Ok("node2".to_string()));
}

// === externalIPs (CVE-2020-8554) ===

#[test]
fn external_ips_are_refused_unless_enabled_and_inside_an_allowed_cidr() {
    let svc = with_external_ips(lb("web", &[]), &["198.51.100.7", "203.0.113.9", "bogus"]);
    let (ips, refused) = service_ips(&svc, &Policy::default());
    assert!(ips.is_empty());
    assert_eq!(refused.len(), 3);
    assert!(refused[0].why.contains("--externalips-enabled is off"));

    let policy = Policy {
        external_ips_enabled: true,
        external_ips_allowed: vec!["198.51.100.0/24".parse().unwrap()],
    };
    let (ips, refused) = service_ips(&svc, &policy);
    assert_eq!(ips, [(ip("198.51.100.7"), Source::ExternalIp)]);
    let refused: Vec<&str> = refused.iter().map(|r| r.ip.as_str()).collect();
    assert_eq!(refused, ["203.0.113.9", "bogus"]);
}

#[test]
fn an_allowed_external_ip_is_planned_like_a_load_balancer_ip() {
    let mut f = Fixture::lan();
    let mut svc = with_external_ips(lb("web", &[]), &["198.51.100.7"]);
    svc.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    f.services.push(svc);
    let policy = Policy {
        external_ips_enabled: true,
        external_ips_allowed: vec!["198.51.100.0/24".parse().unwrap()],
    };
    let p = plan(&f.world(), &policy, all_live);
    assert!(p.ips[&ip("198.51.100.7")].owner.is_ok());
    assert!(p.refused.is_empty());
}

#[test]
fn cidrs_parse_and_reject_nonsense() {
    assert!("2001:db8::/32"
        .parse::<Cidr>()
        .unwrap()
        .contains(ip("2001:db8:1::5")));
    assert!("192.0.2.0/33".parse::<Cidr>().is_err());
    assert!("192.0.2.0".parse::<Cidr>().is_err());
}

#[test]
fn pool_entries_hold_ranges_cidrs_and_single_ips() {
    assert!(entry_contains("192.0.2.100-192.0.2.199", ip("192.0.2.150")));
    assert!(!entry_contains(
        "192.0.2.100-192.0.2.199",
        ip("192.0.2.200")
    ));
    assert!(!entry_contains(
        "192.0.2.100-192.0.2.199",
        ip("2001:db8::1")
    ));
    assert!(entry_contains(" 2001:db8::/64 ", ip("2001:db8::ffff")));
    assert!(entry_contains("198.51.100.1", ip("::ffff:198.51.100.1")));
    assert!(!entry_contains("garbage", ip("198.51.100.1")));
}

// === liveness and ownership changes ===

#[test]
fn a_dead_owner_moves_only_its_ips() {
    let mut f = Fixture::lan();
    for i in 0..30 {
        f.services
            .push(lb(&format!("svc{i}"), &[&format!("192.0.2.{}", 100 + i)]));
    }
    let before = f.plan(all_live);
    let victim = before.ips.values().next().unwrap().owner.clone().unwrap();
    let after = f.plan(|n| n != victim);
    for (ip, old) in &before.ips {
        let new = &after.ips[ip].owner;
        if old.owner.as_deref() == Ok(victim.as_str()) {
            assert!(new.is_ok() && new.as_deref() != Ok(victim.as_str()));
        } else {
            assert_eq!(new, &old.owner, "{ip} moved although its owner lives");
        }
    }
}

#[test]
fn with_no_live_speaker_nobody_owns_and_the_reason_names_the_eligible_nodes() {
    let mut f = Fixture::lan();
    f.services.push(lb("web", &["192.0.2.100"]));
    let why = f.plan(|_| false).ips[&ip("192.0.2.100")]
        .owner
        .clone()
        .unwrap_err();
    assert_eq!(
        why.to_string(),
        "no live speaker on the eligible nodes (node1, node2, node3)"
    );
}

// === interfaces ===

fn iface(name: &str, addrs: &[&str]) -> InterfaceAddrs {
    InterfaceAddrs {
        name: name.into(),
        addrs: addrs
            .iter()
            .map(|a| {
                let (i, l) = a.split_once('/').unwrap();
                InterfaceAddr {
                    ip: ip(i),
                    prefix_len: l.parse().unwrap(),
                }
            })
            .collect(),
    }
}

#[test]
fn the_default_interface_is_the_one_whose_subnet_holds_the_ip() {
    let mut f = Fixture::lan();
    f.services
        .push(lb("web", &["192.0.2.100", "2001:db8:1::100"]));
    let local = [
        iface("lo", &["127.0.0.1/8", "192.0.2.100/32"]),
        iface("eth0", &["192.0.2.11/24", "2001:db8:1::11/64"]),
        iface("eth1", &["198.51.100.11/24"]),
    ];
    let p = f.plan(|n| n == "node1");
    let (per, stranded) = owned_per_interface(&p, "node1", &f.world(), &local, &[]);
    assert!(stranded.is_empty());
    assert_eq!(per.keys().collect::<Vec<_>>(), ["eth0"]);
    assert_eq!(per["eth0"].len(), 2);
}

#[test]
fn interface_patterns_and_the_override_pick_interfaces_by_name() {
    let mut f = Fixture::lan();
    f.announcements = vec![on_interfaces(announce_all("bonds"), &["bond*"])];
    f.services.push(lb("web", &["192.0.2.100"]));
    let local = [
        iface("eth0", &["192.0.2.11/24"]),
        iface("bond0", &[]),
        iface("bond1", &[]),
    ];
    let p = f.plan(|n| n == "node1");
    let (per, _) = owned_per_interface(&p, "node1", &f.world(), &local, &[]);
    assert_eq!(per.keys().collect::<Vec<_>>(), ["bond0", "bond1"]);
    let (per, _) = owned_per_interface(&p, "node1", &f.world(), &local, &["eth0".to_string()]);
    assert_eq!(per.keys().collect::<Vec<_>>(), ["eth0"]);
}

#[test]
fn an_owned_ip_with_no_matching_interface_is_reported_stranded() {
    let mut f = Fixture::lan();
    f.services.push(lb("web", &["192.0.2.100"]));
    let local = [iface("eth0", &["198.51.100.11/24"])];
    let p = f.plan(|n| n == "node1");
    let (per, stranded) = owned_per_interface(&p, "node1", &f.world(), &local, &[]);
    assert!(per.is_empty());
    assert_eq!(stranded, [ip("192.0.2.100")]);
}

// === peers ===

fn speaker_pod(name: &str, node: &str, ip: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ironlb-system".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[test]
fn peers_come_from_speaker_pods_and_a_ready_pod_wins_on_its_node() {
    let pods = [
        speaker_pod("speaker-a", "node1", "192.0.2.11", true),
        speaker_pod("speaker-b", "node2", "192.0.2.12", false),
        speaker_pod("speaker-old", "node1", "192.0.2.11", false),
    ];
    let peers = peers_from_pods(&pods);
    assert!(peers["node1"].ready);
    assert_eq!(peers["node1"].addr, Some(ip("192.0.2.11")));
    assert!(!peers["node2"].ready);
}

#[test]
fn the_reporter_is_the_first_live_speaker_by_name() {
    assert_eq!(reporter(["node3", "node1", "node2"]), Some("node1"));
    assert_eq!(reporter(Vec::<&str>::new()), None);
}
