//! End-to-end controller benchmark (prints figures, asserts nothing about time):
//!
//! `bench/controller/run.sh` (or `cargo run --release -p ironlb-controller --example
//! controller_bench -- [N]` after `cargo build --release -p ironlb-controller`).
//!
//! 1. The embedded API server runs in this process with IronLB's CRDs and one IPPool.
//! 2. The real release `ironlb-controller` binary runs as a child (leader election on).
//! 3. N LoadBalancer Services are created; we time until every one has its IP (seen
//!    through a watch) and read the child's peak RSS (VmHWM).
//! 4. The child is killed (SIGKILL) and started again with the same pod name; we time
//!    until it has seeded and re-checked every Service (`ironlb_controller_synced 1`),
//!    then count changed IPs and Service status writes made after the restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::{spawn, ProcessGuard, TestCluster};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "system:serviceaccount:ironlb-system:controller";

fn controller_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("IRONLB_CONTROLLER_BIN") {
        return Ok(p.into());
    }
    // target/<profile>/examples/controller_bench -> target/<profile>/ironlb-controller
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("locating the target directory")?;
    let bin = dir.join("ironlb-controller");
    anyhow::ensure!(bin.exists(), "{} not built", bin.display());
    Ok(bin)
}

fn start(bin: &PathBuf, kubeconfig: &std::path::Path, port: u16) -> anyhow::Result<ProcessGuard> {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--health-listen",
            &format!("127.0.0.1:{port}"),
            "--namespace",
            "ironlb-system",
            "--pod-name",
            "controller-0",
        ])
        .env("RUST_LOG", "warn");
    Ok(spawn(cmd)?)
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

async fn wait_metric(port: u16, line: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if let Some(m) = http_get(port, "/metrics").await {
            if m.lines().any(|l| l == line) {
                return Ok(start.elapsed());
            }
        }
        anyhow::ensure!(start.elapsed() < timeout, "timed out waiting for `{line}`");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn status_writes(cluster: &TestCluster) -> usize {
    cluster
        .api
        .requests()
        .iter()
        .filter(|r| {
            r.user == USER
                && r.resource == "services"
                && r.subresource == "status"
                && r.verb == "patch"
        })
        .count()
}

fn first_ip(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5000);
    let bin = controller_binary()?;
    let cluster = TestCluster::start().await?;
    let client = cluster.admin.clone();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "ironlb-system"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Api::<ironlb_api::IPPool>::all(client.clone())
        .create(&PostParams::default(), &pool("bench", ["198.19.0.0/16"]))
        .await?;
    let kubeconfig = cluster.kubeconfig_for(USER)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();

    let mut controller = start(&bin, &kubeconfig, port)?;
    wait_metric(port, "ironlb_controller_synced 1", Duration::from_secs(60)).await?;

    // Watch the outcome: one watch, no polling load on the API server.
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
        let stream = watcher(watch_api, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = ev {
                if let Some(ip) = first_ip(&s) {
                    let _ = done_tx.send((s.metadata.name.clone().unwrap_or_default(), ip));
                }
            }
        }
    });

    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut svc = Svc::lb(&format!("svc-{i}")).build();
                svc.spec
                    .as_mut()
                    .expect("spec")
                    .allocate_load_balancer_node_ports = Some(false);
                api.create(&PostParams::default(), &svc).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = t0.elapsed();
    let mut assigned: HashMap<String, String> = HashMap::new();
    while assigned.len() < n {
        let (name, ip) = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
            .await
            .context("waiting for IPs")?
            .context("watch ended")?;
        assigned.insert(name, ip);
    }
    let all_assigned = t0.elapsed();
    watch.abort();
    let hwm = proc_status_kib(controller.pid(), "VmHWM:").unwrap_or(0);
    let rss = proc_status_kib(controller.pid(), "VmRSS:").unwrap_or(0);
    let writes_first = status_writes(&cluster);

    let before: HashMap<String, Option<String>> = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), first_ip(s)))
        .collect();

    controller.kill();
    let t1 = Instant::now();
    let mut controller = start(&bin, &kubeconfig, port)?;
    wait_metric(port, "ironlb_controller_synced 1", Duration::from_secs(60)).await?;
    let reseeded = t1.elapsed();
    let hwm_restart = proc_status_kib(controller.pid(), "VmHWM:").unwrap_or(0);
    let after: HashMap<String, Option<String>> = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), first_ip(s)))
        .collect();
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .count();
    let writes_after = status_writes(&cluster) - writes_first;
    controller.stop();

    println!("controller end-to-end benchmark, {n} LoadBalancer Services, embedded API server");
    println!(
        "  created all Services:            {:>8.2} s",
        created.as_secs_f64()
    );
    println!(
        "  every Service has its IP:        {:>8.2} s   (target < 10 s)",
        all_assigned.as_secs_f64()
    );
    println!(
        "  controller peak RSS (VmHWM):     {:>8.1} MiB (target < 64 MiB; VmRSS at end {:.1} MiB)",
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("  status writes (first run):       {writes_first:>8}");
    println!("  restart → seeded + all checked:  {:>8.2} s   (target < 3 s; includes process start and the initial LIST)", reseeded.as_secs_f64());
    println!(
        "  restarted peak RSS (VmHWM):      {:>8.1} MiB",
        hwm_restart as f64 / 1024.0
    );
    println!("  IPs changed by the restart:      {changed:>8}   (target 0)");
    println!("  status writes after the restart: {writes_after:>8}");
    Ok(())
}
