//! `ironlb-lab demo`: IronLB from zero to curl, in the network lab, step by step.
//!
//! Each step prints the commands it runs and what came back, and either succeeds or
//! fails with the step's name. Everything it creates is removed when it returns.

use crate::lab_cluster::{LabCluster, LabClusterConfig, SYSTEM_NAMESPACE};
use crate::support::fixtures::{ca_and_cert, tls_secret, Svc};
use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// External IP given to the gateway's Service in step 2 (inside the allowed range).
pub const GATEWAY_EXTERNAL_IP: &str = "192.0.2.240";
/// Range the speakers may announce `spec.externalIPs` in.
pub const EXTERNAL_IPS_ALLOWED: &str = "192.0.2.240/28";

/// Runs the demo; `Err` names the step that failed.
pub async fn run(repo: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let (lab, kubectl) = start_lab(repo).await?;
    let result = steps(&lab, &kubectl).await;
    match &result {
        Ok(()) => banner(&format!(
            "every step worked ({:.1} s); removing the lab",
            started.elapsed().as_secs_f64()
        )),
        Err(e) => {
            banner(&format!("FAILED: {e:#}"));
            print_logs(&lab);
        }
    }
    drop(lab);
    result
}

/// Step 0: the lab with IronLB running, the chart's CRDs and the example pool applied.
pub async fn start_lab(repo: &Path) -> anyhow::Result<(LabCluster, Kubectl)> {
    banner("0. building the lab: a client and 3 nodes on a bridged LAN, the embedded API server, IronLB on every node");
    let lab = LabCluster::start(LabClusterConfig {
        gateways: true,
        external_ips_allowed: vec![EXTERNAL_IPS_ALLOWED.into()],
        ..Default::default()
    })
    .await
    .context("step 0 (building the lab)")?;
    let d = lab.lab.description();
    say(&format!(
        "client {} ({}), nodes: {}",
        d.client.ipv4,
        d.client.netns,
        d.nodes
            .iter()
            .map(|n| format!("{} {} {}", n.role, n.ipv4, n.mac))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let kubectl = Kubectl::new(repo, lab.cluster.admin_kubeconfig());
    let crds = repo.join("charts/ironlb/crds/ironlb-crds.yaml");
    kubectl
        .run(&["apply", "--server-side", "-f", &crds.display().to_string()])
        .context("step 0 (applying the chart's CRDs)")?;
    let example = write_example(&lab)?;
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "-f",
            &example.display().to_string(),
        ])
        .context("step 0 (applying the example IPPool and L2Announcement)")?;
    kubectl.run(&["get", "ippools"]).ok();
    Ok((lab, kubectl))
}

/// Not a demo step: an Ingress of the gateway's class that it refuses (a snippet
/// annotation), and the Warning Event the gateway writes about it. Run by the RBAC test
/// so that the gateway's Event writing is among the requests checked. Returns the note.
pub async fn refused_ingress_warning(
    lab: &LabCluster,
    kubectl: &Kubectl,
) -> anyhow::Result<String> {
    banner("an Ingress with a snippet annotation: the gateway refuses it with a Warning Event");
    let path = lab.dir().join("refused-ingress.yaml");
    std::fs::write(&path, REFUSED_INGRESS_YAML)?;
    kubectl.run(&["apply", "-f", &path.display().to_string()])?;
    let events: Api<Event> = Api::namespaced(lab.client(), "default");
    let note = crate::support::wait_until(
        "a Warning Event from ironlb-gateway on Ingress default/refused",
        Duration::from_secs(20),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find_map(|e| {
                    let from_gateway = e.reporting_controller.as_deref() == Some("ironlb-gateway")
                        && e.type_.as_deref() == Some("Warning");
                    let regarding = e.regarding.as_ref()?;
                    let on_it = regarding.kind.as_deref() == Some("Ingress")
                        && regarding.name.as_deref() == Some("refused");
                    (from_gateway && on_it).then(|| {
                        format!(
                            "{}: {}",
                            e.reason.unwrap_or_default(),
                            e.note.unwrap_or_default()
                        )
                    })
                })
            }
        },
    )
    .await?;
    say(&format!("Warning Event: {note}"));
    Ok(note)
}

