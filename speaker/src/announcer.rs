//! Raw-socket I/O: one packet socket per interface (pnet datalink, promiscuous off),
//! a receive thread answering ARP / Neighbor Solicitations for owned IPs, and an
//! announce thread sending gratuitous ARP / unsolicited NA per the
//! [`ironlb_l2::Announcer`] schedule.
//!
//! All decisions are [`ironlb_l2`]'s: this module only reads frames, calls
//! [`ironlb_l2::respond`], and writes what it returns. No `unsafe` here: pnet opens the
//! socket, and the std `UdpSocket` joins multicast groups.
//!
//! Needs CAP_NET_RAW only (for the packet socket; joining a multicast group needs no
//! capability).

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ironlb_l2::{
    announcements, respond, AnnouncePolicy, Announcer, InterfaceAddr, InterfaceAddrs,
    InterfaceInfo, MacAddr, OwnedIps, ReplyKind,
};
use pnet_datalink::{Channel, DataLinkSender, NetworkInterface};

use crate::metrics::Metrics;

/// How long a blocking read waits before checking whether to stop.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// How often the link state is checked (re-announce when it comes back up).
const LINK_POLL: Duration = Duration::from_millis(150);

/// Errors opening an interface.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncerError {
    /// No interface of that name.
    #[error("interface {0} not found")]
    NoSuchInterface(String),
    /// The interface has no MAC (not Ethernet).
    #[error("interface {0} has no MAC address (not Ethernet?)")]
    NoMac(String),
    /// Opening the packet socket failed (CAP_NET_RAW missing?).
    #[error("opening a raw socket on {iface} (needs CAP_NET_RAW): {source}")]
    Open {
        /// Interface.
        iface: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// pnet returned a channel type other than Ethernet.
    #[error("interface {0}: not an Ethernet channel")]
    NotEthernet(String),
}

/// The interfaces of this host with their addresses, for choosing where to announce.
pub fn local_interfaces() -> Vec<InterfaceAddrs> {
    pnet_datalink::interfaces()
        .into_iter()
        .map(|i| InterfaceAddrs {
            name: i.name.clone(),
            addrs: i
                .ips
                .iter()
                .map(|n| InterfaceAddr {
                    ip: n.ip(),
                    prefix_len: n.prefix(),
                })
                .collect(),
        })
        .collect()
}

fn find(name: &str) -> Option<NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
}

fn link_up(name: &str) -> bool {
    find(name).is_some_and(|i| i.is_up() && i.is_running())
}

/// What the responder needs to know about `iface`: its MAC.
///
/// No link-local source for Neighbor Advertisements: the VIP itself is the source, as
/// Linux does for its own addresses (RFC 4861 allows either). Some tools (ndisc6) only
/// accept an advertisement for a global target from a source of the same scope.
fn interface_info(iface: &NetworkInterface) -> Option<InterfaceInfo> {
    let mac = iface.mac?.octets();
    Some(InterfaceInfo::new(MacAddr::new(
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
    )))
}

type Sender = Arc<Mutex<Box<dyn DataLinkSender>>>;

fn send(tx: &Sender, frame: &[u8], metrics: &Metrics) -> bool {
    let mut tx = tx.lock().unwrap_or_else(|p| p.into_inner());
    match tx.send_to(frame, None) {
        Some(Ok(())) => true,
        Some(Err(e)) => {
            metrics.socket_errors.get_or_create(&[("op", "send")]).inc();
            tracing::debug!(error = %e, "raw send failed");
            false
        }
        None => false,
    }
}

/// One interface being announced on: its threads and the IPs it answers for.
pub struct InterfaceAnnouncer {
    name: String,
    owned: Arc<ArcSwap<OwnedIps>>,
    commands: mpsc::Sender<OwnedIps>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for InterfaceAnnouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceAnnouncer")
            .field("name", &self.name)
            .field("owned", &self.owned.load())
            .finish()
    }
}

