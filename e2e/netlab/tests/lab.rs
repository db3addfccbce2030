//! The lab itself, tested in real network namespaces (root; see `require_root_or_skip`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ironlb_netlab::{
    bind_tcp_in, command_in, destroy_named, netns_exists, pids_in, require_root_or_skip, run_in,
    run_in_ok, spawn, sweep_leftovers, Lab, LabConfig, LabDescription, ProcessGuard,
};

/// One ping with a generous wait: a loaded machine must not turn into a failed test.
fn pings(netns: &str, ip: impl ToString) -> bool {
    ping(netns, ip, "5")
}

/// One ping with a short wait, for "must not answer": slowness can only make this pass.
fn silent(netns: &str, ip: impl ToString) -> bool {
    !ping(netns, ip, "1")
}

fn ping(netns: &str, ip: impl ToString, wait_s: &str) -> bool {
    run_in(netns, "ping", ["-c", "1", "-W", wait_s, &ip.to_string()])
        .expect("ping runs")
        .success()
}

fn lab(nodes: usize) -> Lab {
    Lab::build(&LabConfig::nodes(nodes)).expect("the lab builds")
}

#[test]
fn the_client_pings_every_node_over_v4_and_v6() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(3);
    let client = lab.client();
    assert_eq!(client.ipv4, Ipv4Addr::new(192, 0, 2, 1));
    for (i, node) in lab.nodes().iter().enumerate() {
        assert_eq!(node.role, format!("node{}", i + 1));
        assert_eq!(node.ipv4, Ipv4Addr::new(192, 0, 2, 11 + i as u8));
        assert_eq!(node.ipv6.to_string(), format!("2001:db8:1::{}", 11 + i));
        assert!(pings(&client.netns, node.ipv4), "v4 ping to {}", node.role);
        assert!(pings(&client.netns, node.ipv6), "v6 ping to {}", node.role);
    }
}

#[test]
fn the_client_neighbour_table_shows_each_node_mac() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let node = lab.node(2);
    assert!(pings(&lab.client().netns, node.ipv4));
    assert!(pings(&lab.client().netns, node.ipv6));
    for ip in [IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)] {
        let entry = lab
            .client_neighbour(ip)
            .unwrap()
            .unwrap_or_else(|| panic!("no neighbour entry for {ip}"));
        assert!(entry.is_resolved(), "{entry:?}");
        assert_eq!(entry.mac.as_deref(), Some(node.mac.as_str()));
        assert_eq!(entry.dev, "eth0");
    }
    lab.flush_client_neighbours().unwrap();
    assert!(lab
        .client_neighbours()
        .unwrap()
        .iter()
        .all(|n| !n.is_resolved() || n.state.iter().any(|s| s == "PERMANENT")));
}

#[test]
fn arping_counts_the_one_answer_of_a_node() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let replies = lab.arping_from_client(lab.node(1).ipv4, 3).unwrap();
    assert_eq!(replies.distinct(), vec![lab.node(1).mac.clone()]);
    assert!(replies.count() >= 1, "{replies:?}");
}

#[test]
fn kernel_does_not_answer_arp_for_a_vip_on_lo() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let vip: Ipv4Addr = "192.0.2.100".parse().unwrap();
    lab.add_vip(lab.node(1), vip.into()).unwrap();
    let replies = lab.arping_from_client(vip, 3).unwrap();
    assert_eq!(
        replies.count(),
        0,
        "the kernel answered ARP for the VIP: {replies:?}"
    );

    // Control: the same VIP on lo without arp_ignore is answered by the kernel, so the
    // probe above could have seen an answer.
    let other: Ipv4Addr = "192.0.2.101".parse().unwrap();
    run_in_ok(
        &lab.node(2).netns,
        "ip",
        ["addr", "add", "192.0.2.101/32", "dev", "lo"],
    )
    .unwrap();
    let control = lab.arping_from_client(other, 3).unwrap();
    assert_eq!(control.distinct(), vec![lab.node(2).mac.clone()]);
}

