//! `cargo run --release -p ironlb-apiserver --example bench_services -- 5000`
//!
//! Creates N LoadBalancer Services through kube-rs while a kube-rs Controller patches
//! each one's status with server-side apply; prints how long creation and the whole
//! round took. A figure to watch, never an assertion. The Services do not ask for node
//! ports (`allocateLoadBalancerNodePorts: false`): as on a real cluster, the NodePort
//! range holds only 2768 ports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ironlb_apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use serde_json::json;

struct Ctx {
    api: Api<Service>,
    done: std::sync::Mutex<std::collections::HashSet<String>>,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let api = &ctx.api;
    let n: u32 = svc
        .name_any()
        .trim_start_matches("svc-")
        .parse()
        .unwrap_or(0);
    let ip = format!("198.18.{}.{}", 128 + n / 250, n % 250 + 1);
    let status = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    api.patch_status(
        &svc.name_any(),
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&status),
    )
    .await?;
    ctx.done
        .lock()
        .expect("not poisoned")
        .insert(svc.name_any());
    Ok(Action::await_change())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5000);
    let server = ApiServer::start(ApiServerConfig::default()).await?;
    let yaml = server.kubeconfig_yaml(server.admin_token(), &server.url());
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&yaml)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        done: Default::default(),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(100)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    tokio::spawn(controller);

    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}
                }))
                .expect("valid Service");
                api.create(&PostParams::default(), &svc).await
            }
        })
        .buffer_unordered(32)
        .fold(0usize, |failed, r| async move {
            if let Err(e) = &r {
                if failed == 0 {
                    eprintln!("create failed: {e}");
                }
            }
            failed + usize::from(r.is_err())
        })
        .await;
    let created = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut elapsed = start.elapsed();
    loop {
        // Counted by the controller itself: polling a 5000-item list would skew the figure.
        let done = ctx.done.lock().expect("not poisoned").len();
        if done > n || Instant::now() > deadline {
            let list = api.list(&ListParams::default()).await?;
            let with_status = list
                .items
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .and_then(|st| st.load_balancer.as_ref())
                        .and_then(|lb| lb.ingress.as_ref())
                        .is_some_and(|i| !i.is_empty())
                })
                .count();
            println!(
                "services={n} created_in={:.2}s all_status_in={:.2}s with_status={with_status} (incl. default/kubernetes)",
                created.as_secs_f64(),
                elapsed.as_secs_f64()
            );
            break;
        }
        elapsed = start.elapsed();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
