//! Benchmark, not a test (ignored; `bench/gateway-updates/run.sh` runs it in release and
//! records the figures in `bench/gateway-updates/RESULTS.md`). Nothing is asserted about
//! time or memory: the figures are printed.
//!
//! The real `ironlb-gateway` binary against the embedded API server with 1,000 Ingresses
//! × 10 paths = 10,000 rules (TLS on every fourth host), backends are in-process echo
//! servers on 127.0.0.1 (the other tenants' endpoints are unused 127.1.x.y addresses).
//! It prints:
//! - RSS of the gateway process, empty and with 10,000 rules;
//! - time until all 10,000 rules were served after a bulk create;
//! - route-update propagation under load: `wrk` keeps one route busy while the `probe`
//!   Ingress is switched between two Services 200 times; each switch is timed from the
//!   PATCH's answer to the first request (on a kept-alive connection) answered by the
//!   new backend;
//! - failed requests during the 200 updates (wrk's errors and non-2xx answers, and any
//!   non-200 answer the prober saw).
//!
//! Knobs: `BENCH_INGRESSES` (1000), `BENCH_PATHS` (10), `BENCH_UPDATES` (200),
//! `BENCH_CONNECTIONS` (64).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Empty};
use ironlb_e2e::support::fixtures::tls_secret;
use ironlb_e2e::support::{binary_path, free_port, spawn, wait_until, TestCluster};
use ironlb_echo::EchoConfig;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn from_json<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

fn service(name: &str, target: u16) -> Service {
    from_json(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": target}]}
    }))
}

