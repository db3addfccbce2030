//! Benchmarks in the network lab (ignored by default; `bench/failover/run.sh` runs them):
//!
//! * `failover`: a client opens a TCP connection to a VIP every 20 ms; the owner node
//!   dies (speaker SIGKILL + link down); the time from the kill to the first connection
//!   that succeeds through the new owner, over 10 runs: median and max.
//! * `arp_flood`: the client sends 10,000 ARP requests/s for the VIP for a bounded
//!   time; replies counted (none lost?) and the p50/p99/max reply latency, measured on
//!   the client's own packet socket.
//!
//! They print figures; they assert only that the scenario worked, never a time.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ironlb_api::{L2Announcement, L2AnnouncementSpec};
use ironlb_e2e::lab_cluster::{LabCluster, LabClusterConfig};
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::wait_until;
use ironlb_l2::{ArpOp, ArpPacket, Ethernet, MacAddr, Packet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 8080;
const RUNS: usize = 10;

async fn lab() -> LabCluster {
    let lab = LabCluster::start(LabClusterConfig {
        controller: false,
        ..Default::default()
    })
    .await
    .expect("lab cluster starts");
    Api::<ironlb_api::IPPool>::all(lab.client())
        .create(
            &PostParams::default(),
            &pool("lan", [ironlb_netlab::POOL_V4]),
        )
        .await
        .expect("pool");
    Api::<L2Announcement>::all(lab.client())
        .create(
            &PostParams::default(),
            &L2Announcement::new("lan", L2AnnouncementSpec::default()),
        )
        .await
        .expect("L2Announcement");
    lab
}

async fn assign(lab: &LabCluster, name: &str, ip: &str) {
    let api: Api<Service> = Api::namespaced(lab.client(), "default");
    api.create(
        &PostParams::default(),
        &Svc::lb(name).ports([PORT as i32]).build(),
    )
    .await
    .expect("Service");
    let patch = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    });
    api.patch_status(
        name,
        &PatchParams::apply("ironlb-controller").force(),
        &Patch::Apply(&patch),
    )
    .await
    .expect("Service status");
}

fn owner(lab: &LabCluster, ip: &str, live: &[usize]) -> usize {
    let names: Vec<String> = live.iter().map(|&i| lab.node(i).role.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = ironlb_l2::owner(ip.parse().unwrap(), &refs).unwrap();
    live[names.iter().position(|n| n == o).unwrap()]
}

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

/// One connection attempt from a thread already inside the client's namespace.
fn attempt(vip: IpAddr) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::new(vip, PORT), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut name = String::new();
    s.read_to_string(&mut name).ok()?;
    Some(name)
}