const REFUSED_INGRESS_YAML: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: refused
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/configuration-snippet: "more_set_headers 'X-Evil: 1';"
spec:
  ingressClassName: ironlb
  rules:
  - host: refused.lab.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: api, port: {number: 8081}}
"#;

/// The last log lines of every IronLB process, after a failure.
pub fn print_logs(lab: &LabCluster) {
    for key in [
        "controller",
        "speaker-node1",
        "speaker-node2",
        "speaker-node3",
        "gateway-node1",
        "gateway-node2",
    ] {
        let tail = lab.log_tail(key, 15);
        if !tail.is_empty() {
            println!("--- last lines of {key}.log ---\n{tail}");
        }
    }
}

/// Steps 1 to 4.
pub async fn steps(lab: &LabCluster, kubectl: &Kubectl) -> anyhow::Result<()> {
    let web_vip = step1_load_balancer(lab, kubectl)
        .await
        .context("step 1 (a LoadBalancer Service gets an IP and the client curls it)")?;
    step2_external_ips(lab, kubectl)
        .await
        .context("step 2 (the externalIPs story: the gateway's Service external IP)")?;
    step3_ingress(lab, kubectl)
        .await
        .context("step 3 (Ingress with two hosts, one with TLS)")?;
    step4_failover(lab, kubectl, web_vip)
        .await
        .context("step 4 (the owner node dies: failover)")?;
    Ok(())
}

async fn step1_load_balancer(lab: &LabCluster, kubectl: &Kubectl) -> anyhow::Result<Ipv4Addr> {
    banner("1. a LoadBalancer Service gets an IP from the pool, and the client curls it");
    lab.deploy_echo("default", "web", &[0, 1, 2], 8080).await?;
    say("echo pods web-node1..3 listen on :8080 (kube-proxy would forward across nodes; in the lab every node has a pod) (EndpointSlice published)");
    let svc = Svc::lb("web").ports([8080]).build();
    Api::<Service>::namespaced(lab.client(), "default")
        .create(&PostParams::default(), &svc)
        .await?;
    say("created Service default/web (type LoadBalancer, port 8080)");
    let ips = lab
        .wait_for_ips("default", "web", 1, Duration::from_secs(20))
        .await?;
    kubectl.run(&["get", "svc", "web", "-o", "wide"])?;
    let IpAddr::V4(vip) = ips[0] else {
        bail!("expected an IPv4 address first, got {}", ips[0])
    };
    wait_reachable(lab, vip, 8080, Duration::from_secs(15)).await?;
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            &format!("http://{vip}:8080/hello"),
        ],
        "\"service\": \"web\"",
    )?;
    let answerers = lab.arp_answerers(vip, 3)?;
    say(&format!(
        "$ arping -c 3 {vip}  (from the client)\n  answered by {answerers:?}"
    ));
    if answerers.len() != 1 {
        bail!("expected exactly one node to answer ARP for {vip}, got {answerers:?}");
    }
    Ok(vip)
}

async fn step2_external_ips(lab: &LabCluster, kubectl: &Kubectl) -> anyhow::Result<()> {
    banner("2. the externalIPs story: the gateway's Service carries spec.externalIPs, the speaker announces them");
    let svc = Svc::lb("ironlb-gateway")
        .namespace(SYSTEM_NAMESPACE)
        .ports([80, 443])
        .external_ips(&[GATEWAY_EXTERNAL_IP])
        .build();
    Api::<Service>::namespaced(lab.client(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &svc)
        .await?;
    say(&format!("created Service ironlb-system/ironlb-gateway (LoadBalancer, externalIPs [{GATEWAY_EXTERNAL_IP}], allowed range {EXTERNAL_IPS_ALLOWED})"));
    lab.wait_for_ips(
        SYSTEM_NAMESPACE,
        "ironlb-gateway",
        1,
        Duration::from_secs(20),
    )
    .await?;
    kubectl.run(&[
        "get",
        "svc",
        "-n",
        SYSTEM_NAMESPACE,
        "ironlb-gateway",
        "-o",
        "wide",
    ])?;
    let ext: Ipv4Addr = GATEWAY_EXTERNAL_IP.parse()?;
    wait_reachable(lab, ext, 80, Duration::from_secs(15)).await?;
    // No Ingress yet: the gateway answers with its default backend.
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "HTTP %{http_code}\n",
            &format!("http://{ext}/"),
        ],
        "HTTP 404",
    )?;
    Ok(())
}

