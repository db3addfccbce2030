//! Changes after allocation: Services leaving, pools shrinking or vanishing, annotation
//! edits, Nodes' own addresses, invalid pools and garbage annotations.

mod common;

use common::*;
use ironlb_e2e::support::fixtures::{pool, Svc};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_load_balancer_releases_and_clears_only_our_status() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/31"])).await;
    let _c = env.controller().await;
    // One after the other: the controller may see two new Services in either order.
    env.create(Svc::lb("web").build()).await;
    env.wait_ips("default", "web", &["192.0.2.0"]).await;
    env.create(Svc::lb("second").build()).await;
    env.wait_ips("default", "second", &["192.0.2.1"]).await;
    env.create(Svc::lb("waiting").build()).await;
    env.wait_condition("default", "waiting", "False", "PoolExhausted")
        .await;
    // The speaker's condition, in the same status under its own field manager.
    let announced = json!({"apiVersion": "v1", "kind": "Service", "status": {"conditions": [{
        "type": "ironlb.io/announced", "status": "True", "reason": "Announced",
        "message": "announced by node-a", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    env.services("default")
        .patch_status(
            "web",
            &PatchParams::apply("ironlb-speaker").force(),
            &Patch::Apply(&announced),
        )
        .await
        .expect("speaker condition applied");
    let web = env.get("default", "web").await;
    assert!(announced_condition(&web).is_some(), "{:?}", web.status);
    assert!(condition(&web).is_some(), "ours is still there too");

    env.patch(
        "default",
        "web",
        json!({"spec": {"type": "ClusterIP", "allocateLoadBalancerNodePorts": null}}),
    )
    .await;
    env.wait_ips("default", "web", &[]).await;
    let web = env.get("default", "web").await;
    assert!(condition(&web).is_none(), "our condition is gone too");
    let theirs = announced_condition(&web).expect("the speaker's condition survives");
    assert_eq!(
        (theirs.status.as_str(), theirs.reason.as_str()),
        ("True", "Announced")
    );
    let note = env
        .wait_event("default", "web", "Normal", "IPReleased")
        .await;
    assert!(note.contains("192.0.2.0"), "{note}");
    // The freed address goes at once to the Service that was waiting for one.
    env.wait_ips("default", "waiting", &["192.0.2.0"]).await;
    env.wait_condition("default", "waiting", "True", "IPAllocated")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_frees_its_ip_for_the_next_one() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.7/32"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("first").build()).await;
    env.wait_ips("default", "first", &["192.0.2.7"]).await;
    env.create(Svc::lb("next").build()).await;
    let c = env
        .wait_condition("default", "next", "False", "PoolExhausted")
        .await;
    assert!(c.message.contains("lan"), "{}", c.message);
    env.services("default")
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_ips("default", "next", &["192.0.2.7"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_shrink_strands_the_ip_which_is_replaced_with_a_warning() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/30"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("web").build()).await;
    env.wait_ips("default", "web", &["192.0.2.0"]).await;

    env.patch_pool("lan", json!({"addresses": ["192.0.2.4/30"]}))
        .await;
    env.wait_ips("default", "web", &["192.0.2.4"]).await;
    let note = env
        .wait_event("default", "web", "Warning", "IPStranded")
        .await;
    assert!(note.contains("192.0.2.0"), "{note}");
    // The controller writes the new address's status first and its Event after it:
    // wait for the Event before counting.
    env.wait_event_saying("default", "web", "Normal", "IPAllocated", "192.0.2.4")
        .await;
    let events = env.events("default", "web").await;
    let allocated: Vec<_> = events
        .iter()
        .filter(|(_, r, _)| r == "IPAllocated")
        .collect();
    assert_eq!(allocated.len(), 2, "{events:?}");
    assert!(allocated[1].2.contains("192.0.2.4"), "{events:?}");

    // Deleting the pool strands it again; nothing else serves it, so it says why.
    env.delete_pool("lan").await;
    env.wait_ips("default", "web", &[]).await;
    env.wait_condition("default", "web", "False", "NoMatchingPool")
        .await;
    // ... and the Service's Events say which address went away with the pool.
    let stranded = env
        .wait_event_saying("default", "web", "Warning", "IPStranded", "192.0.2.4")
        .await;
    assert!(!stranded.contains("192.0.2.0"), "{stranded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_change_reallocates_and_the_old_ip_is_reusable_at_once() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("web").requesting("192.0.2.5").build())
        .await;
    env.wait_ips("default", "web", &["192.0.2.5"]).await;
    env.create(Svc::lb("later").requesting("192.0.2.5").build())
        .await;
    env.wait_condition("default", "later", "False", "RequestedIPTaken")
        .await;

    env.patch(
        "default",
        "web",
        json!({"metadata": {"annotations": {"ironlb.io/ips": "192.0.2.6"}}}),
    )
    .await;
    env.wait_ips("default", "web", &["192.0.2.6"]).await;
    env.wait_ips("default", "later", &["192.0.2.5"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_annotation_is_a_warning_naming_it_and_changes_nothing() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/29"])).await;
    let _c = env.controller().await;
    env.create(Svc::lb("web").build()).await;
    env.wait_ips("default", "web", &["192.0.2.0"]).await;
    let before = condition(&env.get("default", "web").await).unwrap();

    env.patch(
        "default",
        "web",
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "banana"}}}),
    )
    .await;
    let note = env
        .wait_event("default", "web", "Warning", "InvalidAnnotation")
        .await;
    assert!(
        note.contains("metallb.io/loadBalancerIPs") && note.contains("banana"),
        "{note}"
    );
    let after = env.get("default", "web").await;
    assert_eq!(ips(&after), ["192.0.2.0"]);
    assert_eq!(condition(&after).unwrap(), before);

    // Without an address yet, the Service says why it is pending.
    env.create(Svc::lb("fresh").requesting("not-an-ip").build())
        .await;
    let c = env
        .wait_condition("default", "fresh", "False", "InvalidAnnotation")
        .await;
    assert!(c.message.contains("ironlb.io/ips"), "{}", c.message);
    // One warning, not one per resync.
    env.patch(
        "default",
        "fresh",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    env.create(Svc::lb("marker").build()).await;
    env.wait_any_ip("default", "marker").await;
    let warnings = env
        .events("default", "fresh")
        .await
        .into_iter()
        .filter(|(_, r, _)| r == "InvalidAnnotation")
        .count();
    assert_eq!(warnings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_addresses_are_never_handed_out_and_the_pool_status_says_so() {
    let env = Env::start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node: Node = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}),
    )
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"apiVersion": "v1", "kind": "Node", "status": {"addresses": [
        {"type": "InternalIP", "address": "192.0.2.0"}, {"type": "Hostname", "address": "node-a"}]}});
    nodes
        .patch_status(
            "node-a",
            &PatchParams::apply("kubelet").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    env.create_pool(pool("lan", ["192.0.2.0/30"])).await;
    let _c = env.controller().await;

    env.create(Svc::lb("web").build()).await;
    env.wait_ips("default", "web", &["192.0.2.1"]).await;
    env.wait_pool_condition("lan", "Ready", "True").await;
    let st = ironlb_e2e::support::wait_until("excluded node IPs in pool status", WAIT, || async {
        let st = env.pool("lan").await.status?;
        (st.excluded_node_ips == ["192.0.2.0"] && st.assigned_ipv4 == 1).then_some(st)
    })
    .await
    .unwrap();
    assert_eq!(st.available_ipv4, "2");
    env.create(Svc::lb("taken").requesting("192.0.2.0").build())
        .await;
    env.wait_condition("default", "taken", "False", "RequestedIPReserved")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pool_says_why_while_the_others_keep_working() {
    let env = Env::start().await;
    env.create_pool(pool("good", ["192.0.2.0/29"])).await;
    // Passes CEL (two IPv4 addresses) but runs backwards.
    env.create_pool(pool("backwards", ["198.51.100.20-198.51.100.10"]))
        .await;
    env.create_pool(pool("overlap", ["192.0.2.4/30"])).await;
    let _c = env.controller().await;

    let c = env
        .wait_pool_condition("backwards", "Invalid", "True")
        .await;
    assert!(c.message.contains("198.51.100.20"), "{}", c.message);
    let c = env.wait_pool_condition("overlap", "Invalid", "True").await;
    assert!(c.message.contains("good"), "{}", c.message);
    env.wait_pool_condition("good", "Ready", "True").await;

    env.create(Svc::lb("web").build()).await;
    env.wait_ips("default", "web", &["192.0.2.0"]).await;
    env.create(Svc::lb("picky").from_pool("overlap").build())
        .await;
    env.wait_condition("default", "picky", "False", "PoolInvalid")
        .await;
}

fn announced_condition(
    svc: &k8s_openapi::api::core::v1::Service,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ironlb.io/announced")
        .cloned()
}