#[test]
fn kernel_does_not_answer_ndp_for_a_vip_on_lo() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(1);
    let vip: std::net::Ipv6Addr = "2001:db8:1::100".parse().unwrap();
    lab.add_vip(lab.node(1), vip.into()).unwrap();
    let replies = lab.ndisc_from_client(vip).unwrap();
    assert_eq!(
        replies.count(),
        0,
        "the kernel answered NS for the VIP: {replies:?}"
    );

    // Control: the node's own address is answered.
    let control = lab.ndisc_from_client(lab.node(1).ipv6).unwrap();
    assert_eq!(control.distinct(), vec![lab.node(1).mac.clone()]);
}

#[test]
fn a_vip_on_lo_is_delivered_once_the_lan_points_it_at_the_node() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let node = lab.node(2);
    let client = lab.client();
    for vip in ["192.0.2.150", "2001:db8:1::150"] {
        let vip: IpAddr = vip.parse().unwrap();
        lab.add_vip(node, vip).unwrap();
        // Stand in for a speaker: tell the client where the VIP lives.
        run_in_ok(
            &client.netns,
            "ip",
            [
                "neigh",
                "replace",
                &vip.to_string(),
                "lladdr",
                &node.mac,
                "dev",
                "eth0",
            ],
        )
        .unwrap();
        assert!(pings(&client.netns, vip), "{vip} reaches the node");
        lab.remove_vip(node, vip).unwrap();
        assert!(silent(&client.netns, vip), "{vip} removed from the node");
    }
}

#[test]
fn bind_tcp_in_makes_a_listener_of_this_process_reachable_inside_a_node() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(1);
    let listener = bind_tcp_in(&lab.node(1).netns, "127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).unwrap();
        conn.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\nconnection: close\r\n\r\nfrom the test\n",
        )
        .unwrap();
    });
    let body = run_in_ok(
        &lab.node(1).netns,
        "curl",
        [
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/"),
        ],
    )
    .unwrap();
    assert_eq!(body, "from the test\n");
    server.join().unwrap();
}

#[test]
fn a_node_whose_cable_is_pulled_is_unreachable_until_plugged_back() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let (client, node) = (lab.client(), lab.node(1));
    lab.set_link(node, false).unwrap();
    assert!(silent(&client.netns, node.ipv4));
    assert!(
        pings(&client.netns, lab.node(2).ipv4),
        "the other node stays up"
    );
    lab.set_link(node, true).unwrap();
    assert!(pings(&client.netns, node.ipv4));

    lab.set_host_link(node, false).unwrap();
    assert!(silent(&client.netns, node.ipv6));
    lab.set_host_link(node, true).unwrap();
    assert!(
        pings(&client.netns, node.ipv6),
        "v6 address kept across down/up"
    );
}

#[test]
fn kill_node_kills_its_processes_and_unplugs_it() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(1);
    let node = lab.node(1);
    let mut sleeper = sleeper_in(&node.netns);
    assert!(lab.kill_node(node).unwrap() >= 1);
    assert!(sleeper.wait_timeout(Duration::from_secs(10)).is_some());
    assert!(silent(&lab.client().netns, node.ipv4));
}

#[test]
fn a_process_guard_stops_its_whole_process_group_on_drop() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(1);
    let ns = lab.node(1).netns.clone();
    let mut cmd = command_in(&ns, "sh");
    cmd.args(["-c", "sleep 300 & sleep 300"]);
    let guard = spawn(cmd).unwrap();
    wait_until(|| pids_in(&ns).unwrap().len() >= 3);
    drop(guard);
    wait_until(|| pids_in(&ns).unwrap().is_empty());
}

