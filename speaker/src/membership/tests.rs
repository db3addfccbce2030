use super::*;

const KEY: &[u8] = b"a shared secret from the Secret";

fn hb(node: &str, time_ns: u64, counter: u64) -> Heartbeat {
    Heartbeat {
        node: node.into(),
        time_ns,
        counter,
    }
}

fn ready(node: &str, ip: &str) -> (String, Peer) {
    (
        node.to_string(),
        Peer {
            node: node.into(),
            addr: Some(ip.parse().unwrap()),
            ready: true,
        },
    )
}

const T0: u64 = 1_700_000_000_000_000_000;

// === wire format ===

#[test]
fn a_heartbeat_survives_the_wire_under_the_right_key() {
    let sent = hb("node-a", T0, 7);
    assert_eq!(Heartbeat::decode(&sent.encode(KEY), KEY), Ok(sent));
}

#[test]
fn a_wrong_key_or_a_flipped_bit_fails_the_mac() {
    let bytes = hb("node-a", T0, 7).encode(KEY);
    assert_eq!(
        Heartbeat::decode(&bytes, b"another key"),
        Err(Reject::BadMac)
    );
    for i in 4..bytes.len() - 32 {
        let mut tampered = bytes.clone();
        tampered[i] ^= 1;
        assert!(
            Heartbeat::decode(&tampered, KEY).is_err(),
            "bit flip at {i} accepted"
        );
    }
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for len in 0..80 {
        let junk = vec![0x5a; len];
        assert_eq!(Heartbeat::decode(&junk, KEY), Err(Reject::Malformed));
    }
    let mut wrong_len = hb("node-a", T0, 1).encode(KEY);
    wrong_len[20] = 200;
    assert_eq!(Heartbeat::decode(&wrong_len, KEY), Err(Reject::Malformed));
}

// === liveness rules ===

#[test]
fn a_ready_peer_never_heard_from_counts_as_alive() {
    let mut l = Liveness::new("node-a", Duration::from_millis(500));
    l.set_peers(&BTreeMap::from([ready("node-b", "192.0.2.12")]));
    let now = Instant::now();
    assert!(l.live(now).contains("node-b"));
    assert_eq!(l.never_heard(), ["node-b"]);
}

#[test]
fn a_heard_peer_silent_for_dead_after_is_dead_and_comes_back_when_heard() {
    let mut l = Liveness::new("node-a", Duration::from_millis(500));
    l.set_peers(&BTreeMap::from([ready("node-b", "192.0.2.12")]));
    let t = Instant::now();
    l.receive(&hb("node-b", T0, 1), t, T0).unwrap();
    assert!(l.live(t + Duration::from_millis(499)).contains("node-b"));
    assert!(!l.live(t + Duration::from_millis(500)).contains("node-b"));
    assert!(l.never_heard().is_empty());
    l.receive(&hb("node-b", T0 + 1, 2), t + Duration::from_secs(2), T0)
        .unwrap();
    assert!(l.live(t + Duration::from_secs(2)).contains("node-b"));
}

#[test]
fn a_peer_whose_pod_is_gone_or_not_ready_is_dead_even_if_heard() {
    let mut l = Liveness::new("node-a", Duration::from_millis(500));
    l.set_peers(&BTreeMap::from([ready("node-b", "192.0.2.12")]));
    let t = Instant::now();
    l.receive(&hb("node-b", T0, 1), t, T0).unwrap();
    let (name, mut peer) = ready("node-b", "192.0.2.12");
    peer.ready = false;
    l.set_peers(&BTreeMap::from([(name, peer)]));
    assert!(!l.live(t).contains("node-b"));
    l.set_peers(&BTreeMap::new());
    assert!(!l.live(t).contains("node-b"));
}

#[test]
fn self_is_always_live() {
    let l = Liveness::new("node-a", Duration::from_millis(500));
    assert_eq!(
        l.live(Instant::now()),
        BTreeSet::from(["node-a".to_string()])
    );
}

