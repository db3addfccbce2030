//! Membership: which speakers are live, from authenticated UDP heartbeats.
//!
//! Node conditions take tens of seconds to say a node is gone; heartbeats say it in
//! `dead_after` (default 500 ms), which is what makes failover sub-second. Peers are
//! found through the API (speaker Pods); every `interval` each speaker sends every
//! peer a heartbeat `(node name, time, counter)` authenticated with HMAC-SHA256 under a
//! key shared through a Secret.
//!
//! The rules ([`Liveness`], pure):
//! * self is always live;
//! * a peer whose Pod is gone or not Ready is dead;
//! * a peer heard from, then silent for `dead_after`, is dead;
//! * a peer the API shows Ready but never heard from counts as alive (with a warning
//!   and the `peers_never_heard` metric): a firewall that blocks the port must not make
//!   every node claim every IP.
//!
//! Replays: the time in a heartbeat must grow per sender and be within
//! [`MAX_SKEW`] of the receiver's clock (the second check covers a receiver that
//! restarted and forgot what it had seen).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::plan::Peer;

const MAGIC: &[u8; 4] = b"ILB1";
const MAC_LEN: usize = 32;
/// How far a heartbeat's time may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

// === wire format ===

/// A heartbeat as sent: `"ILB1" | time u64 (ns since the epoch) | counter u64 |
/// name length u8 | name | HMAC-SHA256 over everything before it`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node name.
    pub node: String,
    /// Wall-clock time of sending, ns since the Unix epoch; strictly increasing per
    /// sender (the replay guard).
    pub time_ns: u64,
    /// Heartbeats sent by this sender process so far (gaps are losses).
    pub counter: u64,
}

/// Why a datagram was not taken as a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Not a heartbeat at all.
    #[error("malformed heartbeat")]
    Malformed,
    /// The HMAC does not verify (wrong key, or tampered).
    #[error("heartbeat MAC does not verify")]
    BadMac,
    /// Not newer than the last heartbeat from the same sender.
    #[error("replayed heartbeat")]
    Replay,
    /// Too far from our clock.
    #[error("heartbeat time too far from ours")]
    Stale,
}

impl Reject {
    /// Label for the `heartbeats_rejected` metric.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::BadMac => "bad_mac",
            Reject::Replay => "replay",
            Reject::Stale => "stale",
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

impl Heartbeat {
    /// The datagram for this heartbeat under `key`. Names longer than 255 bytes are
    /// cut (Kubernetes node names are at most 253).
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let name = &self.node.as_bytes()[..self.node.len().min(255)];
        let mut out = Vec::with_capacity(4 + 16 + 1 + name.len() + MAC_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.time_ns.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        let mut m = mac(key);
        m.update(&out);
        out.extend_from_slice(&m.finalize().into_bytes());
        out
    }

    /// Parses and authenticates a datagram (constant-time MAC check).
    pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Heartbeat, Reject> {
        if bytes.len() < 4 + 16 + 1 + MAC_LEN || &bytes[..4] != MAGIC {
            return Err(Reject::Malformed);
        }
        let name_len = usize::from(bytes[20]);
        if bytes.len() != 21 + name_len + MAC_LEN {
            return Err(Reject::Malformed);
        }
        let (body, tag) = bytes.split_at(21 + name_len);
        let mut m = mac(key);
        m.update(body);
        m.verify_slice(tag).map_err(|_| Reject::BadMac)?;
        let node = std::str::from_utf8(&body[21..])
            .map_err(|_| Reject::Malformed)?
            .to_string();
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Heartbeat {
            node,
            time_ns: u64_at(4),
            counter: u64_at(12),
        })
    }
}

// === liveness rules (pure) ===

#[derive(Debug, Clone, Default)]
struct PeerState {
    api: Option<Peer>,
    last_heard: Option<Instant>,
    last_time_ns: u64,
    last_counter: Option<u64>,
    /// Said goodbye ([`LEAVING`]): dead at once, until it heartbeats again.
    left: bool,
}

