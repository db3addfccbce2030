//! The announcer's threads over pnet's in-memory datalink backend: no root, no network.

use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;

use ironlb_l2::{ArpOp, ArpPacket, Ethernet, Packet};
use pnet_datalink::dummy;

const OUR_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x11);
const CLIENT_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

type Inject = mpsc::Sender<std::io::Result<Box<[u8]>>>;

struct Fixture {
    announcer: Option<InterfaceAnnouncer>,
    inject: Inject,
    wire: mpsc::Receiver<Box<[u8]>>,
    link: Arc<AtomicBool>,
    metrics: Metrics,
}

/// An announcer on a fake wire, link up, with a short burst and no refresh.
fn fixture(hold: Duration) -> Fixture {
    let mut config = dummy::Config::default();
    let inject = config.inject_handle().unwrap();
    let wire = config.read_handle().unwrap();
    let channel = dummy::channel(&dummy::dummy_interface(0), config).unwrap();
    let link = Arc::new(AtomicBool::new(true));
    let metrics = Metrics::default();
    let policy = AnnouncePolicy {
        burst: vec![Duration::from_millis(50)],
        refresh: None,
    };
    let up = link.clone();
    let announcer = InterfaceAnnouncer::start(
        "eth0",
        0,
        InterfaceInfo::new(OUR_MAC),
        channel,
        Box::new(move || up.load(Ordering::Relaxed)),
        policy,
        hold,
        metrics.clone(),
    )
    .unwrap();
    Fixture {
        announcer: Some(announcer),
        inject,
        wire,
        link,
        metrics,
    }
}

impl Fixture {
    fn announcer(&self) -> &InterfaceAnnouncer {
        self.announcer.as_ref().unwrap()
    }

    fn ask(&self, ip: Ipv4Addr) {
        let request = ironlb_l2::frame::encode_arp(
            &Ethernet {
                dst: MacAddr::BROADCAST,
                src: CLIENT_MAC,
                vlan: None,
            },
            &ArpPacket {
                op: ArpOp::Request,
                sender_mac: CLIENT_MAC,
                sender_ip: CLIENT,
                target_mac: MacAddr::ZERO,
                target_ip: ip,
            },
        );
        self.inject.send(Ok(request.into_boxed_slice())).unwrap();
    }

    /// The next ARP frame on the wire within `within`.
    fn next_arp(&self, within: Duration) -> Option<ArpPacket> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.wire.recv_timeout(left).ok()?;
            if let Ok(ironlb_l2::Frame {
                packet: Packet::Arp(arp),
                ..
            }) = ironlb_l2::decode(&frame)
            {
                return Some(arp);
            }
        }
    }

    fn drain(&self) {
        while self.wire.recv_timeout(Duration::from_millis(200)).is_ok() {}
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The dummy receiver blocks until something arrives: keep waking it while the
        // announcer stops, so its receive thread sees the stop flag.
        let inject = self.inject.clone();
        let waker = std::thread::spawn(move || {
            for _ in 0..500 {
                let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "tick");
                if inject.send(Err(timeout)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        drop(self.announcer.take());
        let _ = waker.join();
    }
}

const SOON: Duration = Duration::from_secs(5);

#[test]
fn gaining_an_ip_sends_gratuitous_arp_at_once_in_both_forms() {
    let f = fixture(Duration::ZERO);
    f.announcer()
        .set_owned([IpAddr::V4(VIP)].into_iter().collect());
    let first = f.next_arp(SOON).expect("a gratuitous ARP");
    let second = f.next_arp(SOON).expect("the other form");
    for arp in [first, second] {
        assert_eq!((arp.sender_ip, arp.target_ip), (VIP, VIP));
        assert_eq!(arp.sender_mac, OUR_MAC);
    }
    assert_eq!(first.op, ArpOp::Request);
    assert_eq!(second.op, ArpOp::Reply);
    // And the burst repeats it.
    assert!(f.next_arp(SOON).is_some());
    // Counted just after the send returns: wait for it (bounded).
    let sent = || {
        f.metrics
            .gratuitous_sent
            .get_or_create(&[("kind", "arp")])
            .get()
    };
    let deadline = Instant::now() + SOON;
    while sent() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(sent() >= 3);
}

#[test]
fn requests_for_owned_ips_are_answered_and_a_lost_ip_at_once_is_not() {
    let f = fixture(Duration::ZERO);
    f.announcer()
        .set_owned([IpAddr::V4(VIP)].into_iter().collect());
    f.drain();
    f.ask(VIP);
    let reply = f.next_arp(SOON).expect("a reply");
    assert_eq!(reply.op, ArpOp::Reply);
    assert_eq!((reply.sender_ip, reply.sender_mac), (VIP, OUR_MAC));
    assert_eq!((reply.target_ip, reply.target_mac), (CLIENT, CLIENT_MAC));

    f.announcer().set_owned(OwnedIps::new());
    f.ask(VIP);
    assert_eq!(f.next_arp(Duration::from_millis(300)), None);
    f.ask(Ipv4Addr::new(192, 0, 2, 200));
    assert_eq!(f.next_arp(Duration::from_millis(300)), None);
    assert_eq!(
        f.metrics
            .requests_answered
            .get_or_create(&[("kind", "arp")])
            .get(),
        1
    );
    assert!(
        f.metrics
            .frames_dropped
            .get_or_create(&[("reason", "not_owned")])
            .get()
            >= 2
    );
}

#[test]
fn garbage_on_the_wire_is_counted_and_answering_goes_on() {
    let f = fixture(Duration::ZERO);
    f.announcer()
        .set_owned([IpAddr::V4(VIP)].into_iter().collect());
    f.drain();
    for len in 0..100u8 {
        let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
        f.inject.send(Ok(junk.into_boxed_slice())).unwrap();
    }
    f.ask(VIP);
    let reply = f.next_arp(SOON).expect("still answering");
    assert_eq!(reply.sender_ip, VIP);
}

#[test]
fn a_link_coming_back_up_re_announces_after_the_hold() {
    let f = fixture(Duration::from_millis(300));
    f.announcer()
        .set_owned([IpAddr::V4(VIP)].into_iter().collect());
    f.drain();
    f.link.store(false, Ordering::Relaxed);
    std::thread::sleep(LINK_POLL * 3);
    f.link.store(true, Ordering::Relaxed);
    let back = Instant::now();
    let arp = f.next_arp(SOON).expect("a fresh announcement");
    assert_eq!((arp.sender_ip, arp.target_ip), (VIP, VIP));
    // Not before the hold (a lower bound only: the upper one would be a timing test).
    assert!(back.elapsed() >= Duration::from_millis(250));
}
