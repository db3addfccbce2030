//! The process contract every IronLB binary keeps (issue 2): it reads the kubeconfig it
//! is given, serves `/healthz`, `/readyz` and `/metrics` on `--health-listen`, logs JSON
//! lines with `--log-format json`, and exits 0 soon after SIGTERM. Also `ironlb-lab
//! apiserver`, the embedded API server as a command that kubectl can use.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlb_e2e::support::{binary_path, free_port, TestCluster};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// GET `path` on `addr`: (status code, body), or None while nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((code, body))
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// Waits for `child` to exit after SIGTERM; its exit status must be success.
fn exits_cleanly(mut child: Child, name: &str) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{name} exited with {status} after SIGTERM"
            );
            return;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("{name} did not exit within {WAIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every non-empty line of `file` is one JSON object with a level and a message.
fn assert_json_lines(file: &Path, name: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{name} logged nothing");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}: not a JSON log line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{name}: no level in {line}");
    }
}

/// Starts `binary` with the common flags and `extra`, checks the health server and the
/// JSON logs, then SIGTERM and a clean exit.
fn check_binary(cluster: &TestCluster, binary: &str, extra: &[&str]) {
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = cluster.dir().join(format!("{binary}.log"));
    let child = Command::new(binary_path(binary))
        .arg("--kubeconfig")
        .arg(cluster.admin_kubeconfig())
        .args([
            "--health-listen",
            &health.to_string(),
            "--log-format",
            "json",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&format!("{binary} /healthz"), || {
        http_get(health, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    wait_for(&format!("{binary} /readyz"), || {
        http_get(health, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    let (code, metrics) = http_get(health, "/metrics").unwrap();
    assert_eq!(code, 200, "{binary} /metrics");
    assert!(metrics.contains("# TYPE"), "{binary} /metrics: {metrics}");
    sigterm(&child);
    exits_cleanly(child, binary);
    assert_json_lines(&log, binary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_serves_health_logs_json_and_exits_on_sigterm() {
    let cluster = TestCluster::start().await.unwrap();
    // The speaker is ready once it has its heartbeat key (the chart's membership Secret).
    let client = cluster.admin.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "ironlb-system"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ironlb-memberlist", "namespace": "ironlb-system"},
        "stringData": {"key": "a-test-key-of-enough-length-0123456789"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, "ironlb-system")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let heartbeat = free_port().to_string();
    let (http, https) = (free_port().to_string(), free_port().to_string());
    let cluster = tokio::task::spawn_blocking(move || {
        check_binary(&cluster, "ironlb-controller", &["--leader-elect=false"]);
        check_binary(
            &cluster,
            "ironlb-speaker",
            &["--node-name", "node1", "--heartbeat-port", &heartbeat],
        );
        check_binary(
            &cluster,
            "ironlb-gateway",
            &[
                "--http-listen",
                &format!("127.0.0.1:{http}"),
                "--https-listen",
                &format!("127.0.0.1:{https}"),
            ],
        );
        cluster
    })
    .await
    .unwrap();
    drop(cluster);
}

#[test]
fn ironlb_lab_apiserver_runs_alone_for_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(binary_path("ironlb-lab"))
        .args(["apiserver", "--listen", &listen, "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the kubeconfig", || kubeconfig.exists());
    let kubectl = ironlb_e2e::tools::tool("kubectl").unwrap();
    let mut out = None;
    wait_for("kubectl get namespaces", || {
        let o = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespaces", "-o", "name"])
            .output()
            .unwrap();
        let ok = o.status.success();
        out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
        ok
    });
    assert!(out.unwrap().contains("namespace/default"));
    sigterm(&child);
    exits_cleanly(child, "ironlb-lab apiserver");
}

/// `ironlb-lab up` leaves a working lab and describes it in JSON; a user's kubectl and
/// curl work against it; `ironlb-lab down` removes every namespace it made.
#[test]
fn ironlb_lab_up_describes_a_working_lab_and_down_removes_it() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let lab = |verb: &str| {
        let out = Command::new(binary_path("ironlb-lab"))
            .args([verb, "--state"])
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ironlb-lab {verb}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    lab("up");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let client_ns = d["client"]["netns"].as_str().unwrap().to_string();
    let kubeconfig = d["kubeconfig"].as_str().unwrap();
    let web = d["vips"]["default/web"][0].as_str().unwrap();
    let kubectl = ironlb_e2e::tools::tool("kubectl").unwrap();
    let nodes = Command::new(&kubectl)
        .args(["--kubeconfig", kubeconfig, "get", "nodes", "-o", "name"])
        .output()
        .unwrap();
    let curl = ironlb_netlab::run_in(
        &client_ns,
        "curl",
        ["-sS", "--max-time", "5", &format!("http://{web}:8080/")],
    );
    // Down before asserting: a failed assertion must not leave the lab behind.
    lab("down");
    assert!(
        String::from_utf8_lossy(&nodes.stdout).contains("node/node1"),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    let curl = curl.unwrap();
    assert!(curl.stdout.contains("\"service\""), "{curl:?}");
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&client_ns),
        "namespaces left behind"
    );
    assert!(!state.exists(), "the state file is removed");
}