impl InterfaceAnnouncer {
    /// Opens a packet socket on `name` and starts its receive and announce threads,
    /// owning nothing yet.
    ///
    /// `link_up_hold`: after the link comes back up, wait this long before announcing,
    /// so that membership hears the peers again and the owned set is corrected first.
    /// A node cut off from the LAN believes every peer dead and owns every IP; without
    /// the hold it would announce all of them on reconnecting and divert its peers'
    /// traffic until clients re-resolve.
    pub fn open(
        name: &str,
        policy: AnnouncePolicy,
        link_up_hold: Duration,
        metrics: Metrics,
    ) -> Result<InterfaceAnnouncer, AnnouncerError> {
        let iface = find(name).ok_or_else(|| AnnouncerError::NoSuchInterface(name.into()))?;
        let info = interface_info(&iface).ok_or_else(|| AnnouncerError::NoMac(name.into()))?;
        let config = pnet_datalink::Config {
            promiscuous: false,
            read_timeout: Some(READ_TIMEOUT),
            ..Default::default()
        };
        let channel =
            pnet_datalink::channel(&iface, config).map_err(|source| AnnouncerError::Open {
                iface: name.into(),
                source,
            })?;
        let link = {
            let name = name.to_string();
            move || link_up(&name)
        };
        let a = InterfaceAnnouncer::start(
            name,
            iface.index,
            info,
            channel,
            Box::new(link),
            policy,
            link_up_hold,
            metrics,
        )?;
        tracing::info!(iface = name, mac = %info.mac, "raw socket open");
        Ok(a)
    }

