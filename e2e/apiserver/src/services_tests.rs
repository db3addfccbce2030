use serde_json::json;

use super::*;

fn alloc() -> ServiceAllocator {
    ServiceAllocator::new(
        "198.18.0.0/16".parse().unwrap(),
        "2001:db8:ffff::/112".parse().unwrap(),
    )
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn a_bare_load_balancer_gets_every_default_a_real_cluster_fills_in() {
    let mut a = alloc();
    let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    prepare_create(&mut svc, &mut a).unwrap();
    let spec = &svc["spec"];
    assert_eq!(spec["clusterIP"], "198.18.0.2");
    assert_eq!(spec["clusterIPs"], json!(["198.18.0.2"]));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000})
    );
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
}

#[test]
fn dual_stack_gets_one_ip_per_family_and_no_node_ports_when_disabled() {
    let mut a = alloc();
    let mut svc = json!({"spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 443}]}});
    prepare_create(&mut svc, &mut a).unwrap();
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(
        svc["spec"]["clusterIPs"],
        json!(["198.18.0.2", "2001:db8:ffff::2"])
    );
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
}

#[test]
fn requested_ip_and_node_port_are_reserved_once() {
    let mut a = alloc();
    let mut first = json!({"spec": {"type": "NodePort", "clusterIP": "198.18.5.5", "ports": [{"port": 80, "nodePort": 30080}]}});
    prepare_create(&mut first, &mut a).unwrap();
    let mut same_ip = json!({"spec": {"clusterIP": "198.18.5.5", "ports": [{"port": 80}]}});
    assert_eq!(
        fields(&prepare_create(&mut same_ip, &mut a).unwrap_err()),
        ["spec.clusterIPs"]
    );
    let mut same_port =
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
    assert_eq!(
        fields(&prepare_create(&mut same_port, &mut a).unwrap_err()),
        ["spec.ports[0].nodePort"]
    );
    let mut outside = json!({"spec": {"clusterIP": "203.0.113.1", "ports": [{"port": 80}]}});
    assert!(prepare_create(&mut outside, &mut a).is_err());
    a.release_service(&first);
    let mut again = json!({"spec": {"type": "NodePort", "clusterIP": "198.18.5.5", "ports": [{"port": 80, "nodePort": 30080}]}});
    prepare_create(&mut again, &mut a).unwrap();
}

#[test]
fn invalid_services_name_their_fields() {
    let mut a = alloc();
    let cases = [
        (json!({"spec": {}}), vec!["spec.ports"]),
        (
            json!({"spec": {"ports": [{"port": 0, "targetPort": 80}]}}),
            vec!["spec.ports[0].port"],
        ),
        (
            json!({"spec": {"ports": [{"port": 70000}]}}),
            vec!["spec.ports[0].port", "spec.ports[0].targetPort"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}}),
            vec!["spec.ports[1].name"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            vec!["spec.ports[0].name", "spec.ports[1].name"],
        ),
        (
            json!({"spec": {"type": "Bogus", "ports": [{"port": 80}]}}),
            vec!["spec.type"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}}),
            vec!["spec.ports[0].protocol"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "nodePort": 30001}]}}),
            vec!["spec.ports[0].nodePort"],
        ),
        (
            json!({"spec": {"loadBalancerClass": "x/y", "ports": [{"port": 80}]}}),
            vec!["spec.loadBalancerClass"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}}),
            vec!["spec.ports[0].targetPort"],
        ),
    ];
    for (mut svc, want) in cases {
        let got = prepare_create(&mut svc, &mut a).unwrap_err();
        assert_eq!(fields(&got), want, "{svc}");
    }
    // Nothing leaked from the failed attempts.
    let mut ok = json!({"spec": {"ports": [{"port": 80}]}});
    prepare_create(&mut ok, &mut a).unwrap();
    assert_eq!(ok["spec"]["clusterIP"], "198.18.0.2");
}

#[test]
fn an_update_keeps_allocations_and_refuses_a_new_load_balancer_class() {
    let mut a = alloc();
    let mut old = json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "ironlb.io/lb", "ports": [{"port": 80}]}});
    prepare_create(&mut old, &mut a).unwrap();
    let mut new = json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "ironlb.io/lb", "ports": [{"port": 80}, {"port": 81, "name": "b"}]}});
    new["spec"]["ports"][0]["name"] = json!("a");
    prepare_update(&mut new, &old, &mut a).unwrap();
    assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
    assert_eq!(
        new["spec"]["ports"][0]["nodePort"],
        old["spec"]["ports"][0]["nodePort"]
    );
    assert_eq!(new["spec"]["ports"][1]["nodePort"], 30001);

    let mut other_class = new.clone();
    other_class["spec"]["loadBalancerClass"] = json!("example.com/other");
    assert_eq!(
        fields(&prepare_update(&mut other_class, &new, &mut a).unwrap_err()),
        ["spec.loadBalancerClass"]
    );

    let mut to_cluster_ip = new.clone();
    to_cluster_ip["spec"]["type"] = json!("ClusterIP");
    prepare_update(&mut to_cluster_ip, &new, &mut a).unwrap();
    assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
}

#[test]
fn cidr_parsing_and_containment() {
    let c: Cidr = "2001:db8:ffff::/112".parse().unwrap();
    assert!(c.contains(&"2001:db8:ffff::ffff".parse().unwrap()));
    assert!(!c.contains(&"2001:db8:ffff::1:0".parse().unwrap()));
    assert!("198.18.0.0/33".parse::<Cidr>().is_err());
}
