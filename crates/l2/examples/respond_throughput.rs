//! Prints how long `respond` takes per frame for an owned ARP request, an owned
//! Neighbor Solicitation and an ARP request for an IP not owned, over 1,000 owned IPs.
//! A figure for BENCHMARKS, never an assertion: `cargo run --release -p ironlb-l2
//! --example respond_throughput`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironlb_l2::frame::{encode_arp, encode_nd};
use ironlb_l2::{
    respond, solicited_node_multicast, ArpOp, ArpPacket, Ethernet, InterfaceInfo, MacAddr,
    NdMessage, NdPacket, NeighborSolicitation, OwnedIps,
};

const ROUNDS: u32 = 200_000;

fn main() {
    let node = InterfaceInfo::new(MacAddr::new(2, 0, 0, 0, 0, 1));
    let client = MacAddr::new(2, 0, 0, 0, 0, 0x0a);
    let owned: OwnedIps = (0..500u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)))
        .chain((0..500u128).map(|i| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))))
        .collect();
    let arp = |target: Ipv4Addr| {
        encode_arp(
            &Ethernet {
                dst: MacAddr::BROADCAST,
                src: client,
                vlan: None,
            },
            &ArpPacket {
                op: ArpOp::Request,
                sender_mac: client,
                sender_ip: Ipv4Addr::new(198, 19, 0, 1),
                target_mac: MacAddr::ZERO,
                target_ip: target,
            },
        )
    };
    let target = Ipv6Addr::from(0x2001_0db8_u128 << 96 | 7);
    let group = solicited_node_multicast(target);
    let ns = encode_nd(
        &Ethernet {
            dst: MacAddr::ipv6_multicast(group),
            src: client,
            vlan: None,
        },
        &NdPacket {
            src: Ipv6Addr::from(0x2001_0db8_u128 << 96 | 0xffff),
            dst: group,
            message: NdMessage::Solicitation(NeighborSolicitation {
                target,
                source_ll: Some(client),
            }),
        },
    );
    for (name, frame) in [
        ("ARP request, owned", arp(Ipv4Addr::new(198, 18, 1, 7))),
        ("NS, owned", ns),
        (
            "ARP request, not owned",
            arp(Ipv4Addr::new(198, 18, 200, 7)),
        ),
    ] {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            let _ = black_box(respond(black_box(&frame), &node, &owned));
        }
        let per = start.elapsed() / ROUNDS;
        println!(
            "{name:<24} {:>6} ns/frame  ({:.1} M frames/s on one core)",
            per.as_nanos(),
            1.0 / per.max(Duration::from_nanos(1)).as_secs_f64() / 1e6
        );
    }
}
