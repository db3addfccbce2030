//! A whole IronLB installation in the network lab, run the way a cluster runs it.
//!
//! [`LabCluster`] puts the two harnesses together: the network lab (a client and N nodes
//! on a bridged LAN) and the embedded API server, reachable at `127.0.0.1:6443` from
//! inside every node namespace (a listener bound in each namespace and served by the
//! in-process server). On top it plays the parts a cluster would:
//! - the kubelet: Node objects, one Ready speaker Pod per node (hostNetwork, so its
//!   podIP is the node's IP), the membership-key Secret;
//! - kube-proxy (IPVS mode): every LoadBalancer IP and allowed external IP is put on
//!   every node's `lo` with `arp_ignore=1`, so nodes accept the traffic but only a
//!   speaker answers ARP/NDP for it;
//! - Deployments: echo backends on nodes, with their Service and EndpointSlice.
//!
//! The IronLB programs are the real binaries, started as processes with a kubeconfig
//! each: the controller in the root namespace, a speaker and a gateway per node.
//! Their logs go to files in [`LabCluster::dir`].

use crate::support::{binary_path, TestCluster};
use anyhow::Context as _;
use ironlb_netlab::{command_in, spawn, Host, Lab, LabConfig, ProcessGuard};
use k8s_openapi::api::core::v1::{
    Namespace, Node, NodeAddress, NodeCondition, NodeStatus, Pod, PodCondition, PodIP, PodSpec,
    PodStatus, Secret, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Namespace IronLB runs in, as the chart installs it.
pub const SYSTEM_NAMESPACE: &str = "ironlb-system";
/// Name of the Secret holding the speakers' heartbeat key.
pub const MEMBERLIST_SECRET: &str = "ironlb-speaker-membership";
/// Port of the API server inside every node namespace.
pub const NODE_API_PORT: u16 = 6443;
/// UDP port of speaker heartbeats.
pub const HEARTBEAT_PORT: u16 = 7473;
/// Health ports inside a node namespace (each namespace has its own loopback).
pub const SPEAKER_HEALTH: &str = "127.0.0.1:9091";
pub const GATEWAY_HEALTH: &str = "127.0.0.1:9092";
/// Identities the API server records requests under (for the RBAC proof).
pub const CONTROLLER_USER: &str = "system:serviceaccount:ironlb-system:ironlb-controller";
pub const SPEAKER_USER: &str = "system:serviceaccount:ironlb-system:ironlb-speaker";
pub const GATEWAY_USER: &str = "system:serviceaccount:ironlb-system:ironlb-gateway";

/// What to start.
#[derive(Debug, Clone)]
pub struct LabClusterConfig {
    pub nodes: usize,
    /// A named lab outlives this process (`ironlb-lab up`).
    pub name: Option<String>,
    pub controller: bool,
    pub speakers: bool,
    pub gateways: bool,
    /// CIDRs inside which the speakers announce `spec.externalIPs` (empty: off).
    pub external_ips_allowed: Vec<String>,
    /// Extra flags per component, e.g. for a benchmark's shorter heartbeat timeout.
    pub speaker_args: Vec<String>,
}

impl Default for LabClusterConfig {
    fn default() -> Self {
        LabClusterConfig {
            nodes: 3,
            name: None,
            controller: true,
            speakers: true,
            gateways: false,
            external_ips_allowed: Vec::new(),
            speaker_args: Vec::new(),
        }
    }
}

/// A running lab with IronLB in it. Dropping it stops every process and removes the
/// namespaces (unless the lab was persisted).
pub struct LabCluster {
    /// Declared before `lab` so processes stop before their namespaces go away.
    processes: Mutex<BTreeMap<String, ProcessGuard>>,
    pub cluster: TestCluster,
    pub lab: Arc<Lab>,
    pub config: LabClusterConfig,
    kubeconfigs: BTreeMap<&'static str, (PathBuf, PathBuf)>,
    kube_proxy_stop: CancellationToken,
}

impl LabCluster {
    /// Builds the lab, starts the API server, registers nodes and speaker pods, and
    /// starts the components the config asks for.
    pub async fn start(config: LabClusterConfig) -> anyhow::Result<LabCluster> {
        let mut lab_cfg = LabConfig::nodes(config.nodes);
        if let Some(name) = &config.name {
            lab_cfg = lab_cfg.named(name);
        }
        let lab = Arc::new(Lab::build(&lab_cfg).context("building the network lab")?);
        let cluster = TestCluster::start().await?;
        for node in lab.nodes() {
            let listener = ironlb_netlab::bind_tcp_in(
                &node.netns,
                SocketAddr::from(([127, 0, 0, 1], NODE_API_PORT)),
            )
            .with_context(|| format!("binding the API server inside {}", node.netns))?;
            cluster.api.serve_listener(listener);
        }
        let mut kubeconfigs = BTreeMap::new();
        for (component, user) in [
            ("controller", CONTROLLER_USER),
            ("speaker", SPEAKER_USER),
            ("gateway", GATEWAY_USER),
        ] {
            let token = cluster.api.add_user(user);
            let root = cluster.dir().join(format!("{component}.kubeconfig"));
            std::fs::write(
                &root,
                cluster.api.kubeconfig_yaml(&token, &cluster.api.url()),
            )?;
            let in_node = cluster.dir().join(format!("{component}-node.kubeconfig"));
            let url = format!("https://127.0.0.1:{NODE_API_PORT}");
            std::fs::write(&in_node, cluster.api.kubeconfig_yaml(&token, &url))?;
            kubeconfigs.insert(component, (root, in_node));
        }
        let this = LabCluster {
            processes: Mutex::new(BTreeMap::new()),
            cluster,
            lab,
            config,
            kubeconfigs,
            kube_proxy_stop: CancellationToken::new(),
        };
        this.register_nodes().await?;
        this.spawn_kube_proxy();
        if this.config.controller {
            this.start_controller()?;
        }
        if this.config.speakers {
            for i in 0..this.lab.nodes().len() {
                this.start_speaker(i)?;
            }
        }
        if this.config.gateways {
            for i in 0..this.lab.nodes().len() {
                this.start_gateway(i)?;
            }
        }
        Ok(this)
    }

    /// Scratch directory: kubeconfigs and process logs.
    pub fn dir(&self) -> &Path {
        self.cluster.dir()
    }

    /// The admin client.
    pub fn client(&self) -> kube::Client {
        self.cluster.admin.clone()
    }

    /// Node `i` (0-based) of the lab.
    pub fn node(&self, i: usize) -> &Host {
        &self.lab.nodes()[i]
    }

    /// Index of the node whose MAC is `mac`.
    pub fn node_by_mac(&self, mac: &str) -> Option<usize> {
        self.lab
            .nodes()
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(mac))
    }

    // === the kubelet's part ===

    async fn register_nodes(&self) -> anyhow::Result<()> {
        let client = self.client();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(SYSTEM_NAMESPACE.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .context("creating namespace ironlb-system")?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
        let key: String = (0..32)
            .map(|i| char::from(b'a' + ((i * 7 + 3) % 26) as u8))
            .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(MEMBERLIST_SECRET.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "key".to_string(),
                ByteString(key.into_bytes()),
            )])),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .context("creating the memberlist Secret")?;
        let nodes: Api<Node> = Api::all(client.clone());
        for host in self.lab.nodes() {
            nodes
                .create(&PostParams::default(), &node_object(host))
                .await
                .with_context(|| format!("creating Node {}", host.role))?;
            self.set_node_ready(host, true).await?;
            self.put_speaker_pod(host).await?;
        }
        Ok(())
    }

    /// Sets the Node's Ready condition (status subresource), as the kubelet would.
    pub async fn set_node_ready(&self, host: &Host, ready: bool) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client());
        let mut node = nodes.get_status(&host.role).await?;
        node.status = Some(node_status(host, ready));
        nodes
            .replace_status(&host.role, &PostParams::default(), &node)
            .await
            .with_context(|| format!("updating Node {} status", host.role))?;
        Ok(())
    }

    async fn put_speaker_pod(&self, host: &Host) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client(), SYSTEM_NAMESPACE);
        let name = format!("ironlb-speaker-{}", host.role);
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), "ironlb".to_string()),
                    (
                        "app.kubernetes.io/component".to_string(),
                        "speaker".to_string(),
                    ),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(host.role.clone()),
                host_network: Some(true),
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "speaker".into(),
                    image: Some("ironlb/speaker:lab".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        pods.create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating Pod {name}"))?;
        self.set_pod_ready(&name, &host.ipv4.to_string(), true)
            .await
    }

    /// Sets a Pod's Ready condition and podIP (status subresource), as the kubelet would.
    pub async fn set_pod_ready(&self, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client(), SYSTEM_NAMESPACE);
        let mut pod = pods.get_status(name).await?;
        let status = if ready { "True" } else { "False" };
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.to_string()),
            pod_ips: Some(vec![PodIP { ip: ip.to_string() }]),
            host_ip: Some(ip.to_string()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: status.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pods.replace_status(name, &PostParams::default(), &pod)
            .await
            .with_context(|| format!("updating Pod {name} status"))?;
        Ok(())
    }

    // === kube-proxy's part ===

    /// Keeps every Service IP (status and allowed externalIPs) on every node's `lo`.
    fn spawn_kube_proxy(&self) {
        let services: Api<Service> = Api::all(self.client());
        let lab = self.lab.clone();
        let stop = self.kube_proxy_stop.clone();
        tokio::spawn(async move {
            let mut placed: BTreeSet<IpAddr> = BTreeSet::new();
            loop {
                if let Ok(list) = services.list(&Default::default()).await {
                    let wanted: BTreeSet<IpAddr> =
                        list.items.iter().flat_map(service_ips).collect();
                    for ip in wanted.difference(&placed) {
                        for node in lab.nodes() {
                            if let Err(e) = lab.add_vip(node, *ip) {
                                tracing::debug!(%ip, node = %node.role, error = %e, "placing VIP");
                            }
                        }
                    }
                    for ip in placed.difference(&wanted) {
                        for node in lab.nodes() {
                            let _ = lab.remove_vip(node, *ip);
                        }
                    }
                    placed = wanted;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
    }

    // === the IronLB processes ===

    fn kubeconfig(&self, component: &str, in_node: bool) -> &Path {
        let (root, node) = &self.kubeconfigs[component];
        if in_node {
            node
        } else {
            root
        }
    }

    /// Path of a kubeconfig for `component` (`controller`, `speaker`, `gateway`) usable
    /// from the root namespace.
    pub fn kubeconfig_for(&self, component: &str) -> PathBuf {
        self.kubeconfig(component, false).to_path_buf()
    }

    fn start_process(
        &self,
        key: &str,
        netns: Option<&str>,
        binary: &str,
        args: &[String],
    ) -> anyhow::Result<()> {
        self.start_program(key, netns, &binary_path(binary), args)
    }

    /// Starts `program` (in `netns`, if given) with its output in the lab's `key.log`.
    fn start_program(
        &self,
        key: &str,
        netns: Option<&str>,
        program: &Path,
        args: &[String],
    ) -> anyhow::Result<()> {
        let log_path = self.dir().join(format!("{key}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = match netns {
            Some(ns) => command_in(ns, program),
            None => std::process::Command::new(program),
        };
        cmd.args(args)
            .env(
                "RUST_LOG",
                std::env::var("IRONLB_LAB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let guard = spawn(cmd).with_context(|| format!("starting {key}"))?;
        self.processes
            .lock()
            .expect("process table")
            .insert(key.to_string(), guard);
        Ok(())
    }

    /// Starts `ironlb-controller` in the root namespace.
    pub fn start_controller(&self) -> anyhow::Result<()> {
        let args = vec![
            "--kubeconfig".into(),
            self.kubeconfig("controller", false).display().to_string(),
            "--health-listen".into(),
            "127.0.0.1:0".into(),
            "--namespace".into(),
            SYSTEM_NAMESPACE.into(),
        ];
        self.start_process("controller", None, "ironlb-controller", &args)
    }

    /// Starts `ironlb-speaker` on node `i`.
    pub fn start_speaker(&self, i: usize) -> anyhow::Result<()> {
        let host = self.node(i).clone();
        let mut args = vec![
            "--kubeconfig".into(),
            self.kubeconfig("speaker", true).display().to_string(),
            "--health-listen".into(),
            SPEAKER_HEALTH.into(),
            "--node-name".into(),
            host.role.clone(),
            "--namespace".into(),
            SYSTEM_NAMESPACE.into(),
            "--memberlist-secret".into(),
            format!("{SYSTEM_NAMESPACE}/{MEMBERLIST_SECRET}"),
        ];
        if !self.config.external_ips_allowed.is_empty() {
            args.push("--externalips-enabled".into());
            for cidr in &self.config.external_ips_allowed {
                args.push("--externalips-allowed-cidr".into());
                args.push(cidr.clone());
            }
        }
        args.extend(self.config.speaker_args.iter().cloned());
        // With CAP_NET_RAW alone, as the chart runs it (capabilities drop ALL, add
        // NET_RAW): the bounding set limits what root keeps across exec.
        let mut wrapped: Vec<String> = vec![
            "--bounding-set=-all,+net_raw".into(),
            "--".into(),
            binary_path("ironlb-speaker").display().to_string(),
        ];
        wrapped.extend(args);
        self.start_program(
            &format!("speaker-{}", host.role),
            Some(&host.netns),
            Path::new("setpriv"),
            &wrapped,
        )
    }

    /// Starts `ironlb-gateway` on node `i`, listening on the node's ports 80 and 443.
    pub fn start_gateway(&self, i: usize) -> anyhow::Result<()> {
        let host = self.node(i).clone();
        let args = vec![
            "--kubeconfig".into(),
            self.kubeconfig("gateway", true).display().to_string(),
            "--health-listen".into(),
            GATEWAY_HEALTH.into(),
            "--http-listen".into(),
            "[::]:80".into(),
            "--https-listen".into(),
            "[::]:443".into(),
            "--publish-service".into(),
            format!("{SYSTEM_NAMESPACE}/ironlb-gateway"),
            // One status writer is enough; every gateway serves traffic.
            "--update-status".into(),
            (i == 0).to_string(),
        ];
        self.start_process(
            &format!("gateway-{}", host.role),
            Some(&host.netns),
            "ironlb-gateway",
            &args,
        )
    }

    /// Kills a process started by this lab (SIGKILL, as a crash).
    pub fn kill(&self, key: &str) {
        if let Some(mut p) = self.processes.lock().expect("process table").remove(key) {
            p.kill();
        }
    }

    /// The pid of a process started by this lab, if it is known.
    pub fn pid(&self, key: &str) -> Option<u32> {
        self.processes
            .lock()
            .expect("process table")
            .get(key)
            .map(|p| p.pid())
    }

    /// Whether a process started by this lab is still running.
    pub fn is_running(&self, key: &str) -> bool {
        self.processes
            .lock()
            .expect("process table")
            .get_mut(key)
            .is_some_and(|p| p.is_running())
    }

    /// The last `lines` lines of a process's log, for failure messages.
    pub fn log_tail(&self, key: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir().join(format!("{key}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A node dies: its speaker and gateway are killed and its link goes down.
    pub async fn kill_node(&self, i: usize) -> anyhow::Result<()> {
        let host = self.node(i).clone();
        self.kill(&format!("speaker-{}", host.role));
        self.kill(&format!("gateway-{}", host.role));
        self.lab.kill_node(&host)?;
        Ok(())
    }

    /// A dead node comes back: link up and its speaker (and gateway) restarted.
    pub async fn revive_node(&self, i: usize) -> anyhow::Result<()> {
        let host = self.node(i).clone();
        self.lab.set_link(&host, true)?;
        if self.config.speakers {
            self.start_speaker(i)?;
        }
        if self.config.gateways {
            self.start_gateway(i)?;
        }
        Ok(())
    }

    // === workloads ===

    /// Runs `ironlb-echo` as the pods of Service `name` on the given nodes, listening on
    /// `port` on every address of the node, and publishes their EndpointSlice.
    pub async fn deploy_echo(
        &self,
        namespace: &str,
        name: &str,
        nodes: &[usize],
        port: u16,
    ) -> anyhow::Result<()> {
        for &i in nodes {
            let host = self.node(i).clone();
            let pod = format!("{name}-{}", host.role);
            let args = vec![
                "--listen".into(),
                format!("[::]:{port}"),
                "--service".into(),
                name.to_string(),
                "--pod".into(),
                pod.clone(),
            ];
            self.start_process(
                &format!("echo-{namespace}-{pod}"),
                Some(&host.netns),
                "ironlb-echo",
                &args,
            )?;
            ironlb_netlab::wait_tcp_in(
                &host.netns,
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(10),
            )
            .with_context(|| format!("waiting for echo pod {pod} on {}", host.role))?;
        }
        self.publish_endpoints(namespace, name, nodes, port).await
    }

    /// (Re)writes the EndpointSlice of Service `name`: one ready endpoint per node listed.
    pub async fn publish_endpoints(
        &self,
        namespace: &str,
        name: &str,
        nodes: &[usize],
        port: u16,
    ) -> anyhow::Result<()> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client(), namespace);
        let slice_name = format!("{name}-lab");
        let endpoints = nodes
            .iter()
            .map(|&i| {
                let host = self.node(i);
                Endpoint {
                    addresses: vec![host.ipv4.to_string()],
                    node_name: Some(host.role.clone()),
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(slice_name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/service-name".to_string(), name.to_string()),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        "ironlb-lab".to_string(),
                    ),
                ])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(vec![EndpointPort {
                name: Some(crate::support::fixtures::port_name(port.into(), "TCP")),
                port: Some(port.into()),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        };
        // Replaced in place, as the EndpointSlice controller does: a delete and a create
        // would leave the Service without endpoints for an instant.
        let mut slice = slice;
        match slices.get_opt(&slice_name).await? {
            Some(old) => {
                slice.metadata.resource_version = old.metadata.resource_version;
                slices
                    .replace(&slice_name, &PostParams::default(), &slice)
                    .await
                    .context("replacing the EndpointSlice")?;
            }
            None => {
                slices
                    .create(&PostParams::default(), &slice)
                    .await
                    .context("creating the EndpointSlice")?;
            }
        }
        Ok(())
    }

    /// Waits until Service `ns/name` has `count` IPs in `status.loadBalancer.ingress`.
    pub async fn wait_for_ips(
        &self,
        namespace: &str,
        name: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<IpAddr>> {
        let services: Api<Service> = Api::namespaced(self.client(), namespace);
        crate::support::wait_until(
            &format!("Service {namespace}/{name} to get {count} IP(s)"),
            timeout,
            || {
                let services = services.clone();
                async move {
                    let svc = services.get(name).await.ok()?;
                    let ips = status_ips(&svc);
                    (ips.len() >= count).then_some(ips)
                }
            },
        )
        .await
    }

    /// Runs `curl` in the client namespace; returns (exit success, stdout + stderr).
    pub fn curl_from_client(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let out = ironlb_netlab::run_in(&self.lab.client().netns, "curl", args)?;
        Ok((out.success(), format!("{}{}", out.stdout, out.stderr)))
    }

    /// Which node answers ARP for `vip`: the distinct MACs of `count` arping replies.
    pub fn arp_answerers(
        &self,
        vip: std::net::Ipv4Addr,
        count: u32,
    ) -> anyhow::Result<Vec<String>> {
        Ok(self.lab.arping_from_client(vip, count)?.distinct())
    }

    /// Stops every process, then removes the lab (also done on drop).
    pub fn shutdown(&self) {
        self.kube_proxy_stop.cancel();
        let mut procs = self.processes.lock().expect("process table");
        for (_, p) in procs.iter_mut() {
            p.stop();
        }
        procs.clear();
    }

    /// Time since `start`, for printing.
    pub fn since(start: Instant) -> String {
        format!("{:.0} ms", start.elapsed().as_secs_f64() * 1000.0)
    }
}

impl Drop for LabCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The IPs a Service's traffic may arrive on: its load-balancer status IPs and its
/// `spec.externalIPs`.
pub fn service_ips(svc: &Service) -> Vec<IpAddr> {
    let mut ips = status_ips(svc);
    if let Some(external) = svc.spec.as_ref().and_then(|s| s.external_ips.as_ref()) {
        ips.extend(external.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()));
    }
    ips
}

/// `status.loadBalancer.ingress[].ip` of a Service.
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn node_object(host: &Host) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(host.role.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), host.role.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn node_status(host: &Host, ready: bool) -> NodeStatus {
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: host.ipv4.to_string(),
            },
            NodeAddress {
                type_: "InternalIP".into(),
                address: host.ipv6.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: host.role.clone(),
            },
        ]),
        conditions: Some(vec![
            NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            },
            NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    }
}
