//! The speaker in the network lab (issue 4, "Tests in the network lab"): real
//! `ironlb-speaker` processes in node namespaces, the embedded API server, and a client
//! that resolves VIPs with arping / ndisc6 and connects over TCP.
//!
//! The real `ironlb-controller` assigns the IPs; each Service asks for its VIP through
//! `ironlb.io/ips`, so a test knows the address (and its elected owner) in advance.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use ironlb_api::names::CONDITION_ANNOUNCED;
use ironlb_api::{L2Announcement, L2AnnouncementSpec};
use ironlb_e2e::lab_cluster::{LabCluster, LabClusterConfig};
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::wait_until;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 8080;

/// One lab at a time: each runs three speakers, and the machine has two cores.
static ONE_LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A 3-node lab with the real controller and speakers, pool `lan` over the lab's free
/// ranges and an L2Announcement for every pool on every node.
async fn lab() -> LabCluster {
    let lab = LabCluster::start(LabClusterConfig::default())
        .await
        .expect("lab cluster starts");
    let pools: Api<ironlb_api::IPPool> = Api::all(lab.client());
    pools
        .create(
            &PostParams::default(),
            &pool("lan", [ironlb_netlab::POOL_V4, ironlb_netlab::POOL_V6]),
        )
        .await
        .expect("pool");
    let l2: Api<L2Announcement> = Api::all(lab.client());
    l2.create(
        &PostParams::default(),
        &L2Announcement::new("lan", L2AnnouncementSpec::default()),
    )
    .await
    .expect("L2Announcement");
    lab
}