/// The counter of a goodbye heartbeat, sent on graceful shutdown so that peers take
/// over at once instead of after `dead_after` (a rolling update moves IPs without a gap).
pub const LEAVING: u64 = u64::MAX;

/// What a valid heartbeat told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Heartbeats missing since the previous one from this sender.
    pub lost: u64,
}

/// The liveness rules, with time passed in.
#[derive(Debug, Clone)]
pub struct Liveness {
    me: String,
    dead_after: Duration,
    peers: BTreeMap<String, PeerState>,
}

impl Liveness {
    /// No peers known yet; `me` is always live.
    pub fn new(me: impl Into<String>, dead_after: Duration) -> Liveness {
        Liveness {
            me: me.into(),
            dead_after,
            peers: BTreeMap::new(),
        }
    }

    /// The speakers the API shows now (from [`crate::plan::peers_from_pods`]).
    pub fn set_peers(&mut self, peers: &BTreeMap<String, Peer>) {
        for (node, state) in self.peers.iter_mut() {
            state.api = peers.get(node).cloned();
        }
        for (node, peer) in peers {
            self.peers.entry(node.clone()).or_default().api = Some(peer.clone());
        }
        // Forget what neither the API nor recent heartbeats know.
        self.peers
            .retain(|_, s| s.api.is_some() || s.last_heard.is_some());
    }

    /// Takes a heartbeat received at `now` (monotonic) / `wall_ns` (wall clock).
    pub fn receive(
        &mut self,
        hb: &Heartbeat,
        now: Instant,
        wall_ns: u64,
    ) -> Result<Received, Reject> {
        if hb.time_ns.abs_diff(wall_ns) > MAX_SKEW.as_nanos() as u64 {
            return Err(Reject::Stale);
        }
        let state = self.peers.entry(hb.node.clone()).or_default();
        if hb.time_ns <= state.last_time_ns {
            return Err(Reject::Replay);
        }
        state.last_time_ns = hb.time_ns;
        state.last_heard = Some(now);
        if hb.counter == LEAVING {
            state.left = true;
            return Ok(Received { lost: 0 });
        }
        let lost = match state.last_counter {
            Some(c) if hb.counter > c => hb.counter - c - 1,
            _ => 0,
        };
        state.left = false;
        state.last_counter = Some(hb.counter);
        Ok(Received { lost })
    }

    /// The live speakers at `now`, self included.
    pub fn live(&self, now: Instant) -> BTreeSet<String> {
        let mut live: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(node, s)| {
                *node != &self.me
                    && !s.left
                    && s.api.as_ref().is_some_and(|p| p.ready)
                    && s.last_heard
                        .is_none_or(|t| now.saturating_duration_since(t) < self.dead_after)
            })
            .map(|(node, _)| node.clone())
            .collect();
        live.insert(self.me.clone());
        live
    }

    /// Ready peers never heard from (counted as alive, but worth a warning).
    pub fn never_heard(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|(node, s)| {
                *node != &self.me
                    && s.api.as_ref().is_some_and(|p| p.ready)
                    && s.last_heard.is_none()
            })
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Where to send heartbeats: every other peer with an address.
    pub fn targets(&self) -> Vec<IpAddr> {
        self.peers
            .iter()
            .filter(|(node, _)| *node != &self.me)
            .filter_map(|(_, s)| s.api.as_ref().and_then(|p| p.addr))
            .collect()
    }
}

// === the task ===

/// How to run membership.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name.
    pub node: String,
    /// The HMAC key.
    pub key: Arc<Vec<u8>>,
    /// Port peers listen on (the same on every node).
    pub port: u16,
    /// Heartbeat period.
    pub interval: Duration,
    /// Silence after which a heard peer is dead.
    pub dead_after: Duration,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Binds the heartbeat socket: `[::]:port` (dual-stack), or `0.0.0.0:port` when the
