//! Any bytes through decode and respond: no panic, and a reply only ever claims an
//! owned IP with our MAC and decodes again.
#![no_main]

use std::net::IpAddr;

use ironlb_l2::frame::decode;
use ironlb_l2::{respond, InterfaceInfo, MacAddr, OwnedIps};
use libfuzzer_sys::fuzz_target;

const NODE_MAC: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);

fuzz_target!(|bytes: &[u8]| {
    let _ = decode(bytes);
    let owned: OwnedIps = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]
        .iter()
        .map(|s| s.parse::<IpAddr>().unwrap())
        .collect();
    // Both an untagged interface and one on VLAN 100, with and without link-local.
    for iface in [
        InterfaceInfo::new(NODE_MAC),
        InterfaceInfo::new(NODE_MAC)
            .with_link_local("fe80::1".parse().unwrap())
            .with_vlan(100),
    ] {
        if let Ok(reply) = respond(bytes, &iface, &owned) {
            assert!(owned.contains(reply.ip));
            let frame = decode(&reply.frame).expect("our own reply decodes");
            assert_eq!(frame.ethernet.src, NODE_MAC);
            assert_eq!(frame.ethernet.vlan, iface.vlan);
        }
    }
});