/// Creates `svc` asking for `ips` (`ironlb.io/ips`) and waits until the real controller
/// has assigned them, so the test knows the VIPs in advance.
async fn assign(lab: &LabCluster, svc: Service, ips: &[&str]) {
    let name = svc.metadata.name.clone().unwrap();
    let mut svc = svc;
    svc.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("ironlb.io/ips".into(), ips.join(","));
    let api: Api<Service> = Api::namespaced(lab.client(), "default");
    api.create(&PostParams::default(), &svc)
        .await
        .expect("Service");
    let want: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    wait_until(
        &format!("the controller to assign {want:?} to {name}"),
        WAIT,
        || {
            let api = api.clone();
            let name = name.clone();
            let want = want.clone();
            async move {
                let svc = api.get(&name).await.ok()?;
                let got: Vec<String> = svc
                    .status?
                    .load_balancer?
                    .ingress?
                    .into_iter()
                    .filter_map(|i| i.ip)
                    .collect();
                (got == want).then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(lab)));
}

/// The elected owner among `live` nodes (0-based indexes), by the speaker's own rule.
fn owner(lab: &LabCluster, ip: &str, live: &[usize]) -> usize {
    let names: Vec<String> = live.iter().map(|&i| lab.node(i).role.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = ironlb_l2::owner(ip.parse().unwrap(), &refs).unwrap();
    live[names.iter().position(|n| n == o).unwrap()]
}

/// Waits until ARP for `vip` from the client is answered by exactly node `i`'s MAC,
/// then probes once more and returns (replies, distinct answerers).
async fn wait_arp_owner(lab: &LabCluster, vip: &str, i: usize) -> (usize, Vec<String>) {
    let mac = lab.node(i).mac.clone();
    let ip = vip.parse().unwrap();
    wait_until(&format!("{vip} answered by {mac} only"), WAIT, || {
        let got = lab.arp_answerers(ip, 2).unwrap_or_default();
        let want = vec![mac.clone()];
        async move { (got == want).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(lab)));
    let replies = lab.lab.arping_from_client(ip, 3).unwrap();
    (replies.count(), replies.distinct())
}

fn logs(lab: &LabCluster) -> String {
    (0..lab.lab.nodes().len())
        .map(|i| {
            let key = format!("speaker-{}", lab.node(i).role);
            let metrics = ironlb_netlab::run_in(
                &lab.node(i).netns,
                "curl",
                ["-s", "http://127.0.0.1:9091/metrics"],
            )
            .map(|o| {
                o.stdout
                    .lines()
                    .filter(|l| l.starts_with("ironlb_speaker"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
            format!("--- {key}:\n{}\n{metrics}", lab.log_tail(&key, 30))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A TCP server on every node answering each connection with the node's name: which
/// node a connection to a VIP reached.
fn serve_names(lab: &LabCluster) {
    for host in lab.lab.nodes() {
        let listener =
            ironlb_netlab::bind_tcp_in(&host.netns, SocketAddr::from(([0, 0, 0, 0], PORT)))
                .expect("listener in node");
        let name = host.role.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(name.as_bytes());
            }
        });
    }
}

/// Connects from the client to `vip:PORT`; the name of the node that answered.
fn connect_from_client(lab: &LabCluster, vip: IpAddr) -> Option<String> {
    ironlb_netlab::in_netns(&lab.lab.client().netns, move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::new(vip, PORT), Duration::from_millis(300))
                .ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let mut name = String::new();
        s.read_to_string(&mut name).ok()?;
        Some(name)
    })
    .ok()
    .flatten()
}

async fn announced_condition(lab: &LabCluster, name: &str) -> Option<(String, String)> {
    let api: Api<Service> = Api::namespaced(lab.client(), "default");
    let svc = api.get(name).await.ok()?;
    svc.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == CONDITION_ANNOUNCED)
        .map(|c| (c.status, c.message))
}

// === 1 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resolves_a_vip_to_the_elected_owner_and_exactly_one_node_answers() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    let vip = "192.0.2.100";
    assign(&lab, Svc::lb("web").build(), &[vip]).await;
    let o = owner(&lab, vip, &[0, 1, 2]);
    let (replies, answerers) = wait_arp_owner(&lab, vip, o).await;
    assert_eq!(replies, 3, "one reply per request");
    assert_eq!(answerers, [lab.node(o).mac.clone()]);
    // ... with CAP_NET_RAW as its only capability, as the chart runs it.
    let pid = lab.pid(&format!("speaker-{}", lab.node(o).role)).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    assert_eq!(effective, "0000000000002000", "CAP_NET_RAW (bit 13) only");

    let role = lab.node(o).role.clone();
    let (status, message) = wait_until("the announced condition", WAIT, || async {
        announced_condition(&lab, "web")
            .await
            .filter(|(s, _)| s == "True")
    })
    .await
    .unwrap();
    assert_eq!(status, "True");
    assert!(
        message.contains(&format!("announced by node {role} on interface eth0")),
        "{message}"
    );
}

// === 2 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_is_replaced_and_the_table_settles_again_when_it_returns() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    serve_names(&lab);
    let vip = "192.0.2.101";
    assign(&lab, Svc::lb("web").ports([PORT as i32]).build(), &[vip]).await;
    let first = owner(&lab, vip, &[0, 1, 2]);
    wait_arp_owner(&lab, vip, first).await;
    let ip: IpAddr = vip.parse().unwrap();
    let reached = wait_until("a connection through the owner", WAIT, || {
        let got = connect_from_client(&lab, ip);
        async move { got }
    })
    .await
    .unwrap();
    assert_eq!(reached, lab.node(first).role);

    lab.kill_node(first).await.unwrap();
    let rest: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = owner(&lab, vip, &rest);
    let want = lab.node(second).role.clone();
    wait_until("a connection through the new owner", WAIT, || {
        let got = connect_from_client(&lab, ip);
        let want = want.clone();
        async move { (got == Some(want)).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    let (_, answerers) = wait_arp_owner(&lab, vip, second).await;
    assert_eq!(answerers.len(), 1);

    lab.revive_node(first).await.unwrap();
    let (replies, answerers) = wait_arp_owner(&lab, vip, first).await;
    assert_eq!(replies, 3);
    assert_eq!(answerers, [lab.node(first).mac.clone()]);
}

// === 3 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_traffic_policy_local_only_a_node_with_a_ready_endpoint_announces() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    let vip = "192.0.2.102";
    // The endpoint goes on a node that would not win the election among all three.
    let everyone = owner(&lab, vip, &[0, 1, 2]);
    let chosen = (everyone + 1) % 3;
    lab.publish_endpoints("default", "local", &[chosen], PORT)
        .await
        .unwrap();
    assign(
        &lab,
        Svc::lb("local").traffic_policy_local().build(),
        &[vip],
    )
    .await;
    let (_, answerers) = wait_arp_owner(&lab, vip, chosen).await;
    assert_eq!(answerers, [lab.node(chosen).mac.clone()]);

    // The endpoint moves: so does the announcement.
    let next = (chosen + 1) % 3;
    lab.publish_endpoints("default", "local", &[next], PORT)
        .await
        .unwrap();
    let (_, answerers) = wait_arp_owner(&lab, vip, next).await;
    assert_eq!(answerers, [lab.node(next).mac.clone()]);
}

// === 4 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resolves_a_v6_vip_by_ndp() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    let vip = "2001:db8:1::100";
    assign(
        &lab,
        Svc::lb("web6").families("SingleStack", &["IPv6"]).build(),
        &[vip],
    )
    .await;
    let o = owner(&lab, vip, &[0, 1, 2]);
    let mac = lab.node(o).mac.clone();
    let ip = vip.parse().unwrap();
    let answerers = wait_until(&format!("NDP for {vip} answered by {mac}"), WAIT, || {
        let got = lab
            .lab
            .ndisc_from_client(ip)
            .map(|r| r.distinct())
            .unwrap_or_default();
        let want = vec![mac.clone()];
        async move { (got == want).then_some(got) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    assert_eq!(answerers, [mac]);
}

// === 5 ===

/// Sends `count` frames of garbage from the client's eth0 with Python's AF_PACKET
/// socket: random bytes, and ARP / IPv6 ND headers with random bodies, some aimed at
/// the VIP.
fn send_garbage(lab: &LabCluster, vip: &str, count: u32) {
    let script = format!(
        r#"
import os, random, socket, struct
random.seed(4)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
vip = socket.inet_aton("{vip}")
bcast = b"\xff" * 6
src = bytes([2, 0x66, 0, 0, 0, 1])
for i in range({count}):
    kind = i % 4
    if kind == 0:
        frame = os.urandom(random.randint(0, 200))
    elif kind == 1:
        body = os.urandom(random.randint(0, 40))
        frame = bcast + src + b"\x08\x06" + body
    elif kind == 2:
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, random.choice([4, 5, 0]), random.choice([1, 2, 3]))
        arp += src + os.urandom(4) + os.urandom(6) + vip
        frame = bcast + src + b"\x08\x06" + arp
    else:
        frame = b"\x33\x33\xff\x00\x01\x00" + src + b"\x86\xdd" + os.urandom(random.randint(0, 120))
    try:
        s.send(frame)
    except OSError:
        pass
"#
    );
    let out = ironlb_netlab::run_in(&lab.lab.client().netns, "python3", ["-c", &script])
        .expect("python3 runs");
    assert!(out.success(), "garbage sender failed: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_neither_crash_the_speakers_nor_change_what_they_announce() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    let vip = "192.0.2.103";
    assign(&lab, Svc::lb("web").build(), &[vip]).await;
    let o = owner(&lab, vip, &[0, 1, 2]);
    wait_arp_owner(&lab, vip, o).await;

    send_garbage(&lab, vip, 20_000);

    for i in 0..3 {
        let key = format!("speaker-{}", lab.node(i).role);
        assert!(
            lab.is_running(&key),
            "{key} died:\n{}",
            lab.log_tail(&key, 30)
        );
    }
    let (replies, answerers) = wait_arp_owner(&lab, vip, o).await;
    assert_eq!(replies, 3);
    assert_eq!(answerers, [lab.node(o).mac.clone()]);
}

// === link flap (re-announce when the interface comes back up) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_link_flaps_takes_its_ip_back_without_stealing_the_others() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let _one = ONE_LAB.lock().await;
    let lab = lab().await;
    serve_names(&lab);
    let vip = "192.0.2.104";
    let first = owner(&lab, vip, &[0, 1, 2]);
    // A second VIP owned by another node: the flapping node must not claim it.
    let other_vip = (105..200)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| owner(&lab, ip, &[0, 1, 2]) != first)
        .unwrap();
    let other_owner = owner(&lab, &other_vip, &[0, 1, 2]);
    assign(&lab, Svc::lb("flap").ports([PORT as i32]).build(), &[vip]).await;
    assign(
        &lab,
        Svc::lb("steady").ports([PORT as i32]).build(),
        &[&other_vip],
    )
    .await;
    let (ip, other_ip): (IpAddr, IpAddr) = (vip.parse().unwrap(), other_vip.parse().unwrap());
    for (ip, node) in [(ip, first), (other_ip, other_owner)] {
        let want = lab.node(node).role.clone();
        wait_until(&format!("{ip} reaching {want}"), WAIT, || {
            let got = connect_from_client(&lab, ip);
            let want = want.clone();
            async move { (got == Some(want)).then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    }

    // Unplug the owner's cable: another node takes over.
    lab.lab.set_link(lab.node(first), false).unwrap();
    let rest: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = lab.node(owner(&lab, vip, &rest)).role.clone();
    wait_until("the VIP reaching the new owner", WAIT, || {
        let got = connect_from_client(&lab, ip);
        let want = second.clone();
        async move { (got == Some(want)).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));

    // Plug it back: its speaker never died, so only the link-up announcement tells the
    // client (whose entry points at the interim owner) to come back.
    lab.lab.set_link(lab.node(first), true).unwrap();
    let back = lab.node(first).role.clone();
    wait_until(
        "the VIP reaching its owner again",
        Duration::from_secs(10),
        || {
            let got = connect_from_client(&lab, ip);
            let want = back.clone();
            async move { (got == Some(want)).then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    let other_mac = lab.node(other_owner).mac.clone();
    for _ in 0..10 {
        let entry = lab.lab.client_neighbour(other_ip).unwrap();
        assert_eq!(
            entry.and_then(|n| n.mac),
            Some(other_mac.clone()),
            "the other VIP must stay with its owner"
        );
        assert_eq!(
            connect_from_client(&lab, other_ip),
            Some(lab.node(other_owner).role.clone())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
