use super::*;
use crate::frame::{decode, Packet};
use crate::{Ethernet, Frame};

const NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);

fn node() -> InterfaceInfo {
    InterfaceInfo::new(NODE_MAC)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn gratuitous_arp_request_matches_rfc_5227_announcement_bytes() {
    #[rustfmt::skip]
    let expected: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 1,
        0, 0, 0, 0, 0, 0, 192, 0, 2, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        gratuitous_arp(&node(), "192.0.2.1".parse().unwrap(), ArpOp::Request),
        expected
    );
}

#[test]
fn gratuitous_arp_reply_repeats_our_mac_as_target() {
    let [request, reply] = gratuitous_arps(&node(), "192.0.2.1".parse().unwrap());
    let Frame { ethernet, packet } = decode(&reply).unwrap();
    assert_eq!(ethernet.dst, MacAddr::BROADCAST);
    let Packet::Arp(arp) = packet else {
        panic!("not ARP")
    };
    assert_eq!(arp.op, ArpOp::Reply);
    assert_eq!(arp.target_mac, NODE_MAC);
    assert!(arp.is_gratuitous());
    assert_ne!(request, reply);
}

#[test]
fn unsolicited_na_goes_to_all_nodes_with_override() {
    let frame = unsolicited_na(
        &node().with_link_local("fe80::1".parse().unwrap()),
        "2001:db8::1".parse().unwrap(),
    );
    let Frame { ethernet, packet } = decode(&frame).unwrap();
    assert_eq!(
        ethernet,
        Ethernet {
            dst: MacAddr::new(0x33, 0x33, 0, 0, 0, 1),
            src: NODE_MAC,
            vlan: None
        }
    );
    assert_eq!(
        packet,
        Packet::Nd(NdPacket {
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::1".parse().unwrap(),
            message: NdMessage::Advertisement(NeighborAdvertisement {
                flags: NaFlags {
                    router: false,
                    solicited: false,
                    override_flag: true
                },
                target: "2001:db8::1".parse().unwrap(),
                target_ll: Some(NODE_MAC),
            }),
        })
    );
}

#[test]
fn announcements_depend_on_the_family() {
    assert_eq!(announcements(&node(), ip("192.0.2.1")).len(), 2);
    assert_eq!(announcements(&node(), ip("::ffff:192.0.2.1")).len(), 2);
    assert_eq!(announcements(&node(), ip("2001:db8::1")).len(), 1);
}

#[test]
fn announcements_carry_the_interface_vlan() {
    for frame in announcements(&node().with_vlan(7), ip("192.0.2.1")) {
        assert_eq!(decode(&frame).unwrap().ethernet.vlan, Some(7));
    }
}

#[test]
fn solicited_node_mac_is_33_33_ff_and_low_24_bits() {
    assert_eq!(
        solicited_node_mac("2001:db8::ab:cdef".parse().unwrap()),
        MacAddr::new(0x33, 0x33, 0xff, 0xab, 0xcd, 0xef)
    );
}

// === Announcer ===

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Repeats at 100 ms and 300 ms, then every 1 s.
fn policy() -> AnnouncePolicy {
    AnnouncePolicy {
        burst: vec![ms(100), ms(300)],
        refresh: Some(ms(1000)),
    }
}

#[test]
fn a_gained_ip_is_announced_at_once_then_in_a_burst_then_refreshed() {
    let t0 = Instant::now();
    let mut a = Announcer::new(policy());
    a.gain(ip("192.0.2.1"), t0);
    assert_eq!(a.next_deadline(), Some(t0));
    assert_eq!(a.poll(t0), vec![ip("192.0.2.1")]);
    assert_eq!(a.poll(t0 + ms(99)), Vec::<IpAddr>::new());
    assert_eq!(a.next_deadline(), Some(t0 + ms(100)));
    assert_eq!(a.poll(t0 + ms(100)), vec![ip("192.0.2.1")]);
    assert_eq!(a.poll(t0 + ms(300)), vec![ip("192.0.2.1")]);
    // Burst over: the refresh is counted from the last announcement.
    assert_eq!(a.next_deadline(), Some(t0 + ms(1300)));
    assert_eq!(a.poll(t0 + ms(1299)), Vec::<IpAddr>::new());
    assert_eq!(a.poll(t0 + ms(1300)), vec![ip("192.0.2.1")]);
    assert_eq!(a.next_deadline(), Some(t0 + ms(2300)));
}

#[test]
fn a_late_poll_announces_once_and_skips_past_repeats() {
    let t0 = Instant::now();
    let mut a = Announcer::new(policy());
    a.gain(ip("192.0.2.1"), t0);
    assert_eq!(a.poll(t0 + ms(500)), vec![ip("192.0.2.1")]);
    assert_eq!(a.next_deadline(), Some(t0 + ms(1500)));
}

#[test]
fn a_lost_ip_is_never_announced_again() {
    let t0 = Instant::now();
    let mut a = Announcer::new(policy());
    a.gain(ip("2001:db8::1"), t0);
    a.lose(ip("2001:db8::1"));
    assert_eq!(a.poll(t0 + ms(5000)), Vec::<IpAddr>::new());
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn without_refresh_the_schedule_ends_after_the_burst() {
    let t0 = Instant::now();
    let mut a = Announcer::new(AnnouncePolicy {
        burst: vec![],
        refresh: None,
    });
    a.gain(ip("192.0.2.1"), t0);
    assert_eq!(a.poll(t0), vec![ip("192.0.2.1")]);
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.ips().collect::<Vec<_>>(), vec![ip("192.0.2.1")]);
}

#[test]
fn link_up_restarts_every_burst_and_regaining_does_not() {
    let t0 = Instant::now();
    let mut a = Announcer::new(policy());
    a.gain(ip("192.0.2.1"), t0);
    a.gain(ip("192.0.2.2"), t0);
    a.poll(t0);
    a.gain(ip("192.0.2.1"), t0 + ms(50));
    assert_eq!(a.poll(t0 + ms(50)), Vec::<IpAddr>::new());
    a.restart_all(t0 + ms(60));
    assert_eq!(a.poll(t0 + ms(60)), vec![ip("192.0.2.1"), ip("192.0.2.2")]);
    assert_eq!(a.next_deadline(), Some(t0 + ms(160)));
}

#[test]
fn sync_follows_the_owned_set() {
    let t0 = Instant::now();
    let mut a = Announcer::new(policy());
    a.sync(
        &[ip("192.0.2.1"), ip("192.0.2.2")].into_iter().collect(),
        t0,
    );
    a.poll(t0);
    a.sync(
        &[ip("192.0.2.2"), ip("192.0.2.3")].into_iter().collect(),
        t0 + ms(10),
    );
    assert_eq!(a.poll(t0 + ms(10)), vec![ip("192.0.2.3")]);
    assert_eq!(
        a.ips().collect::<Vec<_>>(),
        vec![ip("192.0.2.2"), ip("192.0.2.3")]
    );
}

#[test]
fn default_policy_repeats_quickly_and_refreshes_well_under_switch_ageing() {
    let p = AnnouncePolicy::default();
    assert!(p.burst[0] < Duration::from_secs(1));
    assert!(p.burst.windows(2).all(|w| w[0] < w[1]));
    assert!(p.refresh.unwrap() < Duration::from_secs(300) / 2);
}
