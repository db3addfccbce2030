use super::*;
use ironlb_ipam::{AllocationRequest, Allocator, PoolSpec, ServiceKey};
use k8s_openapi::jiff::Timestamp;

fn assignment() -> Assignment {
    let mut alloc = Allocator::new();
    alloc.set_pools(vec![PoolSpec::new("lan", ["192.0.2.0/30"])]);
    alloc
        .allocate(
            &ServiceKey::new("default", "web"),
            &AllocationRequest::default(),
        )
        .unwrap()
}

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn service_with(body: &Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "status": body["status"]})).unwrap()
}

#[test]
fn an_allocation_names_its_ips_and_pool() {
    let d = Desired::allocated(&assignment());
    assert_eq!(d.message, "192.0.2.0 from IPPool 'lan'");
    assert!(d.allocated);
}

#[test]
fn a_written_status_is_up_to_date_and_keeps_its_transition_time() {
    let d = Desired::allocated(&assignment());
    let empty = Service::default();
    assert!(!up_to_date(&empty, &d));
    let body = apply_body(&empty, &d, at(100));
    assert_eq!(
        body["status"]["loadBalancer"]["ingress"][0]["ipMode"],
        "VIP"
    );
    let live = service_with(&body);
    assert!(up_to_date(&live, &d));
    assert_eq!(live_ips(&live), d.ips);

    let failed = Desired::failed(Some(&assignment()), "DualStackUnavailable", "no v6".into());
    assert!(!up_to_date(&live, &failed));
    let body2 = apply_body(&live, &failed, at(200));
    assert_eq!(body2["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        body2["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.0"
    );
    let same_status = apply_body(&live, &d, at(300));
    assert_eq!(
        same_status, body,
        "an unchanged status keeps lastTransitionTime"
    );
}
