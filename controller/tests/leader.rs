//! Two replicas with Lease leader election: only the leader writes; when it dies the
//! standby takes over from the cluster's state without moving any IP.

mod common;

use common::*;
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::wait_until;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

async fn holder(env: &Env) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "ironlb-system");
    leases
        .get("ironlb-controller")
        .await
        .ok()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_takeover_moves_no_ip() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["192.0.2.0/28"])).await;
    let a = env.replica("replica-a", elected("replica-a")).await;
    let b = env.replica("replica-b", elected("replica-b")).await;
    for name in ["one", "two", "three"] {
        env.create(Svc::lb(name).build()).await;
    }
    let mut before = Vec::new();
    for name in ["one", "two", "three"] {
        before.push(env.wait_any_ip("default", name).await);
    }
    let leader = wait_until("a Lease holder", WAIT, || holder(&env))
        .await
        .unwrap();
    let (leader_replica, standby) = if leader == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    assert!(env.status_writes_by(&leader_replica.user) >= 3);
    assert_eq!(
        env.status_writes_by(&standby.user),
        0,
        "the standby never writes"
    );
    wait_until("standby ready (caches synced)", WAIT, || async {
        standby.readiness.is_ready().then_some(())
    })
    .await
    .unwrap();

    // A crash: no Lease release, the standby waits for it to expire.
    let old_leader = leader_replica.user.clone();
    leader_replica.crash();
    wait_until("the standby to take the Lease", WAIT, || async {
        (holder(&env).await.as_deref() == Some(standby.user.as_str())).then_some(())
    })
    .await
    .unwrap();
    env.create(Svc::lb("four").build()).await;
    let four = env.wait_any_ip("default", "four").await;
    let mut after = Vec::new();
    for name in ["one", "two", "three"] {
        after.push(ips(&env.get("default", name).await));
    }
    assert_eq!(after, before, "no IP moved on takeover");
    assert!(
        !before.contains(&four),
        "the new Service got a free address"
    );
    assert_eq!(
        env.status_writes_by(&standby.user),
        1,
        "the new leader wrote only the new Service"
    );
    let writes_of_old = env.status_writes_by(&old_leader);
    assert!(writes_of_old >= 3);
    standby.stop().await;
}
