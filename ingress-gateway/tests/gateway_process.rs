//! The real `ironlb-gateway` binary against the embedded API server and in-process echo
//! backends on 127.0.0.1, driven with curl: Host routing, a live Ingress change, 404 for
//! an unknown host, TLS with SNI and a CA the test made, Ingress status, /readyz, and a
//! clean exit on SIGTERM.
//!
//! Needs the binaries: `cargo build -p ironlb-gateway --bins` first.

use std::net::SocketAddr;
use std::time::Duration;

use ironlb_e2e::support::fixtures::{ca_and_cert, tls_secret};
use ironlb_e2e::support::{binary_path, free_port, spawn, wait_until, TestCluster};
use ironlb_echo::EchoConfig;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// `curl -s ARGS`, returning (HTTP status, body); status 0 when curl could not connect.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The `service` an echo backend reported, if the answer was a 200 from one.
fn echo_service((status, body): &(u16, String)) -> Option<String> {
    if *status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("service")?
        .as_str()
        .map(String::from)
}

fn create_json<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

async fn backend(client: &kube::Client, name: &str, echo: SocketAddr) {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &create_json(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": echo.port()}]}
            })),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices
        .create(
            &PostParams::default(),
            &create_json(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": echo.port(), "protocol": "TCP"}],
                "endpoints": [{"addresses": [echo.ip().to_string()], "conditions": {"ready": true}}]
            })),
        )
        .await
        .unwrap();
}

fn shop_ingress(service: &str) -> Value {
    json!({
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {
            "ingressClassName": "ironlb",
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]
        }
    })
}

/// A CA and a certificate for `host` signed by it: (CA PEM, cert PEM, key PEM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_routes_hosts_follows_changes_serves_tls_and_exits_on_sigterm() {
    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.admin.clone();
    let web_a = EchoConfig::new("web-a", "a-0")
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let web_b = EchoConfig::new("web-b", "b-0")
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Api::<IngressClass>::all(admin.clone())
        .create(
            &PostParams::default(),
            &create_json(json!({"metadata": {"name": "ironlb"}, "spec": {"controller": "ironlb.io/ingress-gateway"}})),
        )
        .await
        .unwrap();
    backend(&admin, "web-a", web_a.addr()).await;
    backend(&admin, "web-b", web_b.addr()).await;
    let (ca, crt, key) = ca_and_cert("shop.example.com").unwrap();
    let secret = tls_secret("default", "shop-tls", &crt, &key);
    Api::<Secret>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), "default");
    ingresses
        .create(&PostParams::default(), &create_json(shop_ingress("web-a")))
        .await
        .unwrap();
    // The gateway's own LoadBalancer Service, with an address from the controller.
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &create_json(
                json!({"metadata": {"name": "gateway", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}}),
            ),
        )
        .await
        .unwrap();
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.80"}]}}});
    services
        .patch_status("gateway", &PatchParams::default(), &Patch::Merge(&lb))
        .await
        .unwrap();
    let ca_file = cluster.dir().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();

    let (http, https, health) = (free_port(), free_port(), free_port());
    let kubeconfig = cluster
        .kubeconfig_for("system:serviceaccount:ironlb:gateway")
        .unwrap();
    let mut cmd = std::process::Command::new(binary_path("ironlb-gateway"));
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--https-listen", &format!("127.0.0.1:{https}")])
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--publish-service", "default/gateway"])
        .args(["--access-log", "false"])
        .args(["--drain-timeout", "2s"])
        .stdout(std::process::Stdio::null());
    let mut gateway = spawn(cmd).unwrap();

    let readyz = format!("http://127.0.0.1:{health}/readyz");
    wait_until("/readyz", WAIT, || async {
        (curl(&[&readyz]).await.0 == 200).then_some(())
    })
    .await
    .unwrap();

    let plain = format!("http://127.0.0.1:{http}/cart");
    let secure = format!("https://shop.example.com:{https}/cart");
    let resolve = format!("shop.example.com:{https}:127.0.0.1");
    let via_tls = || async {
        curl(&[
            "--cacert",
            ca_file.to_str().unwrap(),
            "--resolve",
            &resolve,
            &secure,
        ])
        .await
    };
    // The host has TLS: plain HTTP is redirected (ssl-redirect defaults to on).
    let redirect = curl(&["-H", "Host: shop.example.com", &plain]).await;
    assert_eq!(redirect.0, 308, "{redirect:?}");
    assert_eq!(echo_service(&via_tls().await).as_deref(), Some("web-a"));

    // Unknown host: the gateway's 404.
    let unknown = curl(&["-H", "Host: nowhere.example.com", &plain]).await;
    assert_eq!(unknown.0, 404, "{unknown:?}");

    // A live change of the backend.
    ingresses
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&shop_ingress("web-b")),
        )
        .await
        .unwrap();
    wait_until("shop.example.com served by web-b", WAIT, || async {
        (echo_service(&via_tls().await).as_deref() == Some("web-b")).then_some(())
    })
    .await
    .unwrap();

    // Ingress status from the publish Service, written by the gateway's identity.
    wait_until("Ingress status", WAIT, || async {
        let ing = ingresses.get("shop").await.ok()?;
        let ips: Vec<String> = ing
            .status?
            .load_balancer?
            .ingress?
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        (ips == ["192.0.2.80"]).then_some(())
    })
    .await
    .unwrap();
    let status_writers: Vec<String> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "ingresses" && r.subresource == "status" && r.verb == "patch")
        .map(|r| r.user)
        .collect();
    assert!(!status_writers.is_empty());
    assert!(
        status_writers
            .iter()
            .all(|u| u == "system:serviceaccount:ironlb:gateway"),
        "{status_writers:?}"
    );

    // SIGTERM: drain (at most --drain-timeout) and a clean exit well within the grace.
    let status = gateway.stop().expect("the gateway exits");
    assert!(status.success(), "{status:?}");
}
