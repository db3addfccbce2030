//! The echo binary as a backend "pod" inside the network lab: the data path the demo
//! uses, with a static neighbour entry standing in for the speaker.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ironlb_echo::EchoReply;
use ironlb_netlab::{
    command_in, require_root_or_skip, run_in_ok, spawn, wait_tcp_in, Lab, LabConfig,
};

#[test]
fn the_client_curls_an_echo_pod_on_a_node_through_a_vip() {
    if !require_root_or_skip() {
        return;
    }
    let lab = Lab::build(&LabConfig::nodes(2)).unwrap();
    let node = lab.node(2);
    let vip: IpAddr = "192.0.2.120".parse().unwrap();
    lab.add_vip(node, vip).unwrap();
    let mut cmd = command_in(&node.netns, env!("CARGO_BIN_EXE_ironlb-echo"));
    cmd.args(["--listen", "0.0.0.0:8080", "--listen", "[::]:8081"])
        .args(["--service", "web", "--pod", "web-node2"])
        .stdout(std::process::Stdio::null());
    let _pod = spawn(cmd).unwrap();
    let ready: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    wait_tcp_in(&node.netns, ready, Duration::from_secs(30)).unwrap();

    // What a speaker would make the client learn by ARP.
    run_in_ok(
        &lab.client().netns,
        "ip",
        [
            "neigh",
            "replace",
            "192.0.2.120",
            "lladdr",
            &node.mac,
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    let curl = |url: &str, extra: &[&str]| -> EchoReply {
        let mut args = vec!["-sS", "--max-time", "10"];
        args.extend_from_slice(extra);
        args.push(url);
        let body = run_in_ok(&lab.client().netns, "curl", args).unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    let reply = curl("http://192.0.2.120:8080/hello?from=client", &[]);
    assert_eq!(reply.pod, "web-node2");
    assert_eq!(reply.path, "/hello?from=client");
    assert_eq!(reply.host, "192.0.2.120:8080");
    assert!(reply.client.starts_with("192.0.2.1:"), "{}", reply.client);
    assert_eq!(reply.local, "192.0.2.120:8080");

    let h2 = curl("http://192.0.2.120:8080/", &["--http2-prior-knowledge"]);
    assert_eq!(h2.protocol, "HTTP/2.0");

    let v6 = curl(&format!("http://[{}]:8081/v6", node.ipv6), &[]);
    assert_eq!(v6.client.split("]:").next(), Some("[2001:db8:1::1"));
}