async fn step3_ingress(lab: &LabCluster, kubectl: &Kubectl) -> anyhow::Result<()> {
    banner("3. an Ingress with two hosts, one with TLS: curl through Ingress hosts");
    let svc = lab
        .wait_for_ips(
            SYSTEM_NAMESPACE,
            "ironlb-gateway",
            1,
            Duration::from_secs(5),
        )
        .await?;
    let gw_ip = svc[0];
    lab.deploy_echo("default", "api", &[1, 2], 8081).await?;
    Api::<Service>::namespaced(lab.client(), "default")
        .create(
            &PostParams::default(),
            &Svc::of_type("api", "ClusterIP").ports([8081]).build(),
        )
        .await?;
    Api::<Service>::namespaced(lab.client(), "default")
        .create(
            &PostParams::default(),
            &Svc::of_type("web-internal", "ClusterIP")
                .ports([8080])
                .build(),
        )
        .await?;
    lab.publish_endpoints("default", "web-internal", &[0, 1], 8080)
        .await?;
    let (ca_pem, cert_pem, key_pem) = ca_and_cert("secure.lab.example")?;
    let ca_path = lab.dir().join("lab-ca.pem");
    std::fs::write(&ca_path, &ca_pem)?;
    let secret = tls_secret("default", "secure-tls", &cert_pem, &key_pem);
    Api::<Secret>::namespaced(lab.client(), "default")
        .create(&PostParams::default(), &secret)
        .await?;
    say("created Secret default/secure-tls (certificate for secure.lab.example, signed by a CA made for this demo)");
    let ingress = lab.dir().join("ingress.yaml");
    std::fs::write(&ingress, INGRESS_YAML)?;
    kubectl.run(&["apply", "-f", &ingress.display().to_string()])?;
    let host_web = format!("web.lab.example:80:{gw_ip}");
    let host_secure = format!("secure.lab.example:443:{gw_ip}");
    crate::support::wait_until(
        "the gateway to serve web.lab.example",
        Duration::from_secs(20),
        || {
            let args = [
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "2",
                "--resolve",
                &host_web,
                "http://web.lab.example/",
            ];
            let ok = lab
                .curl_from_client(&args)
                .map(|(_, out)| out.trim() == "200")
                .unwrap_or(false);
            async move { ok.then_some(()) }
        },
    )
    .await?;
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            "--resolve",
            &host_web,
            "http://web.lab.example/",
        ],
        "\"service\": \"web\"",
    )?;
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            "--http2",
            "--cacert",
            &ca_path.display().to_string(),
            "--resolve",
            &host_secure,
            "https://secure.lab.example/v1/items",
        ],
        "\"service\": \"api\"",
    )?;
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "HTTP %{http_code} -> %{redirect_url}\n",
            "--resolve",
            &format!("secure.lab.example:80:{gw_ip}"),
            "http://secure.lab.example/",
        ],
        "HTTP 308",
    )?;
    kubectl.run(&["get", "ingress", "demo"])?;
    Ok(())
}