    /// Starts the threads over an open channel (a real packet socket, or pnet's
    /// in-memory `dummy` backend in tests). `link` says whether the link is up.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        name: &str,
        index: u32,
        info: InterfaceInfo,
        channel: Channel,
        link: Box<dyn Fn() -> bool + Send>,
        policy: AnnouncePolicy,
        link_up_hold: Duration,
        metrics: Metrics,
    ) -> Result<InterfaceAnnouncer, AnnouncerError> {
        let (tx, mut rx) = match channel {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => return Err(AnnouncerError::NotEthernet(name.into())),
        };
        let tx: Sender = Arc::new(Mutex::new(tx));
        let owned = Arc::new(ArcSwap::from_pointee(OwnedIps::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, command_rx) = mpsc::channel::<OwnedIps>();

        let receive = {
            let (tx, owned, stop, metrics) =
                (tx.clone(), owned.clone(), stop.clone(), metrics.clone());
            let name = name.to_string();
            std::thread::Builder::new()
                .name(format!("arp-rx-{name}"))
                .spawn(move || {
                    let mut errors = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        match rx.next() {
                            Ok(frame) => {
                                errors = 0;
                                // The snapshot is swapped by `set_owned` before the announce
                                // thread hears of it: losing an IP stops answers at once.
                                let current = owned.load();
                                match respond(frame, &info, &current) {
                                    Ok(reply) => {
                                        if send(&tx, &reply.frame, &metrics) {
                                            let kind = match reply.kind {
                                                ReplyKind::ArpReply => "arp",
                                                ReplyKind::NeighborAdvertisement { .. } => "ndp",
                                            };
                                            metrics.requests_answered.get_or_create(&[("kind", kind)]).inc();
                                        }
                                    }
                                    Err(reason) => {
                                        if let ironlb_l2::DropReason::Conflict { .. } = reason {
                                            tracing::warn!(iface = %name, %reason, "address conflict");
                                        }
                                        metrics.frames_dropped.get_or_create(&[("reason", reason.label())]).inc();
                                    }
                                }
                            }
                            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                            Err(e) => {
                                // ENETDOWN while the link is down, for instance: keep trying.
                                errors = errors.saturating_add(1);
                                metrics.socket_errors.get_or_create(&[("op", "recv")]).inc();
                                if errors == 1 {
                                    tracing::warn!(iface = %name, error = %e, "raw receive failed");
                                }
                                std::thread::sleep(READ_TIMEOUT);
                            }
                        }
                    }
                })
                .expect("spawning the receive thread")
        };

        let announce = {
            let (tx, stop) = (tx, stop.clone());
            let name = name.to_string();
            std::thread::Builder::new()
                .name(format!("arp-tx-{name}"))
                .spawn(move || {
                    let io = AnnounceIo {
                        tx,
                        commands: command_rx,
                        stop,
                        metrics,
                    };
                    announce_loop(&name, index, info, policy, link_up_hold, link, io)
                })
                .expect("spawning the announce thread")
        };

        Ok(InterfaceAnnouncer {
            name: name.to_string(),
            owned,
            commands,
            stop,
            threads: vec![receive, announce],
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The IPs answered for now.
    pub fn owned(&self) -> OwnedIps {
        OwnedIps::clone(&self.owned.load())
    }

    /// Makes `owned` the IPs answered for: lost ones stop being answered at once,
    /// gained ones are announced at once and then per the policy.
    pub fn set_owned(&self, owned: OwnedIps) {
        if **self.owned.load() == owned {
            return;
        }
        self.owned.store(Arc::new(owned.clone()));
        let _ = self.commands.send(owned);
    }

    /// Whether both threads still run.
    pub fn is_alive(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }
}

impl Drop for InterfaceAnnouncer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.owned.store(Arc::new(OwnedIps::new()));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the announce thread works with besides its schedule.
struct AnnounceIo {
    tx: Sender,
    commands: mpsc::Receiver<OwnedIps>,
    stop: Arc<AtomicBool>,
    metrics: Metrics,
}

fn announce_loop(
    name: &str,
    index: u32,
    info: InterfaceInfo,
    policy: AnnouncePolicy,
    link_up_hold: Duration,
    link: Box<dyn Fn() -> bool + Send>,
    io: AnnounceIo,
) {
    let mut announcer = Announcer::new(policy);
    let mut groups = Groups::new(name, index);
    let mut up = link();
    let mut hold_until: Option<Instant> = None;
    let mut next_link_poll = Instant::now() + LINK_POLL;
    while !io.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut wake = next_link_poll;
        if let Some(d) = announcer.next_deadline() {
            wake = wake.min(d);
        }
        if let Some(h) = hold_until {
            wake = wake.min(h);
        }
        match io.commands.recv_timeout(wake.max(now) - now) {
            Ok(owned) => {
                // Take every queued update, keep the last.
                let owned = io.commands.try_iter().last().unwrap_or(owned);
                announcer.sync(&owned, Instant::now());
                groups.set(owned.solicited_node_groups());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if now >= next_link_poll {
            next_link_poll = now + LINK_POLL;
            let was_up = up;
            up = link();
            if up && !was_up {
                tracing::info!(iface = name, hold = ?link_up_hold, "link up: announcing again after the hold");
                hold_until = Some(now + link_up_hold);
            }
        }
        if !up {
            continue;
        }
        match hold_until {
            Some(h) if now < h => continue,
            Some(_) => {
                // Whatever the LAN learnt while we were away may be wrong.
                hold_until = None;
                announcer.restart_all(now);
                groups.rejoin();
            }
            None => {}
        }
        for ip in announcer.poll(now) {
            let kind = if ip.is_ipv4() { "arp" } else { "ndp" };
            for frame in announcements(&info, ip) {
                if send(&io.tx, &frame, &io.metrics) {
                    io.metrics
                        .gratuitous_sent
                        .get_or_create(&[("kind", kind)])
                        .inc();
                }
            }
        }
    }
}

/// Solicited-node multicast memberships on one interface.
///
/// A VIP is on no interface, so the kernel never joins its solicited-node group, and a
/// NIC with a multicast filter drops Neighbor Solicitations for it before the packet
/// socket sees them. pnet has no API for this; an ordinary UDP6 socket's
/// IPV6_ADD_MEMBERSHIP on the interface index makes the kernel program the filter (and
/// send MLD reports, so snooping switches forward the group). Memberships live as long
/// as the socket.
struct Groups {
    name: String,
    index: u32,
    socket: Option<UdpSocket>,
    joined: BTreeSet<Ipv6Addr>,
}

impl Groups {
    fn new(name: &str, index: u32) -> Groups {
        let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
            .map_err(|e| tracing::info!(iface = name, error = %e, "no IPv6 socket: solicited-node groups not joined"))
            .ok();
        Groups {
            name: name.to_string(),
            index,
            socket,
            joined: BTreeSet::new(),
        }
    }

    fn set(&mut self, want: BTreeSet<Ipv6Addr>) {
        let Some(socket) = &self.socket else { return };
        for g in self.joined.difference(&want) {
            let _ = socket.leave_multicast_v6(g, self.index);
        }
        for g in want.difference(&self.joined) {
            if let Err(e) = socket.join_multicast_v6(g, self.index) {
                tracing::warn!(iface = %self.name, group = %g, error = %e, "joining a solicited-node group");
            }
        }
        self.joined = want;
    }

    /// After a link flap the kernel keeps memberships, but joining again is harmless
    /// (EADDRINUSE) and re-sends nothing; leave and join to re-send MLD reports.
    fn rejoin(&mut self) {
        let want = std::mem::take(&mut self.joined);
        if let Some(socket) = &self.socket {
            for g in &want {
                let _ = socket.leave_multicast_v6(g, self.index);
            }
        }
        self.set(want);
    }
}

#[cfg(test)]
mod tests;
