//! Helpers shared by the controller's tests: a cluster with the controller library
//! running in-process, and readers for what a user would look at (status, condition,
//! Events, IPPool status).

#![allow(dead_code)]

use std::time::Duration;

use ironlb_api::IPPool;
use ironlb_controller::metrics::Metrics;
use ironlb_controller::request::ClassPolicy;
use ironlb_controller::{run_with, Settings};
use ironlb_e2e::support::{wait_until, TestCluster};
use ironlb_runtime::health::Readiness;
use ironlb_runtime::leader_election::LeaseConfig;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything to happen; never a performance assertion.
pub const WAIT: Duration = Duration::from_secs(30);

/// One controller replica running in this process.
pub struct Replica {
    pub user: String,
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
    pub task: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// Stops it as SIGTERM would (the Lease is released).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
    /// Stops it as a crash would: no clean-up at all.
    pub fn crash(self) {
        self.task.abort();
    }
}

/// A cluster plus the kube client of the test itself (admin).
pub struct Env {
    pub cluster: TestCluster,
    pub client: kube::Client,
}

impl Env {
    pub async fn start() -> Env {
        let cluster = TestCluster::start().await.expect("cluster starts");
        let client = cluster.admin.clone();
        let env = Env { cluster, client };
        env.namespace("ironlb-system", &[]).await;
        env
    }

    /// Starts the controller library as user `user` with `settings`.
    pub async fn replica(&self, user: &str, settings: Settings) -> Replica {
        let kubeconfig = self.cluster.kubeconfig_for(user).expect("kubeconfig");
        let client = ironlb_runtime::kube_client::client(Some(&kubeconfig))
            .await
            .expect("client");
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let shutdown = CancellationToken::new();
        let readiness = Readiness::default();
        let task = tokio::spawn(run_with(
            client,
            settings,
            readiness.clone(),
            shutdown.clone(),
            metrics,
        ));
        Replica {
            user: user.to_string(),
            shutdown,
            readiness,
            task,
        }
    }

    /// The usual single controller: no leader election, default class policy.
    pub async fn controller(&self) -> Replica {
        self.replica("system:serviceaccount:ironlb-system:controller", single())
            .await
    }