#[test]
fn dropping_a_lab_removes_its_namespaces_and_processes() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    let namespaces = lab.description().namespaces();
    assert_eq!(namespaces.len(), 4);
    let mut sleeper = sleeper_in(&lab.node(2).netns);
    let id = lab.id().to_string();
    drop(lab);
    for ns in &namespaces {
        assert!(!netns_exists(ns), "{ns} left behind");
    }
    assert!(sleeper.wait_timeout(Duration::from_secs(10)).is_some());
    // Nothing of the lab ever lived in the root namespace.
    let root_links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let root_links = String::from_utf8_lossy(&root_links.stdout);
    assert!(!root_links.contains(&id), "{root_links}");
}

#[test]
fn sweep_removes_leftovers_of_dead_runs_only() {
    if !require_root_or_skip() {
        return;
    }
    // A pid that existed and is gone now: a child we reaped.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let leftover = format!("ilb-{dead_pid}-0-lan");
    let alive = format!("ilb-1-{dead_pid}-lan"); // pid 1 is always alive
    for ns in [&leftover, &alive] {
        std::process::Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap();
    }
    let removed = sweep_leftovers().unwrap();
    let (gone, kept) = (!netns_exists(&leftover), netns_exists(&alive));
    for ns in [&alive, &leftover] {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", ns])
            .output();
    }
    // Another test's lab build may have swept it first (one sweep per process).
    assert!(gone, "leftover {leftover} survived the sweep: {removed:?}");
    assert!(kept, "a live process's lab was swept");
}

#[test]
fn two_labs_in_parallel_do_not_collide() {
    if !require_root_or_skip() {
        return;
    }
    let builders: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let lab = lab(2);
                assert!(pings(&lab.client().netns, lab.node(2).ipv4));
                lab.description().namespaces()
            })
        })
        .collect();
    let results: Vec<Vec<String>> = builders.into_iter().map(|b| b.join().unwrap()).collect();
    assert!(results[0].iter().all(|ns| !results[1].contains(ns)));
}

#[test]
fn a_named_lab_persists_until_destroyed_by_name() {
    if !require_root_or_skip() {
        return;
    }
    let name = format!("t{}", std::process::id());
    let lab = Lab::build(&LabConfig::nodes(1).named(&name)).unwrap();
    let desc = lab.persist();
    let json = serde_json::to_string_pretty(&desc).unwrap();
    let back: LabDescription = serde_json::from_str(&json).unwrap();
    assert_eq!(back, desc);
    assert!(json.contains("ip netns exec"));
    for ns in desc.namespaces() {
        assert!(netns_exists(&ns), "{ns} persisted");
    }
    sweep_leftovers().unwrap();
    assert!(
        desc.namespaces().iter().all(|ns| netns_exists(ns)),
        "a named lab is never swept"
    );
    let mut removed = destroy_named(&name).unwrap();
    removed.sort();
    let mut expected = desc.namespaces();
    expected.sort();
    assert_eq!(removed, expected);
    for ns in desc.namespaces() {
        assert!(!netns_exists(&ns), "{ns} removed");
    }
}

/// A `sleep 300` that has joined `netns`: `ip netns exec` enters the namespace a moment
/// after spawn, and a process not yet in it is not the lab's to kill.
fn sleeper_in(netns: &str) -> ProcessGuard {
    let mut cmd = command_in(netns, "sleep");
    cmd.arg("300");
    let sleeper = spawn(cmd).unwrap();
    wait_until(|| !pids_in(netns).unwrap().is_empty());
    sleeper
}

fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("condition not met within 10 s");
}

#[test]
fn listeners_bound_on_every_node_share_one_local_address() {
    if !require_root_or_skip() {
        return;
    }
    let lab = lab(2);
    // Port 0 would give each namespace its own port; a fixed one shows they do not clash.
    let addr = "127.0.0.1:16443".parse().unwrap();
    let listeners = lab.bind_tcp_on_nodes(addr).unwrap();
    assert_eq!(listeners.len(), 2);
    for (role, listener) in &listeners {
        assert_eq!(listener.local_addr().unwrap(), addr, "{role}");
        let netns = &lab.host(role).unwrap().netns;
        ironlb_netlab::wait_tcp_in(netns, addr, Duration::from_secs(10)).unwrap();
    }
}
