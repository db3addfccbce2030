//! The ingress gateway in the network lab (issue 5, "lab tests"): the real controller,
//! speakers and gateways on the nodes, the embedded API server, and curl from the client
//! namespace through the gateway's LoadBalancer IP. One lab for every check: hosts and
//! paths, TLS with a CA made here and SNI for two hosts, the 308 redirect, HTTP/2,
//! WebSocket, 404, 503, an Ingress change, and endpoint removal under requests.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ironlb_e2e::demo;
use ironlb_e2e::lab_cluster::{LabCluster, SYSTEM_NAMESPACE};
use ironlb_e2e::support::fixtures::{ca_and_cert, tls_secret, Svc};
use ironlb_e2e::support::wait_until;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

struct Gw<'a> {
    lab: &'a LabCluster,
    ip: IpAddr,
}

impl Gw<'_> {
    /// curl from the client to `url` with `host:port` resolved to the gateway; returns
    /// (HTTP code, body).
    fn get(&self, host: &str, port: u16, url: &str, extra: &[&str]) -> (String, String) {
        let resolve = format!("{host}:{port}:{}", self.ip);
        let mut args = vec!["-sS", "--max-time", "5", "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-w", "\n%{http_code} %{http_version}", url]);
        let (_, out) = self.lab.curl_from_client(&args).expect("curl runs");
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.trim().to_string(), body.to_string())
    }
}

async fn create<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

