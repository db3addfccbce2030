//! THE restart test: 1,000 Services assigned by the real binary, which is then killed
//! (SIGKILL) and started again: the allocator is seeded from status, zero IPs change
//! and not one Service status is written.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::{free_port, spawn, wait_until, ProcessGuard};
use kube::api::ListParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const N: usize = 1000;
const USER: &str = "system:serviceaccount:ironlb-system:controller";

fn start_binary(kubeconfig: &std::path::Path, port: u16) -> ProcessGuard {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironlb-controller"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--health-listen",
            &format!("127.0.0.1:{port}"),
            "--namespace",
            "ironlb-system",
        ])
        .args(["--pod-name", "controller-0"])
        .env("RUST_LOG", "warn");
    spawn(cmd).expect("controller starts")
}

async fn metrics(port: u16) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

async fn snapshot(env: &Env) -> BTreeMap<String, Vec<String>> {
    env.services("default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some("kubernetes"))
        .map(|s| (s.metadata.name.clone().unwrap(), ips(s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_controller_moves_no_ip_among_1000_services() {
    let env = Env::start().await;
    env.create_pool(pool("lan", ["198.18.0.0/20"])).await;
    let kubeconfig = env.cluster.kubeconfig_for(USER).unwrap();
    let port = free_port();
    let mut controller = start_binary(&kubeconfig, port);

    let api = env.services("default");
    futures::stream::iter(0..N)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut svc = Svc::lb(&format!("svc-{i}")).build();
                svc.spec.as_mut().unwrap().allocate_load_balancer_node_ports = Some(false);
                api.create(&Default::default(), &svc).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let before = wait_until(
        "all 1000 Services to have an IP",
        Duration::from_secs(120),
        || async {
            let snap = snapshot(&env).await;
            snap.values().all(|ips| ips.len() == 1).then_some(snap)
        },
    )
    .await
    .unwrap();
    assert_eq!(before.len(), N);
    let distinct: std::collections::BTreeSet<_> = before.values().collect();
    assert_eq!(distinct.len(), N, "no IP handed out twice");

    controller.kill();
    let writes_before = env.status_writes_by(USER);
    let mut controller = start_binary(&kubeconfig, port);
    wait_until(
        "the restarted controller to lead and finish its pass",
        Duration::from_secs(120),
        || async {
            let m = metrics(port).await?;
            m.lines()
                .any(|l| l == "ironlb_controller_synced 1")
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&env).await, before, "zero IPs changed");
    assert_eq!(
        env.status_writes_by(USER),
        writes_before,
        "no Service status rewritten"
    );

    // What the restarted controller exports: the pool's usage per family (seeded from
    // status, so all 1000 in use at once) and the reconciles it timed.
    let pool_line = |metric: &str, family: &str| {
        format!("ironlb_controller_{metric}{{pool=\"lan\",family=\"{family}\"}}")
    };
    let m = wait_until(
        "the restarted controller's pool gauges",
        Duration::from_secs(30),
        || async {
            let m = metrics(port).await?;
            (sample(&m, &pool_line("pool_addresses_in_use", "ipv4")) == Some(N as f64)).then_some(m)
        },
    )
    .await
    .unwrap();
    let expect = [
        ("pool_addresses_in_use", "ipv4", N as f64),
        ("pool_addresses_total", "ipv4", 4096.0),
        ("pool_addresses_in_use", "ipv6", 0.0),
        ("pool_addresses_total", "ipv6", 0.0),
    ];
    for (metric, family, want) in expect {
        let line = pool_line(metric, family);
        assert_eq!(sample(&m, &line), Some(want), "{line} in:\n{m}");
    }
    let reconciles = sample(&m, "ironlb_controller_reconcile_duration_seconds_count")
        .unwrap_or_else(|| panic!("no reconcile_duration_seconds_count in:\n{m}"));
    assert!(
        reconciles >= N as f64,
        "every Service reconciled and timed: {reconciles}"
    );
    assert_eq!(sample(&m, "ironlb_controller_leader"), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "ironlb_controller_services_managed"),
        Some(N as f64),
        "{m}"
    );
    controller.stop();
}

/// The value of the sample named exactly `name` (with its labels) in an exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}
