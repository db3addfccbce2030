//! kube-rs's event Recorder and a Lease-based leader election.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::Resource;
use serde_json::json;

use crate::support::{code, within, Cluster};

#[tokio::test]
async fn the_event_recorder_publishes_events_readable_in_both_groups() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})).unwrap();
        let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
        let recorder = Recorder::new(
            c.client.clone(),
            Reporter {
                controller: "ironlb-controller".into(),
                instance: Some("controller-0".into()),
            },
        );
        let ev = KubeEvent {
            type_: EventType::Normal,
            reason: "IPAllocated".into(),
            note: Some("Assigned IP 192.0.2.10 from pool lan".into()),
            action: "Allocate".into(),
            secondary: None,
        };
        let reference = svc.object_ref(&());
        recorder.publish(&ev, &reference).await.unwrap();
        // The same event again becomes a series on the same object (a merge patch).
        recorder.publish(&ev, &reference).await.unwrap();

        let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
        let list = events.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        let e = &list.items[0];
        assert_eq!(e.reason.as_deref(), Some("IPAllocated"));
        assert_eq!(e.note.as_deref(), Some("Assigned IP 192.0.2.10 from pool lan"));
        assert_eq!(e.reporting_controller.as_deref(), Some("ironlb-controller"));
        assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("web"));
        assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));

        // kubectl describe reads core/v1 Events by involvedObject.
        let core: Api<CoreEvent> = Api::namespaced(c.client.clone(), "default");
        let core_list = core
            .list(&ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Service"))
            .await
            .unwrap();
        assert_eq!(core_list.items.len(), 1);
        assert_eq!(core_list.items[0].message.as_deref(), Some("Assigned IP 192.0.2.10 from pool lan"));
    })
    .await
}

const LEASE: &str = "ironlb-controller";

/// One attempt of a minimal leader-election loop (what client-go's leaderelection does):
/// take the lease when it is free or ours, through resourceVersion-guarded writes.
async fn try_acquire(leases: &Api<Lease>, me: &str) -> bool {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    match leases.get_opt(LEASE).await.unwrap() {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": LEASE},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": 15, "leaseTransitions": 0}
            }))
            .unwrap();
            let mut lease = lease;
            lease.spec.as_mut().unwrap().acquire_time = Some(now.clone());
            lease.spec.as_mut().unwrap().renew_time = Some(now);
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => true,
                Err(e) if code(&e) == 409 => false,
                Err(e) => panic!("{e}"),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.as_mut().unwrap();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            if !holder.is_empty() && holder != me {
                return false;
            }
            if holder != me {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(now.clone());
            }
            spec.holder_identity = Some(me.into());
            spec.renew_time = Some(now);
            match leases.replace(LEASE, &PostParams::default(), &lease).await {
                Ok(_) => true,
                Err(e) if code(&e) == 409 => false,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Give the lease up (holderIdentity cleared), as a leader does on shutdown.
async fn release(leases: &Api<Lease>, me: &str) {
    let mut lease = leases.get(LEASE).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some(me),
        "only the holder releases"
    );
    spec.holder_identity = Some(String::new());
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .unwrap();
}

#[tokio::test]
async fn lease_leader_election_has_one_holder_at_a_time() {
    within(async {
        let c = Cluster::start().await;
        let leaders_now = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for me in ["controller-a", "controller-b", "controller-c"] {
            let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
            let (leaders_now, max_seen) = (leaders_now.clone(), max_seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut terms = 0;
                let mut attempts = 0;
                while terms < 3 && attempts < 2000 {
                    attempts += 1;
                    if !try_acquire(&leases, me).await {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    terms += 1;
                    let n = leaders_now.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(n, Ordering::SeqCst);
                    // Renew a few times while leading; every renewal must succeed.
                    for _ in 0..3 {
                        assert!(try_acquire(&leases, me).await, "{me} lost a lease it held");
                        tokio::task::yield_now().await;
                    }
                    leaders_now.fetch_sub(1, Ordering::SeqCst);
                    release(&leases, me).await;
                }
                terms
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 3, "every candidate led three times");
        }
        assert_eq!(
            max_seen.load(Ordering::SeqCst),
            1,
            "never two leaders at once"
        );
        let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
        let lease = leases.get(LEASE).await.unwrap();
        assert!(lease.spec.unwrap().lease_transitions.unwrap() >= 8);
    })
    .await
}