async fn step4_failover(lab: &LabCluster, _kubectl: &Kubectl, vip: Ipv4Addr) -> anyhow::Result<()> {
    banner("4. the owner node dies: its speaker and link go; another node takes the IP over");
    let answerers = lab.arp_answerers(vip, 2)?;
    let owner_mac = answerers
        .first()
        .cloned()
        .context("nobody answers ARP for the VIP")?;
    let owner = lab
        .node_by_mac(&owner_mac)
        .context("the ARP answer comes from no node")?;
    say(&format!(
        "{vip} is announced by {} ({owner_mac})",
        lab.node(owner).role
    ));
    let killed = Instant::now();
    lab.kill_node(owner).await?;
    say(&format!(
        "killed {}: speaker and gateway SIGKILLed, link down",
        lab.node(owner).role
    ));
    let client_ns = lab.lab.client().netns.clone();
    let target = SocketAddr::from((vip, 8080));
    // A connection attempt every 20 ms, bounded by 15 s.
    let took = ironlb_netlab::in_netns(&client_ns, move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let attempt = Instant::now();
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                return Some(killed.elapsed());
            }
            let spent = attempt.elapsed();
            if spent < Duration::from_millis(20) {
                std::thread::sleep(Duration::from_millis(20) - spent);
            }
        }
        None
    })?;
    let Some(took) = took else {
        bail!("{vip}:8080 not reachable 15 s after the owner died")
    };
    let new = lab.arp_answerers(vip, 2)?;
    say(&format!(
        "first successful connection {:.0} ms after the kill; {vip} now answered by {new:?}",
        took.as_secs_f64() * 1000.0
    ));
    curl(
        lab,
        &[
            "-sS",
            "--max-time",
            "5",
            &format!("http://{vip}:8080/after-failover"),
        ],
        "\"service\": \"web\"",
    )?;
    Ok(())
}

/// The demo's IPPool and L2Announcement, as a user would write them.
fn write_example(lab: &LabCluster) -> anyhow::Result<PathBuf> {
    let path = lab.dir().join("lab-pool.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: lab\nspec:\n  addresses:\n  - {}\n  - {}\n---\napiVersion: ironlb.io/v1alpha1\nkind: L2Announcement\nmetadata:\n  name: lab\nspec: {{}}  # every pool, and the allowed externalIPs\n",
            ironlb_netlab::POOL_V4,
            ironlb_netlab::POOL_V6
        ),
    )?;
    Ok(path)
}

const INGRESS_YAML: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: ironlb
spec:
  controller: ironlb.io/ingress-gateway
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: demo
  namespace: default
spec:
  ingressClassName: ironlb
  tls:
  - hosts: [secure.lab.example]
    secretName: secure-tls
  rules:
  - host: web.lab.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web-internal, port: {number: 8080}}
  - host: secure.lab.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: api, port: {number: 8081}}
"#;

/// Waits until a TCP connection from the client to `ip:port` succeeds.
async fn wait_reachable(
    lab: &LabCluster,
    ip: Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<()> {
    ironlb_netlab::wait_tcp_in(
        &lab.lab.client().netns,
        SocketAddr::from((ip, port)),
        timeout,
    )
    .with_context(|| format!("the client cannot reach {ip}:{port}"))
}

/// Runs curl in the client namespace, prints it, and checks the output contains `expect`.
fn curl(lab: &LabCluster, args: &[&str], expect: &str) -> anyhow::Result<()> {
    println!("$ curl {}   (in the client namespace)", args.join(" "));
    let (ok, out) = lab.curl_from_client(args)?;
    for line in out.lines().take(12) {
        println!("  {line}");
    }
    if !ok || !out.contains(expect) {
        bail!("curl {} did not return {expect:?}", args.join(" "));
    }
    Ok(())
}

/// kubectl against the lab's API server, printing what it runs and what came back.
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(repo: &Path, kubeconfig: PathBuf) -> Kubectl {
        let local = repo.join(".tools/bin/kubectl");
        let program = if local.exists() {
            local
        } else {
            PathBuf::from("kubectl")
        };
        Kubectl {
            program,
            kubeconfig,
        }
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        println!("$ kubectl {}", args.join(" "));
        let out = std::process::Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.program.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            println!("  {line}");
        }
        if !out.status.success() {
            bail!("kubectl {} failed", args.join(" "));
        }
        Ok(text)
    }
}

fn banner(text: &str) {
    println!("\n==> {text}");
}

fn say(text: &str) {
    println!("    {text}");
}