#[test]
fn replays_and_stale_heartbeats_are_rejected_and_gaps_are_losses() {
    let mut l = Liveness::new("node-a", Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(
        l.receive(&hb("node-b", T0, 1), t, T0),
        Ok(Received { lost: 0 })
    );
    assert_eq!(l.receive(&hb("node-b", T0, 1), t, T0), Err(Reject::Replay));
    assert_eq!(
        l.receive(&hb("node-b", T0 - 5, 9), t, T0),
        Err(Reject::Replay)
    );
    assert_eq!(
        l.receive(&hb("node-b", T0 + 10, 4), t, T0),
        Ok(Received { lost: 2 })
    );
    let an_hour = 3_600_000_000_000;
    assert_eq!(
        l.receive(&hb("node-b", T0 + an_hour, 5), t, T0),
        Err(Reject::Stale)
    );
}

#[test]
fn a_goodbye_makes_a_peer_dead_at_once_until_it_heartbeats_again() {
    let mut l = Liveness::new("node-a", Duration::from_millis(500));
    l.set_peers(&BTreeMap::from([ready("node-b", "192.0.2.12")]));
    let t = Instant::now();
    l.receive(&hb("node-b", T0, 1), t, T0).unwrap();
    l.receive(&hb("node-b", T0 + 1, LEAVING), t, T0).unwrap();
    assert!(!l.live(t).contains("node-b"));
    assert!(l.never_heard().is_empty());
    l.receive(&hb("node-b", T0 + 2, 1), t, T0).unwrap();
    assert!(l.live(t).contains("node-b"));
}

// === two members over loopback ===

struct Member {
    live: watch::Receiver<BTreeSet<String>>,
    metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _peers: watch::Sender<BTreeMap<String, Peer>>,
}

/// A member bound on `ip:port`, knowing both members as Ready peers.
async fn member(node: &str, ip: &str, port: u16, key: &[u8]) -> Member {
    let socket = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), port))
        .await
        .unwrap();
    let peers = BTreeMap::from([ready("a", "127.0.0.1"), ready("b", "127.0.0.2")]);
    let (peers_tx, peers_rx) = watch::channel(peers);
    let (live_tx, live) = watch::channel(BTreeSet::new());
    let metrics = Metrics::default();
    let stop = CancellationToken::new();
    let cfg = MembershipConfig {
        node: node.into(),
        key: Arc::new(key.to_vec()),
        port,
        interval: Duration::from_millis(50),
        dead_after: Duration::from_millis(300),
    };
    let task = tokio::spawn(run(
        cfg,
        socket,
        peers_rx,
        live_tx,
        metrics.clone(),
        stop.clone(),
    ));
    Member {
        live,
        metrics,
        stop,
        task,
        _peers: peers_tx,
    }
}

fn free_port() -> u16 {
    // A port free on 127.0.0.1; 127.0.0.2 is almost surely free on it too.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_members_hear_each_other_and_a_killed_one_is_declared_dead() {
    let port = free_port();
    let a = member("a", "127.0.0.1", port, KEY).await;
    let b = member("b", "127.0.0.2", port, KEY).await;
    wait_for("a to hear b", || a.metrics.heartbeats_received.get() > 2).await;
    assert!(a.live.borrow().contains("b"));
    assert_eq!(a.metrics.peers_never_heard.get(), 0);

    // Killed: no goodbye, just silence.
    b.task.abort();
    let _ = b.task.await;
    wait_for("a to declare b dead", || !a.live.borrow().contains("b")).await;
    assert_eq!(*a.live.borrow(), BTreeSet::from(["a".to_string()]));
    a.stop.cancel();
}

#[tokio::test]
async fn heartbeats_under_another_key_are_rejected_and_the_peer_is_never_heard() {
    let port = free_port();
    let a = member("a", "127.0.0.1", port, KEY).await;
    let b = member("b", "127.0.0.2", port, b"not the cluster's key").await;
    wait_for("a to reject b's heartbeats", || {
        a.metrics
            .heartbeats_rejected
            .get_or_create(&[("reason", "bad_mac")])
            .get()
            > 2
    })
    .await;
    assert_eq!(a.metrics.heartbeats_received.get(), 0);
    // Never heard, but Ready in the API: counted as alive, and visible as such.
    assert!(a.live.borrow().contains("b"));
    assert_eq!(a.metrics.peers_never_heard.get(), 1);
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test]
async fn a_member_stopping_gracefully_says_goodbye() {
    let port = free_port();
    let a = member("a", "127.0.0.1", port, KEY).await;
    let b = member("b", "127.0.0.2", port, KEY).await;
    wait_for("a to hear b", || a.metrics.heartbeats_received.get() > 2).await;
    b.stop.cancel();
    b.task.await.unwrap();
    wait_for("a to see b leave", || !a.live.borrow().contains("b")).await;
    a.stop.cancel();
}
