//! The controller library against the embedded API server: allocation, requested IPs,
//! pool choice, sharing, families, classes. What a user sees: status, condition, Events.

mod common;

use common::*;
use ironlb_e2e::support::fixtures::{pool, Svc};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_an_ip_from_the_pool_with_condition_event_and_pool_status() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("web").build()).await;

    env.wait_ips("default", "web", &["192.0.2.0"]).await;
    let svc = env.get("default", "web").await;
    let ingress = &svc
        .status
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()[0];
    assert_eq!(ingress.ip_mode.as_deref(), Some("VIP"));
    let cond = condition(&svc).expect("condition written");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "IPAllocated")
    );
    assert_eq!(cond.message, "192.0.2.0 from IPPool 'lan'");

    let note = env
        .wait_event("default", "web", "Normal", "IPAllocated")
        .await;
    assert!(note.contains("192.0.2.0") && note.contains("lan"), "{note}");

    let ready = env.wait_pool_condition("lan", "Ready", "True").await;
    assert_eq!(ready.reason, "PoolReady");
    let status = env.wait_pool_assigned_ipv4("lan", 1).await.status.unwrap();
    assert_eq!(status.available_ipv4, "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ips_come_from_every_annotation_and_load_balancer_ip() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/24"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("own").requesting("192.0.2.10").build())
        .await;
    env.create(
        Svc::lb("metallb")
            .annotation("metallb.io/loadBalancerIPs", "192.0.2.11")
            .build(),
    )
    .await;
    env.create(
        Svc::lb("legacy")
            .annotation("metallb.universe.tf/loadBalancerIPs", "192.0.2.12")
            .build(),
    )
    .await;
    let mut spec_ip = Svc::lb("spec").build();
    spec_ip.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.13".into());
    env.create(spec_ip).await;

    env.wait_ips("default", "own", &["192.0.2.10"]).await;
    env.wait_ips("default", "metallb", &["192.0.2.11"]).await;
    env.wait_ips("default", "legacy", &["192.0.2.12"]).await;
    env.wait_ips("default", "spec", &["192.0.2.13"]).await;

    // Outside every pool: pending, and it says why.
    env.create(Svc::lb("outside").requesting("198.51.100.1").build())
        .await;
    let c = env
        .wait_condition("default", "outside", "False", "RequestedIPOutsidePools")
        .await;
    assert!(c.message.contains("198.51.100.1"), "{}", c.message);
    let note = env
        .wait_event("default", "outside", "Warning", "AllocationFailed")
        .await;
    assert!(note.starts_with("RequestedIPOutsidePools:"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_annotations_ironlb_and_metallb_names_choose_the_pool() {
    let env = Env::start().await;
    env.create_pool(pool("a", ["192.0.2.0/28"])).await;
    let mut b = pool("b", ["198.51.100.0/28"]);
    b.spec.auto_assign = false;
    env.create_pool(b).await;
    let _c = env.controller().await;
    env.create(Svc::lb("plain").build()).await;
    env.create(Svc::lb("own").from_pool("b").build()).await;
    env.create(
        Svc::lb("metallb")
            .annotation("metallb.io/address-pool", "b")
            .build(),
    )
    .await;
    env.create(
        Svc::lb("legacy")
            .annotation("metallb.universe.tf/address-pool", "b")
            .build(),
    )
    .await;
    env.create(Svc::lb("ghost").from_pool("nope").build()).await;

    assert!(env.wait_any_ip("default", "plain").await[0].starts_with("192.0.2."));
    for name in ["own", "metallb", "legacy"] {
        let ip = &env.wait_any_ip("default", name).await[0];
        assert!(ip.starts_with("198.51.100."), "{name} got {ip}");
    }
    env.wait_condition("default", "ghost", "False", "UnknownPool")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_priority_pick_the_pool() {
    let env = Env::start().await;
    env.namespace("blue", &[("team", "blue")]).await;
    let mut web = pool("web-first", ["192.0.2.0/28"]);
    web.spec.priority = 1;
    web.spec.service_selector =
        Some(serde_json::from_value(json!({"matchLabels": {"tier": "web"}})).unwrap());
    let mut blue = pool("blue-team", ["192.0.2.16/28"]);
    blue.spec.priority = 2;
    blue.spec.namespace_selector =
        Some(serde_json::from_value(json!({"matchLabels": {"team": "blue"}})).unwrap());
    let mut fallback = pool("fallback", ["192.0.2.32/28"]);
    fallback.spec.priority = 10;
    for p in [web, blue, fallback] {
        env.create_pool(p).await;
    }
    let _c = env.controller().await;
    env.create(Svc::lb("front").label("tier", "web").build())
        .await;
    env.create(Svc::lb("team").namespace("blue").build()).await;
    env.create(Svc::lb("other").build()).await;

    env.wait_ips("default", "front", &["192.0.2.0"]).await;
    env.wait_ips("blue", "team", &["192.0.2.16"]).await;
    env.wait_ips("default", "other", &["192.0.2.32"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_keys_share_an_ip_unless_ports_clash() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("http").ports([80]).sharing("k").build())
        .await;
    env.wait_ips("default", "http", &["192.0.2.0"]).await;
    env.create(
        Svc::lb("https")
            .ports([443])
            .sharing("k")
            .requesting("192.0.2.0")
            .build(),
    )
    .await;
    env.wait_ips("default", "https", &["192.0.2.0"]).await;
    // MetalLB's own annotation name works too.
    env.create(
        Svc::lb("dns")
            .ports_with_protocol([(53, "UDP")])
            .annotation("metallb.io/allow-shared-ip", "k")
            .requesting("192.0.2.0")
            .build(),
    )
    .await;
    env.wait_ips("default", "dns", &["192.0.2.0"]).await;

    env.create(
        Svc::lb("clash")
            .ports([80])
            .sharing("k")
            .requesting("192.0.2.0")
            .build(),
    )
    .await;
    let c = env
        .wait_condition("default", "clash", "False", "RequestedIPTaken")
        .await;
    assert!(c.message.contains("192.0.2.0"), "{}", c.message);
    assert!(env
        .get("default", "clash")
        .await
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap_or_default()
        .is_empty());
    let note = env
        .wait_event("default", "clash", "Warning", "AllocationFailed")
        .await;
    assert!(note.contains("RequestedIPTaken"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_policies_are_honoured_and_require_dual_stack_is_never_half() {
    let env = Env::start().await;
    env.create_pool(pool("dual", ["192.0.2.0/29", "2001:db8::/64"]))
        .await;
    env.create_pool(pool("v4only", ["198.51.100.0/29"])).await;
    let _c = env.controller().await;
    env.create(
        Svc::lb("both")
            .families("RequireDualStack", &["IPv4", "IPv6"])
            .from_pool("dual")
            .build(),
    )
    .await;
    env.create(
        Svc::lb("prefer")
            .families("PreferDualStack", &["IPv6", "IPv4"])
            .from_pool("dual")
            .build(),
    )
    .await;
    env.create(
        Svc::lb("six")
            .families("SingleStack", &["IPv6"])
            .from_pool("dual")
            .build(),
    )
    .await;
    env.create(
        Svc::lb("half")
            .families("RequireDualStack", &["IPv4", "IPv6"])
            .from_pool("v4only")
            .build(),
    )
    .await;
    env.create(Svc::lb("single").from_pool("v4only").build())
        .await;

    // Which Service gets which address depends on the order the controller sees them
    // in; what is fixed: the families and their order, and no address twice.
    let both = env.wait_any_ip("default", "both").await;
    let prefer = env.wait_any_ip("default", "prefer").await;
    let six = env.wait_any_ip("default", "six").await;
    let family = |ips: &[String]| -> Vec<&str> {
        ips.iter()
            .map(|ip| match ip.parse::<std::net::IpAddr>().unwrap() {
                std::net::IpAddr::V4(_) => "IPv4",
                std::net::IpAddr::V6(_) => "IPv6",
            })
            .collect()
    };
    assert_eq!(family(&both), ["IPv4", "IPv6"], "{both:?}");
    assert_eq!(family(&prefer), ["IPv6", "IPv4"], "{prefer:?}");
    assert_eq!(family(&six), ["IPv6"], "{six:?}");
    let mut all: Vec<&String> = both.iter().chain(&prefer).chain(&six).collect();
    all.sort();
    assert_eq!(
        all,
        [
            "192.0.2.0",
            "192.0.2.1",
            "2001:db8::",
            "2001:db8::1",
            "2001:db8::2"
        ],
        "the lowest free addresses of the pool, each once"
    );
    let c = env
        .wait_condition("default", "half", "False", "DualStackUnavailable")
        .await;
    assert!(!c.message.is_empty());
    assert!(
        ips(&env.get("default", "half").await).is_empty(),
        "never half a RequireDualStack"
    );

    // A Service holding IPv4 that switches to RequireDualStack keeps its address and says why.
    env.wait_ips("default", "single", &["198.51.100.0"]).await;
    env.patch(
        "default",
        "single",
        json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
    )
    .await;
    env.wait_condition("default", "single", "False", "DualStackUnavailable")
        .await;
    assert_eq!(ips(&env.get("default", "single").await), ["198.51.100.0"]);
    let note = env
        .wait_event("default", "single", "Warning", "AllocationFailed")
        .await;
    assert!(note.contains("keeping 198.51.100.0"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_classes_and_types_are_never_touched() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("foreign").class("other.io/lb").build())
        .await;
    // Someone else's controller writes its status.
    let foreign = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}});
    env.services("default")
        .patch_status(
            "foreign",
            &kube::api::PatchParams::apply("other-lb").force(),
            &kube::api::Patch::Apply(&foreign),
        )
        .await
        .unwrap();
    env.create(Svc::of_type("internal", "ClusterIP").build())
        .await;
    env.create(Svc::lb("explicit").class("ironlb.io/lb").build())
        .await;
    env.create(Svc::lb("ours").build()).await;

    env.wait_any_ip("default", "explicit").await;
    env.wait_any_ip("default", "ours").await;
    let foreign = env.get("default", "foreign").await;
    assert_eq!(ips(&foreign), ["203.0.113.7"]);
    assert!(condition(&foreign).is_none());
    assert!(foreign
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .all(|m| m.manager.as_deref() != Some("ironlb-controller")));
    assert!(env
        .get("default", "internal")
        .await
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default()
        .is_empty());
    assert!(env.events("default", "foreign").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_explicit_class_serves_only_services_naming_it() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let mut settings = single();
    settings.class.only_explicit = true;
    let _c = env.replica("explicit-only", settings).await;
    env.create(Svc::lb("unclassed").build()).await;
    env.create(Svc::lb("explicit").class("ironlb.io/lb").build())
        .await;
    env.wait_ips("default", "explicit", &["192.0.2.0"]).await;
    assert!(ips(&env.get("default", "unclassed").await).is_empty());
    assert!(condition(&env.get("default", "unclassed").await).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let env = Env::start().await;
    let mut lan = pool("lan", ["192.0.2.0/24"]);
    lan.spec.avoid_buggy_ips = true;
    env.create_pool(lan).await;
    let _c = env.controller().await;

    env.create(Svc::lb("first").build()).await;
    env.wait_ips("default", "first", &["192.0.2.1"]).await;
    let status = env.wait_pool_assigned_ipv4("lan", 1).await.status.unwrap();
    assert_eq!(status.available_ipv4, "253", "254 usable, one in use");

    // Asking for .255 explicitly is refused and says why.
    env.create(Svc::lb("broadcast").requesting("192.0.2.255").build())
        .await;
    let c = env
        .wait_condition("default", "broadcast", "False", "RequestedIPOutsidePools")
        .await;
    assert!(c.message.contains("avoids"), "{}", c.message);
}
