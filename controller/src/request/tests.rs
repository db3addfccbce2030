use super::*;
use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

fn lb() -> Service {
    Service {
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn annotated(mut svc: Service, k: &str, v: &str) -> Service {
    svc.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(k.into(), v.into());
    svc
}

fn with_class(mut svc: Service, class: &str) -> Service {
    svc.spec.as_mut().unwrap().load_balancer_class = Some(class.into());
    svc
}

#[test]
fn only_load_balancers_of_our_class_are_served() {
    let ours = ClassPolicy::default();
    let explicit = ClassPolicy {
        only_explicit: true,
        ..ClassPolicy::default()
    };
    assert!(ours.serves(&lb()));
    assert!(!explicit.serves(&lb()));
    assert!(ours.serves(&with_class(lb(), "ironlb.io/lb")));
    assert!(explicit.serves(&with_class(lb(), "ironlb.io/lb")));
    assert!(!ours.serves(&with_class(lb(), "other.io/lb")));
    let mut cluster_ip = lb();
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    assert!(!ours.serves(&cluster_ip));
}

#[test]
fn ironlb_annotations_win_over_metallb_and_load_balancer_ip() {
    let mut svc = annotated(lb(), "metallb.universe.tf/loadBalancerIPs", "192.0.2.9");
    svc.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.8".into());
    assert_eq!(
        requested_ips(&svc).unwrap(),
        ["192.0.2.9".parse::<IpAddr>().unwrap()]
    );
    let svc = annotated(svc, "ironlb.io/ips", "192.0.2.10, 2001:db8::10");
    assert_eq!(requested_ips(&svc).unwrap().len(), 2);
    let mut only_spec = lb();
    only_spec.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.8".into());
    assert_eq!(
        requested_ips(&only_spec).unwrap(),
        ["192.0.2.8".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn a_garbage_ip_names_its_annotation() {
    let svc = annotated(lb(), "metallb.io/loadBalancerIPs", "192.0.2.1,banana");
    let err = requested_ips(&svc).unwrap_err();
    assert_eq!(err.name, "metallb.io/loadBalancerIPs");
    assert!(err.message.contains("banana"), "{err}");
    let mut spec_ip = lb();
    spec_ip.spec.as_mut().unwrap().load_balancer_ip = Some("nope".into());
    assert_eq!(
        requested_ips(&spec_ip).unwrap_err().name,
        "spec.loadBalancerIP"
    );
}

#[test]
fn a_request_carries_pool_key_ports_families_and_local_selector() {
    let mut svc = annotated(lb(), "metallb.io/address-pool", "lan");
    svc = annotated(svc, "metallb.universe.tf/allow-shared-ip", "k");
    let spec = svc.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    spec.external_traffic_policy = Some("Local".into());
    spec.selector = Some([("b".to_string(), "2".to_string()), ("a".into(), "1".into())].into());
    let req = allocation_request(&svc, &Labels::new()).unwrap();
    assert_eq!(req.pool.as_deref(), Some("lan"));
    assert_eq!(req.sharing_key.as_deref(), Some("k"));
    assert_eq!(req.ports, [Port::tcp(80)]);
    assert_eq!(req.ip_family_policy, IpFamilyPolicy::RequireDualStack);
    assert_eq!(req.ip_families, [Family::V6, Family::V4]);
    assert_eq!(
        req.traffic_policy,
        TrafficPolicy::Local {
            selector: "a=1,b=2".into()
        }
    );
}