    pub async fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&ns),
        )
        .await
        .expect("namespace applied");
    }

    pub async fn create_pool(&self, pool: IPPool) {
        let api: Api<IPPool> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &pool)
            .await
            .expect("pool created");
    }

    pub async fn patch_pool(&self, name: &str, spec: serde_json::Value) {
        let api: Api<IPPool> = Api::all(self.client.clone());
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .expect("pool patched");
    }

    pub async fn delete_pool(&self, name: &str) {
        let api: Api<IPPool> = Api::all(self.client.clone());
        api.delete(name, &DeleteParams::default())
            .await
            .expect("pool deleted");
    }

    pub async fn pool(&self, name: &str) -> IPPool {
        Api::<IPPool>::all(self.client.clone())
            .get(name)
            .await
            .expect("pool exists")
    }

    /// Waits until the pool's status shows `assigned` IPv4 addresses (the pool status is
    /// written after the Services' statuses, so it may lag behind them).
    pub async fn wait_pool_assigned_ipv4(&self, name: &str, assigned: i64) -> IPPool {
        let api = Api::<IPPool>::all(self.client.clone());
        wait_until(
            &format!("IPPool {name} to count {assigned} assigned IPv4"),
            WAIT,
            || async {
                let pool = api.get(name).await.ok()?;
                let status = pool.status.as_ref()?;
                (status.assigned_ipv4 == assigned).then_some(pool)
            },
        )
        .await
        .expect("pool status")
    }

    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create(&self, svc: Service) -> Service {
        let ns = svc.metadata.namespace.clone().unwrap_or("default".into());
        self.services(&ns)
            .create(&PostParams::default(), &svc)
            .await
            .expect("service created")
    }

    pub async fn get(&self, ns: &str, name: &str) -> Service {
        self.services(ns).get(name).await.expect("service exists")
    }

    /// Merge-patches a Service's metadata/spec.
    pub async fn patch(&self, ns: &str, name: &str, patch: serde_json::Value) {
        self.services(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("service patched");
    }

    /// Waits until `ns/name` shows exactly `want` in `status.loadBalancer.ingress`.
    pub async fn wait_ips(&self, ns: &str, name: &str, want: &[&str]) {
        let api = self.services(ns);
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        let what = format!("{ns}/{name} to have ingress {want:?}");
        let last = std::sync::Mutex::new(Vec::new());
        let r = wait_until(&what, WAIT, || async {
            let svc = api.get(name).await.ok()?;
            let got = ips(&svc);
            *last.lock().unwrap() = got.clone();
            (got == want).then_some(())
        })
        .await;
        if let Err(e) = r {
            panic!("{e}; last seen {:?}", last.lock().unwrap());
        }
    }

    /// Waits until `ns/name` has some IP and returns them.
    pub async fn wait_any_ip(&self, ns: &str, name: &str) -> Vec<String> {
        let api = self.services(ns);
        wait_until(&format!("{ns}/{name} to get an IP"), WAIT, || async {
            let svc = api.get(name).await.ok()?;
            let got = ips(&svc);
            (!got.is_empty()).then_some(got)
        })
        .await
        .expect("an IP")
    }

    /// Waits until the `ironlb.io/ip-allocated` condition has `status` and `reason`.
    pub async fn wait_condition(
        &self,
        ns: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Condition {
        let api = self.services(ns);
        let what = format!("{ns}/{name} condition {status}/{reason}");
        wait_until(&what, WAIT, || async {
            let svc = api.get(name).await.ok()?;
            condition(&svc).filter(|c| c.status == status && c.reason == reason)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Events regarding `ns/name`: (type, reason, note), oldest first.
    pub async fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let mut list: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits for an Event with `reason` on `ns/name` and returns its note.
    pub async fn wait_event(&self, ns: &str, name: &str, type_: &str, reason: &str) -> String {
        self.wait_event_saying(ns, name, type_, reason, "").await
    }

    /// Waits for an Event with `reason` on `ns/name` whose note contains `text`, and
    /// returns the note.
    pub async fn wait_event_saying(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        reason: &str,
        text: &str,
    ) -> String {
        wait_until(
            &format!("{type_} Event {reason} {text:?} on {ns}/{name}"),
            WAIT,
            || async {
                self.events(ns, name)
                    .await
                    .into_iter()
                    .find(|(t, r, note)| t == type_ && r == reason && note.contains(text))
                    .map(|(_, _, note)| note)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for an IPPool condition.
    pub async fn wait_pool_condition(&self, name: &str, type_: &str, status: &str) -> Condition {
        wait_until(&format!("IPPool {name} {type_}={status}"), WAIT, || async {
            let pool = Api::<IPPool>::all(self.client.clone())
                .get(name)
                .await
                .ok()?;
            pool.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == status)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Service status writes recorded by the API server for `user`.
    pub fn status_writes_by(&self, user: &str) -> usize {
        self.cluster
            .api
            .requests()
            .iter()
            .filter(|r| {
                r.user == user
                    && r.resource == "services"
                    && r.subresource == "status"
                    && r.verb == "patch"
            })
            .count()
    }
}

/// Settings of a single replica without leader election.
pub fn single() -> Settings {
    Settings {
        class: ClassPolicy::default(),
        identity: "test-controller".into(),
        lease: None,
        write_concurrency: 8,
    }
}

/// Settings of a replica electing a leader through a short Lease.
pub fn elected(identity: &str) -> Settings {
    let mut lease = LeaseConfig::new("ironlb-system", "ironlb-controller", identity);
    lease.lease_duration = Duration::from_secs(3);
    lease.renew_interval = Duration::from_millis(500);
    Settings {
        identity: identity.into(),
        lease: Some(lease),
        ..single()
    }
}

pub fn ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

pub fn condition(svc: &Service) -> Option<Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ironlb.io/ip-allocated")
        .cloned()
}