fn path(p: &str, kind: &str, service: &str, port: u16) -> serde_json::Value {
    json!({"path": p, "pathType": kind,
           "backend": {"service": {"name": service, "port": {"number": port}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_routes_hosts_paths_tls_and_follows_changes_in_the_lab() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let repo = ironlb_e2e::tools::repo_root();
    let (lab, _kubectl) = demo::start_lab(&repo).await.expect("lab");
    let client = lab.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");

    // The gateway's LoadBalancer Service gets an IP from the pool; the speakers announce it.
    Api::<Service>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .create(
            &PostParams::default(),
            &Svc::lb("ironlb-gateway")
                .namespace(SYSTEM_NAMESPACE)
                .ports([80, 443])
                .build(),
        )
        .await
        .unwrap();
    let ip = lab
        .wait_for_ips(SYSTEM_NAMESPACE, "ironlb-gateway", 1, WAIT)
        .await
        .unwrap()[0];
    let gw = Gw { lab: &lab, ip };

    // Backends: web on node1+node2, api on node2+node3, and a Service with no endpoint.
    lab.deploy_echo("default", "web", &[0, 1], 8080)
        .await
        .unwrap();
    lab.deploy_echo("default", "api", &[1, 2], 8081)
        .await
        .unwrap();
    for (name, port) in [("web", 8080), ("api", 8081), ("empty", 8082)] {
        services
            .create(
                &PostParams::default(),
                &Svc::of_type(name, "ClusterIP").ports([port]).build(),
            )
            .await
            .unwrap();
    }

    // Two TLS hosts, each with its own certificate from its own CA; curl trusts only
    // that host's CA, so a successful verification shows SNI picked the right one.
    let (ca_a, cert_a, key_a) = ca_and_cert("a.lab.example").unwrap();
    let (ca_b, cert_b, key_b) = ca_and_cert("b.lab.example").unwrap();
    let ca_file = |host: &str, pem: &str| {
        let path = lab.dir().join(format!("{host}-ca.pem"));
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let cas = BTreeMap::from([
        ("a.lab.example", ca_file("a.lab.example", &ca_a)),
        ("b.lab.example", ca_file("b.lab.example", &ca_b)),
    ]);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for secret in [
        tls_secret("default", "a-tls", &cert_a, &key_a),
        tls_secret("default", "b-tls", &cert_b, &key_b),
    ] {
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create");
    }

    create(
        &Api::<k8s_openapi::api::networking::v1::IngressClass>::all(client.clone()),
        json!({"metadata": {"name": "ironlb"}, "spec": {"controller": "ironlb.io/ingress-gateway"}}),
    )
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    create(
        &ingresses,
        json!({
            "metadata": {"name": "lab"},
            "spec": {
                "ingressClassName": "ironlb",
                "tls": [{"hosts": ["a.lab.example"], "secretName": "a-tls"},
                        {"hosts": ["b.lab.example"], "secretName": "b-tls"}],
                "rules": [
                    {"host": "a.lab.example", "http": {"paths": [
                        path("/", "Prefix", "web", 8080),
                        path("/api", "Prefix", "api", 8081),
                        path("/exact", "Exact", "api", 8081),
                        path("/empty", "Prefix", "empty", 8082)]}},
                    {"host": "b.lab.example", "http": {"paths": [path("/", "Prefix", "api", 8081)]}}
                ]
            }
        }),
    )
    .await;

    // Hosts and paths over TLS, with the CA bundle; HTTP/2 by ALPN.
    let https = |host: &str, p: &str| {
        gw.get(
            host,
            443,
            &format!("https://{host}{p}"),
            &["--cacert", &cas[host], "--http2"],
        )
    };
    wait_until("the gateway to serve a.lab.example", WAIT, || {
        let ok = https("a.lab.example", "/").0 == "200 2";
        async move { ok.then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; last: {:?}", https("a.lab.example", "/")));
    for (host, p, service) in [
        ("a.lab.example", "/", "web"),
        ("a.lab.example", "/apix", "web"),
        ("a.lab.example", "/api", "api"),
        ("a.lab.example", "/api/v1/items", "api"),
        ("a.lab.example", "/exact", "api"),
        ("a.lab.example", "/exact/more", "web"),
        ("b.lab.example", "/anything", "api"),
    ] {
        let (code, body) = https(host, p);
        assert_eq!(code, "200 2", "{host}{p}: {body}");
        assert!(
            body.contains(&format!("\"service\": \"{service}\"")),
            "{host}{p} should reach {service}: {body}"
        );
    }
    // 503 without endpoints, 404 for an unknown host, 308 from plain HTTP on a TLS host.
    assert_eq!(https("a.lab.example", "/empty").0, "503 2");
    let (code, _) = gw.get("nobody.lab.example", 80, "http://nobody.lab.example/", &[]);
    assert_eq!(code, "404 1.1");
    let (code, _) = gw.get("a.lab.example", 80, "http://a.lab.example/x", &[]);
    assert_eq!(code, "308 1.1");

    // WebSocket: the upgrade goes through and a frame comes back from the echo backend.
    let ws = format!(
        r#"
import base64, os, socket
s = socket.create_connection(("{ip}", 80), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: a.lab.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode())
payload = b"hello-lab"
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
frame = s.recv(2 + len(payload))
print(frame[2:].decode())
"#
    );
    // Plain HTTP to a TLS host is redirected, so the WebSocket goes to a host without TLS.
    create(
        &ingresses,
        json!({"metadata": {"name": "ws"}, "spec": {"ingressClassName": "ironlb", "rules": [
            {"host": "ws.lab.example", "http": {"paths": [path("/", "Prefix", "web", 8080)]}}]}}),
    )
    .await;
    let ws = ws.replace("Host: a.lab.example", "Host: ws.lab.example");
    let out = wait_until("a WebSocket echo through the gateway", WAIT, || {
        let out = ironlb_netlab::run_in(&lab.lab.client().netns, "python3", ["-c", &ws]).unwrap();
        async move { out.stdout.contains("hello-lab").then_some(out.stdout) }
    })
    .await
    .unwrap();
    assert!(out.starts_with("HTTP/1.1 101"), "{out}");

    // An Ingress change is served: a new path, timed from the API write.
    let written = Instant::now();
    ingresses
        .patch(
            "lab",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "add",
                    "path": "/spec/rules/0/http/paths/-",
                    "value": path("/new", "Prefix", "api", 8081)}]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    wait_until("the new path to be served", WAIT, || {
        let body = https("a.lab.example", "/new").1;
        async move { body.contains("\"service\": \"api\"").then_some(()) }
    })
    .await
    .unwrap();
    // A figure, not an assertion (shared machine): issue 5 asks for under a second.
    println!("Ingress change served after {:?}", written.elapsed());

    // Endpoint removal under requests: none fails.
    let resolve = format!("a.lab.example:80:{ip}");
    let script = format!(
        "for i in $(seq 1 150); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 5 \
         -H 'Host: ws.lab.example' --resolve {resolve} http://{ip}/; sleep 0.01; done"
    );
    let netns = lab.lab.client().netns.clone();
    let load =
        std::thread::spawn(move || ironlb_netlab::run_in(&netns, "bash", ["-c", &script]).unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.publish_endpoints("default", "web", &[1], 8080)
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || load.join().unwrap())
        .await
        .unwrap();
    let codes: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(codes.len(), 150, "{}", out.stderr);
    let failed: Vec<&&str> = codes.iter().filter(|c| **c != "200").collect();
    assert!(
        failed.is_empty(),
        "failed during endpoint removal: {failed:?}"
    );
}
