//! A kube-rs Controller reconciling Services and writing their status with server-side
//! apply, the shape of IronLB's controller.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

use crate::support::{eventually, within, Cluster};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(svc: Arc<Service>, api: Arc<Api<Service>>) -> Result<Action, ReconcileError> {
    let n: u32 = svc
        .name_any()
        .trim_start_matches("svc-")
        .parse()
        .unwrap_or(0);
    let ip = format!("198.51.100.{}", n % 250 + 1);
    let status = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    api.patch_status(
        &svc.name_any(),
        &PatchParams::apply("ironlb-controller").force(),
        &Patch::Apply(&status),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_svc: Arc<Service>, _e: &ReconcileError, _api: Arc<Api<Service>>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn a_controller_writes_status_for_every_service() {
    within(async {
        let c = Cluster::start().await;
        let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let controller = Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, Arc::new(api.clone()))
            .for_each(|_| async {});
        let task = tokio::spawn(controller);
        const N: usize = 200;
        let creates = futures::stream::iter(0..N)
            .map(|i| {
                let api = api.clone();
                async move {
                    let svc: Service = serde_json::from_value(json!({
                        "metadata": {"name": format!("svc-{i}")},
                        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
                    }))
                    .unwrap();
                    api.create(&PostParams::default(), &svc).await.unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>();
        creates.await;
        eventually(|| {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.unwrap();
                let done = list
                    .items
                    .iter()
                    .filter(|s| s.name_any().starts_with("svc-"))
                    .filter(|s| {
                        s.status
                            .as_ref()
                            .and_then(|st| st.load_balancer.as_ref())
                            .and_then(|lb| lb.ingress.as_ref())
                            .is_some_and(|i| !i.is_empty())
                    })
                    .count();
                (done == N).then_some(())
            }
        })
        .await;
        task.abort();
        let svc = api.get("svc-7").await.unwrap();
        assert_eq!(
            svc.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
                .ip
                .as_deref(),
            Some("198.51.100.8")
        );
        let node_ports: std::collections::HashSet<i32> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| s.name_any().starts_with("svc-"))
            .filter_map(|s| s.spec.as_ref()?.ports.as_ref()?[0].node_port)
            .collect();
        assert_eq!(node_ports.len(), N, "every Service got its own nodePort");
    })
    .await
}
