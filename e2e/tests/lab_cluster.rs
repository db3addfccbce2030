//! The lab orchestrator itself: the API server is reachable from inside every node
//! namespace with the component kubeconfigs, the kubelet's objects exist, and the
//! kube-proxy part puts Service IPs on the nodes' `lo`.

use ironlb_e2e::lab_cluster::{LabCluster, LabClusterConfig, SPEAKER_USER, SYSTEM_NAMESPACE};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use std::time::Duration;

fn kubectl() -> String {
    ironlb_e2e::tools::tool("kubectl")
        .expect("kubectl (scripts/ensure-deps.sh installs it)")
        .to_string_lossy()
        .into_owned()
}

/// The lab with its API server, kubelet and kube-proxy parts, but no IronLB component.
async fn lab_without_components() -> LabCluster {
    LabCluster::start(LabClusterConfig {
        controller: false,
        speakers: false,
        ..Default::default()
    })
    .await
    .expect("lab cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_is_reachable_from_every_node_namespace() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let lab = lab_without_components().await;

    let nodes: Api<Node> = Api::all(lab.client());
    let names: Vec<String> = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    let pods: Api<Pod> = Api::namespaced(lab.client(), SYSTEM_NAMESPACE);
    let speaker_pod = pods.get("ironlb-speaker-node2").await.unwrap();
    let status = speaker_pod.status.unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("192.0.2.12"));

    let kubeconfig = lab.dir().join("speaker-node.kubeconfig");
    for i in 0..3 {
        let out = ironlb_netlab::run_in(
            &lab.node(i).netns,
            &kubectl(),
            [
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "get",
                "nodes",
                "-o",
                "name",
            ],
        )
        .unwrap();
        assert!(
            out.success(),
            "kubectl in {}: {}",
            lab.node(i).netns,
            out.stderr
        );
        assert!(out.stdout.contains("node/node1"), "{}", out.stdout);
    }
    let recorded = lab.cluster.api.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r.user == SPEAKER_USER && r.resource == "nodes" && r.verb == "list"),
        "requests from inside the node namespaces are recorded under the speaker's identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_proxy_part_puts_service_ips_on_every_node() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let lab = lab_without_components().await;
    let svc = ironlb_e2e::support::fixtures::Svc::of_type("ext", "ClusterIP")
        .external_ips(&["192.0.2.241"])
        .build();
    Api::namespaced(lab.client(), "default")
        .create(&Default::default(), &svc)
        .await
        .unwrap();
    for i in 0..3 {
        let ns = lab.node(i).netns.clone();
        ironlb_e2e::support::wait_until("the external IP on lo", Duration::from_secs(10), || {
            let out =
                ironlb_netlab::run_in(&ns, "ip", ["-o", "addr", "show", "dev", "lo"]).unwrap();
            async move { out.stdout.contains("192.0.2.241/32").then_some(()) }
        })
        .await
        .unwrap();
    }
}