/// host has no IPv6.
pub async fn bind(port: u16) -> std::io::Result<UdpSocket> {
    match UdpSocket::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))).await {
        Ok(s) => Ok(s),
        Err(_) => UdpSocket::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port))).await,
    }
}

async fn send_all(socket: &UdpSocket, datagram: &[u8], targets: &[IpAddr], port: u16) {
    let v6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    for ip in targets {
        let ip = match *ip {
            IpAddr::V4(v4) if v6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) if !v6_socket => continue,
            other => other,
        };
        if let Err(e) = socket.send_to(datagram, (ip, port)).await {
            tracing::debug!(%ip, error = %e, "sending a heartbeat");
        }
    }
}

/// Runs membership until `shutdown` (then says goodbye to the peers): sends heartbeats, receives and checks them, and
/// publishes the live set on `live_tx` whenever it changes (at once: the control loop
/// recomputes ownership on every change). Peers come from `peers_rx`.
pub async fn run(
    cfg: MembershipConfig,
    socket: UdpSocket,
    mut peers_rx: watch::Receiver<BTreeMap<String, Peer>>,
    live_tx: watch::Sender<BTreeSet<String>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut liveness = Liveness::new(cfg.node.clone(), cfg.dead_after);
    liveness.set_peers(&peers_rx.borrow_and_update());
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counter = 0u64;
    let mut last_time_ns = 0u64;
    let mut buf = vec![0u8; 2048];
    // Never-heard peers are warned about only after a grace period: at start every
    // peer is briefly never heard.
    let grace = (cfg.dead_after * 4).max(Duration::from_secs(2));
    let mut never_since: BTreeMap<String, (Instant, bool)> = BTreeMap::new();

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                last_time_ns = wall_ns().max(last_time_ns + 1);
                let goodbye = Heartbeat { node: cfg.node.clone(), time_ns: last_time_ns, counter: LEAVING };
                send_all(&socket, &goodbye.encode(&cfg.key), &liveness.targets(), cfg.port).await;
                return;
            }
            _ = tick.tick() => {
                counter += 1;
                last_time_ns = wall_ns().max(last_time_ns + 1);
                let datagram = Heartbeat {
                    node: cfg.node.clone(),
                    time_ns: last_time_ns,
                    counter,
                }
                .encode(&cfg.key);
                send_all(&socket, &datagram, &liveness.targets(), cfg.port).await;
            }
            changed = peers_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                liveness.set_peers(&peers_rx.borrow_and_update());
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let outcome = Heartbeat::decode(&buf[..n], &cfg.key)
                    .and_then(|hb| liveness.receive(&hb, Instant::now(), wall_ns()));
                match outcome {
                    Ok(r) => {
                        metrics.heartbeats_received.inc();
                        metrics.heartbeats_lost.inc_by(r.lost);
                    }
                    Err(reject) => {
                        tracing::debug!(%from, %reject, "heartbeat rejected");
                        metrics.heartbeats_rejected.get_or_create(&[("reason", reject.label())]).inc();
                    }
                }
            }
        }
        let now = Instant::now();
        let live = liveness.live(now);
        metrics.live_peers.set(live.len() as i64);
        let never = liveness.never_heard();
        metrics.peers_never_heard.set(never.len() as i64);
        never_since.retain(|n, _| never.contains(n));
        for node in &never {
            let (since, warned) = never_since.entry(node.clone()).or_insert((now, false));
            if !*warned && now.duration_since(*since) >= grace {
                *warned = true;
                tracing::warn!(peer = %node, port = cfg.port,
                    "speaker Ready in the API but never heard from: counted as alive; is UDP blocked or the key different?");
            }
        }
        live_tx.send_if_modified(|current| {
            if *current != live {
                tracing::info!(live = ?live, "membership changed");
                *current = live;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests;