/// Starts a connection attempt every 20 ms from the client (each on its own thread, so
/// a lost SYN does not delay the next attempt); reports (completion time, node reached).
fn prober(
    lab: &LabCluster,
    vip: IpAddr,
    stop: Arc<AtomicBool>,
) -> mpsc::Receiver<(Instant, Option<String>)> {
    let (tx, rx) = mpsc::channel();
    let netns = lab.lab.client().netns.clone();
    std::thread::spawn(move || {
        let _ = ironlb_netlab::in_netns(&netns, move || {
            // Bounded: at most 60 s of attempts.
            for _ in 0..3000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let tx = tx.clone();
                let netns_thread = std::thread::spawn(move || {
                    let got = attempt(vip);
                    let _ = tx.send((Instant::now(), got));
                });
                drop(netns_thread);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    });
    rx
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/failover/run.sh"]
async fn failover() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let lab = lab().await;
    serve_names(&lab);
    let mut times = Vec::new();
    for run in 0..RUNS {
        let vip = format!("192.0.2.{}", 120 + run);
        let ip: IpAddr = vip.parse().unwrap();
        assign(&lab, &format!("bench{run}"), &vip).await;
        let first = owner(&lab, &vip, &[0, 1, 2]);
        let want_first = lab.node(first).role.clone();
        wait_until("the VIP reachable through its owner", WAIT, || {
            let got = ironlb_netlab::in_netns(&lab.lab.client().netns, move || attempt(ip))
                .ok()
                .flatten();
            let want = want_first.clone();
            async move { (got == Some(want)).then_some(()) }
        })
        .await
        .unwrap();
        let rest: Vec<usize> = (0..3).filter(|&i| i != first).collect();
        let second = lab.node(owner(&lab, &vip, &rest)).role.clone();

        let stop = Arc::new(AtomicBool::new(false));
        let results = prober(&lab, ip, stop.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed = Instant::now();
        lab.kill_node(first).await.unwrap();
        let deadline = killed + WAIT;
        let mut took = None;
        while Instant::now() < deadline {
            match results.recv_timeout(Duration::from_millis(100)) {
                Ok((at, Some(node))) if node == second && at > killed => {
                    took = Some(at - killed);
                    break;
                }
                _ => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        let took = took.expect("a connection through the new owner");
        println!(
            "run {run}: {vip} {} -> {second}: {:.0} ms",
            lab.node(first).role,
            took.as_secs_f64() * 1000.0
        );
        times.push(took.as_secs_f64() * 1000.0);

        // Bring the node back and let the table settle before the next run.
        lab.revive_node(first).await.unwrap();
        let mac = lab.node(first).mac.clone();
        let v4: Ipv4Addr = vip.parse().unwrap();
        wait_until("the revived owner answering alone", WAIT, || {
            let got = lab.arp_answerers(v4, 2).unwrap_or_default();
            let want = vec![mac.clone()];
            async move { (got == want).then_some(()) }
        })
        .await
        .unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "FAILOVER runs={} median={:.0} ms max={:.0} ms min={:.0} ms (all: {:?})",
        times.len(),
        percentile(&times, 0.5),
        times.last().unwrap(),
        times[0],
        times.iter().map(|t| t.round() as u64).collect::<Vec<_>>()
    );
}

/// SIGTERMs every process in node `i`'s namespace (only its speaker runs there).
fn terminate_speaker(lab: &LabCluster, i: usize) {
    for pid in ironlb_netlab::pids_in(&lab.node(i).netns).unwrap() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// A rolling update: the owner's speaker gets SIGTERM (the node and its link stay up,
/// so connections keep working through it until the client is told otherwise). Time
/// from the signal to the first connection answered by the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/failover/run.sh"]
async fn graceful_handoff() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let lab = lab().await;
    serve_names(&lab);
    let mut times = Vec::new();
    for run in 0..RUNS {
        let vip = format!("192.0.2.{}", 160 + run);
        let ip: IpAddr = vip.parse().unwrap();
        assign(&lab, &format!("roll{run}"), &vip).await;
        let first = owner(&lab, &vip, &[0, 1, 2]);
        let want_first = lab.node(first).role.clone();
        wait_until("the VIP reachable through its owner", WAIT, || {
            let got = ironlb_netlab::in_netns(&lab.lab.client().netns, move || attempt(ip))
                .ok()
                .flatten();
            let want = want_first.clone();
            async move { (got == Some(want)).then_some(()) }
        })
        .await
        .unwrap();
        let rest: Vec<usize> = (0..3).filter(|&i| i != first).collect();
        let second = lab.node(owner(&lab, &vip, &rest)).role.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let results = prober(&lab, ip, stop.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let signalled = Instant::now();
        terminate_speaker(&lab, first);
        let mut took = None;
        while signalled.elapsed() < WAIT {
            match results.recv_timeout(Duration::from_millis(100)) {
                Ok((at, Some(node))) if node == second && at > signalled => {
                    took = Some(at - signalled);
                    break;
                }
                _ => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        let took = took.expect("a connection through the new owner");
        println!(
            "handoff {run}: {vip} {} -> {second}: {:.0} ms",
            lab.node(first).role,
            took.as_secs_f64() * 1000.0
        );
        times.push(took.as_secs_f64() * 1000.0);
        lab.start_speaker(first).unwrap();
        let mac = lab.node(first).mac.clone();
        let v4: Ipv4Addr = vip.parse().unwrap();
        wait_until("the restarted owner answering alone", WAIT, || {
            let got = lab.arp_answerers(v4, 2).unwrap_or_default();
            let want = vec![mac.clone()];
            async move { (got == want).then_some(()) }
        })
        .await
        .unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "HANDOFF (SIGTERM) runs={} median={:.0} ms max={:.0} ms min={:.0} ms",
        times.len(),
        percentile(&times, 0.5),
        times.last().unwrap(),
        times[0],
    );
}

/// An ARP request from `mac` asking for `vip`, with sender address `sender` (the
/// sequence number is encoded in it, so each reply names its request).
fn arp_request(mac: MacAddr, sender: Ipv4Addr, vip: Ipv4Addr) -> Vec<u8> {
    ironlb_l2::frame::encode_arp(
        &Ethernet {
            dst: MacAddr::BROADCAST,
            src: mac,
            vlan: None,
        },
        &ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: sender,
            target_mac: MacAddr::ZERO,
            target_ip: vip,
        },
    )
}

/// Sequence number `i` as a sender address in 198.18.0.0/15 (the benchmark range).
fn seq_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/failover/run.sh"]
async fn arp_flood() {
    if !ironlb_netlab::require_root_or_skip() {
        return;
    }
    let rate: u32 = std::env::var("FLOOD_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seconds: u32 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .min(60);
    let total = rate * seconds;
    let lab = lab().await;
    let vip = "192.0.2.150";
    assign(&lab, "flood", vip).await;
    let o = owner(&lab, vip, &[0, 1, 2]);
    let owner_mac = lab.node(o).mac.clone();
    let v4: Ipv4Addr = vip.parse().unwrap();
    wait_until("the owner answering", WAIT, || {
        let got = lab.arp_answerers(v4, 1).unwrap_or_default();
        let want = vec![owner_mac.clone()];
        async move { (got == want).then_some(()) }
    })
    .await
    .unwrap();

    let client = lab.lab.client().clone();
    let client_mac: MacAddr = client.mac.parse().unwrap();
    let (mut tx, mut rx) = ironlb_netlab::in_netns(&client.netns, || {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == "eth0")
            .expect("client eth0");
        let config = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(100)),
            read_buffer_size: 1 << 16,
            ..Default::default()
        };
        match pnet_datalink::channel(&iface, config).expect("raw socket in the client") {
            pnet_datalink::Channel::Ethernet(tx, rx) => (tx, rx),
            _ => panic!("not an Ethernet channel"),
        }
    })
    .unwrap();

    let sent_at: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..total).map(|_| std::sync::OnceLock::new()).collect());
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sent_at, done) = (sent_at.clone(), done.clone());
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(total as usize);
            let mut seen = vec![false; total as usize];
            let mut duplicates = 0u64;
            let mut wrong_mac = 0u64;
            while !done.load(Ordering::Relaxed) {
                let Ok(frame) = rx.next() else { continue };
                let now = Instant::now();
                let Ok(f) = ironlb_l2::decode(frame) else {
                    continue;
                };
                let Packet::Arp(arp) = f.packet else { continue };
                if arp.op != ArpOp::Reply || arp.sender_ip != v4 {
                    continue;
                }
                let i = u32::from(arp.target_ip).wrapping_sub(base);
                if i >= total {
                    continue;
                }
                if arp.sender_mac.to_string() != owner_mac {
                    wrong_mac += 1;
                }
                if std::mem::replace(&mut seen[i as usize], true) {
                    duplicates += 1;
                    continue;
                }
                if let Some(t) = sent_at[i as usize].get() {
                    latencies.push((now - *t).as_secs_f64() * 1e6);
                }
            }
            (latencies, duplicates, wrong_mac)
        })
    };

    // Pace: a batch every millisecond, catching up if the sender falls behind.
    let start = Instant::now();
    let per_ms = f64::from(rate) / 1000.0;
    let mut sent = 0u32;
    let mut send_errors = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * 1000.0) * per_ms).ceil() as u32;
        let due = due.min(total);
        while sent < due {
            let frame = arp_request(client_mac, seq_ip(sent), v4);
            let _ = sent_at[sent as usize].set(Instant::now());
            match tx.send_to(&frame, None) {
                Some(Ok(())) => {}
                _ => send_errors += 1,
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
        if start.elapsed() > Duration::from_secs(u64::from(seconds) * 3 + 10) {
            break;
        }
    }
    let send_time = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let (mut latencies, duplicates, wrong_mac) = receiver.join().unwrap();
    latencies.sort_by(f64::total_cmp);
    let answered = latencies.len();
    println!(
        "ARP FLOOD rate={rate}/s for {seconds}s: sent={sent} (in {:.2} s, {:.0}/s, send errors {send_errors}) \
         replies={answered} lost={} duplicates={duplicates} wrong_mac={wrong_mac} \
         latency p50={:.0} us p99={:.0} us max={:.0} us",
        send_time.as_secs_f64(),
        f64::from(sent) / send_time.as_secs_f64(),
        u64::from(sent).saturating_sub(answered as u64),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    assert!(answered > 0, "no replies at all");
}