fn slice(service: &str, port: u16, ips: &[String]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    from_json(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
}

/// Ingress `i`: host `host-i.example.com`, `paths` Prefix paths to `svc-i`.
fn tenant_ingress(i: usize, paths: usize) -> Ingress {
    let paths: Vec<Value> = (0..paths)
        .map(|p| {
            let path = if p == 0 {
                "/".to_string()
            } else {
                format!("/api/v{p}")
            };
            json!({"path": path, "pathType": "Prefix",
                   "backend": {"service": {"name": format!("svc-{i}"), "port": {"number": 80}}}})
        })
        .collect();
    let host = format!("host-{i}.example.com");
    let mut v = json!({
        "metadata": {"name": format!("ing-{i}"), "namespace": "default"},
        "spec": {"ingressClassName": "ironlb",
                 "rules": [{"host": host, "http": {"paths": paths}}]}
    });
    if i.is_multiple_of(4) {
        v["spec"]["tls"] = json!([{"hosts": [host], "secretName": "shared-tls"}]);
    }
    from_json(v)
}

fn probe_ingress(service: &str) -> Value {
    json!({
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"ingressClassName": "ironlb",
                 "rules": [{"host": "probe.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    })
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

/// One GET with a Host header: (status, echo `service` if any).
async fn get(client: &HttpClient, addr: SocketAddr, host: &str) -> (u16, Option<String>) {
    let req = http::Request::get(format!("http://{addr}/"))
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if std::env::var_os("BENCH_DEBUG").is_some() && status != 200 {
                eprintln!("{host}: {status} {}", String::from_utf8_lossy(&body));
            }
            let service = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("service")?.as_str().map(String::from));
            (status, service)
        }
        Err(_) => (0, None),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/gateway-updates/run.sh"]
async fn gateway_updates_benchmark() {
    let ingresses = env_usize("BENCH_INGRESSES", 1000);
    let paths = env_usize("BENCH_PATHS", 10);
    let updates = env_usize("BENCH_UPDATES", 200);
    let connections = env_usize("BENCH_CONNECTIONS", 64);

    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.admin.clone();
    let echo_a = EchoConfig::new("probe-a", "a-0")
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let echo_b = EchoConfig::new("probe-b", "b-0")
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let echo_load = EchoConfig::new("svc-0", "load-0")
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Api::<IngressClass>::all(admin.clone())
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "ironlb"}, "spec": {"controller": "ironlb.io/ingress-gateway"}})),
        )
        .await
        .unwrap();

    // The gateway starts on an empty cluster: its empty RSS, then the bulk create.
    let (http_port, https_port, health_port) = (free_port(), free_port(), free_port());
    let kubeconfig = cluster
        .kubeconfig_for("system:serviceaccount:ironlb:gateway")
        .unwrap();
    let mut cmd = std::process::Command::new(binary_path("ironlb-gateway"));
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .args(["--https-listen", &format!("127.0.0.1:{https_port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
        .args(["--access-log", "false"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let mut gateway = spawn(cmd).unwrap();
    let pid = gateway.pid();
    let http_client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let health: SocketAddr = format!("127.0.0.1:{health_port}").parse().unwrap();
    let readyz = || async {
        let req = http::Request::get(format!("http://{health}/readyz"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        match http_client.request(req).await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    };
    wait_until("gateway ready", Duration::from_secs(60), readyz)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_empty, _) = rss_kib(pid);

    // 10,000 rules: Services with 3 endpoints on loopback addresses where nothing listens
    // (a request there gets a quick 502; traffic never leaves 127.0.0.0/8), except
    // svc-0, the load target, which is the echo server.
    let created = Instant::now();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["*.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = tls_secret("default", "shared-tls", &cert.pem(), &key.serialize_pem());
    Api::<Secret>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &tls)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");
    let ings: Api<Ingress> = Api::namespaced(admin.clone(), "default");
    let load_port = echo_load.addr().port();
    futures::stream::iter(0..ingresses)
        .map(|i| {
            let (services, slices, ings) = (services.clone(), slices.clone(), ings.clone());
            async move {
                let name = format!("svc-{i}");
                let (port, ips) = if i == 0 {
                    (load_port, vec!["127.0.0.1".to_string()])
                } else {
                    let ips = (0..3)
                        .map(|e| format!("127.1.{}.{}", i / 250, (i % 250) + e + 1))
                        .collect();
                    (8080, ips)
                };
                services
                    .create(&PostParams::default(), &service(&name, port))
                    .await?;
                slices
                    .create(&PostParams::default(), &slice(&name, port, &ips))
                    .await?;
                ings.create(&PostParams::default(), &tenant_ingress(i, paths))
                    .await?;
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    for (name, echo) in [("probe-a", &echo_a), ("probe-b", &echo_b)] {
        let port = echo.addr().port();
        services
            .create(&PostParams::default(), &service(name, port))
            .await
            .unwrap();
        slices
            .create(
                &PostParams::default(),
                &slice(name, port, &["127.0.0.1".to_string()]),
            )
            .await
            .unwrap();
    }
    ings.create(&PostParams::default(), &from_json(probe_ingress("probe-a")))
        .await
        .unwrap();
    let objects_done = created.elapsed();
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let last_host = format!("host-{}.example.com", ingresses - 1);
    wait_until("every rule served", Duration::from_secs(120), || async {
        let probe = get(&http_client, addr, "probe.example.com").await;
        let last = get(&http_client, addr, &last_host).await;
        // Nothing listens behind the last tenant: 502 means "routed".
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!("probe {probe:?} last {last:?}");
        }
        (probe.1.as_deref() == Some("probe-a") && last.0 != 404).then_some(())
    })
    .await
    .unwrap();
    let all_served = created.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_10k, _) = rss_kib(pid);

    // Load on one route for the whole update phase.
    let wrk = tokio::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            "-d120s",
            "--latency",
            "-H",
            "Host: host-0.example.com",
            &format!("http://{addr}/api/v1/orders"),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wrk on PATH");
    let wrk_pid = wrk.id().expect("wrk pid");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies_ms = Vec::with_capacity(updates);
    let mut probe_requests = 0u64;
    let mut probe_failures = 0u64;
    let started = Instant::now();
    for u in 0..updates {
        let target = if u % 2 == 0 { "probe-b" } else { "probe-a" };
        let patch = probe_ingress(target);
        ings.patch("probe", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let t = Instant::now();
        loop {
            let (status, service) = get(&http_client, addr, "probe.example.com").await;
            probe_requests += 1;
            if status != 200 {
                probe_failures += 1;
            }
            if service.as_deref() == Some(target) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "update {u} never served"
            );
        }
        latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let update_phase = started.elapsed();
    let (rss_load, hwm) = rss_kib(pid);
    // wrk prints its summary on SIGINT.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &wrk_pid.to_string()])
        .status();
    let out = wrk.wait_with_output().await.unwrap();
    let wrk_text = String::from_utf8_lossy(&out.stdout).to_string();

    let metrics = {
        let req = http::Request::get(format!("http://{health}/metrics"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = http_client.request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).to_string()
    };
    let metric = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("?")
            .to_string()
    };
    gateway.stop();

    let mut sorted = latencies_ms.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let wrk_line = |prefix: &str| {
        wrk_text
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| format!("{prefix}: none"))
    };
    println!("==== ironlb-gateway update benchmark ====");
    println!(
        "rules: {} ({} Ingresses × {} paths), TLS on every 4th host",
        ingresses * paths,
        ingresses,
        paths
    );
    println!(
        "gateway RSS empty:            {:.1} MiB",
        rss_empty as f64 / 1024.0
    );
    println!(
        "gateway RSS with the rules:   {:.1} MiB",
        rss_10k as f64 / 1024.0
    );
    println!(
        "gateway RSS under load+updates: {:.1} MiB (peak {:.1} MiB)",
        rss_load as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "bulk create: objects written in {:.2} s, every rule served after {:.2} s",
        objects_done.as_secs_f64(),
        all_served.as_secs_f64()
    );
    println!(
        "{updates} updates under load in {:.1} s; propagation ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        update_phase.as_secs_f64(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
    println!("prober: {probe_requests} requests, {probe_failures} not 200");
    println!(
        "snapshot swaps: {}",
        metric("ironlb_gateway_snapshot_swaps_total")
    );
    let builds: f64 = metric("ironlb_gateway_snapshot_build_seconds_count")
        .parse()
        .unwrap_or(f64::NAN);
    let build_secs: f64 = metric("ironlb_gateway_snapshot_build_seconds_sum")
        .parse()
        .unwrap_or(f64::NAN);
    println!(
        "snapshot builds: {builds}, mean {:.1} ms (whole run, bulk create included)",
        build_secs / builds * 1000.0
    );
    println!("wrk ({connections} connections on host-0.example.com during the updates):");
    for prefix in [
        "Requests/sec",
        "Latency",
        "Non-2xx",
        "Socket errors",
        "99%",
        "50%",
    ] {
        println!("  {}", wrk_line(prefix));
    }
    let total = wrk_text
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or("")
        .trim()
        .to_string();
    println!("  {total}");
}
