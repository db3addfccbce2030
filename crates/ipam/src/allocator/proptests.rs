//! Properties over random sequences of operations: no address is ever held twice
//! (except shared by the rules), a release makes addresses available at once, and
//! re-seeding a fresh allocator from the recorded assignments reproduces them exactly.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::Port;

fn pools(variant: u8) -> Vec<PoolSpec> {
    // Small pools, so that 8 Services exhaust them and every fallback is exercised.
    let mut a = PoolSpec::new("a", ["192.0.2.0/30", "2001:db8::/127"]);
    let mut b = PoolSpec::new("b", ["198.51.100.254-198.51.101.1", "2001:db8:1::/126"]);
    b.avoid_buggy_ips = true;
    b.priority = 1;
    // Single-family pools, so dual-stack requests meet pools that cannot serve both.
    let mut c = PoolSpec::new("c", ["203.0.113.0/31"]);
    c.priority = -1;
    let d = PoolSpec::new("d", ["2001:db8:2::/127"]);
    match variant % 3 {
        0 => vec![a, b, c, d],
        1 => {
            a.addresses = vec!["192.0.2.0/31".into(), "2001:db8::/128".into()];
            vec![a, b, d]
        }
        _ => vec![a, c],
    }
}

/// Addresses ops draw from: inside and outside the pools, buggy ones included.
const ADDRESSES: [&str; 12] = [
    "203.0.113.1",
    "2001:db8:2::1",
    "192.0.2.0",
    "192.0.2.3",
    "192.0.2.6",
    "198.51.100.255",
    "198.51.101.1",
    "2001:db8::1",
    "2001:db8::7",
    "2001:db8:1::2",
    "203.0.113.9",
    "192.0.2.7",
];

#[derive(Clone, Debug)]
enum Op {
    Allocate { svc: u8, req: AllocationRequest },
    Release { svc: u8 },
    SetPools(u8),
    SetReserved(Vec<u8>),
}

fn request() -> impl Strategy<Value = AllocationRequest> {
    (
        prop::option::of(0u8..2),
        prop::collection::vec(1u16..4, 0..3),
        prop::option::of(0u8..2),
        0u8..5,
        prop::option::of(0usize..ADDRESSES.len()),
        prop::option::of(0u8..5),
    )
        .prop_map(|(sharing, ports, local, fam, requested, pool)| {
            let (policy, families) = match fam {
                0 => (IpFamilyPolicy::SingleStack, vec![Family::V4]),
                1 => (IpFamilyPolicy::SingleStack, vec![Family::V6]),
                2 => (
                    IpFamilyPolicy::PreferDualStack,
                    vec![Family::V4, Family::V6],
                ),
                3 => (
                    IpFamilyPolicy::RequireDualStack,
                    vec![Family::V6, Family::V4],
                ),
                _ => (IpFamilyPolicy::SingleStack, vec![]),
            };
            let mut r = AllocationRequest::default()
                .families(policy, families)
                .ports(ports.into_iter().map(Port::tcp));
            if let Some(k) = sharing {
                r = r.sharing(format!("key{k}"));
            }
            if let Some(l) = local {
                r = r.local(format!("app={l}"));
            }
            if let Some(i) = requested {
                r = r.requesting(ADDRESSES[i].parse().unwrap());
            }
            if let Some(p) = pool {
                r = r.from_pool(["a", "b", "c", "d", "nope"][p as usize]);
            }
            r
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, request()).prop_map(|(svc, req)| Op::Allocate { svc, req }),
        2 => (0u8..8).prop_map(|svc| Op::Release { svc }),
        1 => (0u8..3).prop_map(Op::SetPools),
        1 => prop::collection::vec(0u8..ADDRESSES.len() as u8, 0..3).prop_map(Op::SetReserved),
    ]
}

fn key(n: u8) -> ServiceKey {
    ServiceKey::new("ns", format!("s{n}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_rule(ops in prop::collection::vec(op(), 1..60)) {
        let mut a = Allocator::new();
        let mut variant = 0u8;
        let mut reserved: Vec<IpAddr> = Vec::new();
        a.set_pools(pools(variant));
        // The request each Service last succeeded with, to re-seed from.
        let mut requests: BTreeMap<ServiceKey, AllocationRequest> = BTreeMap::new();

        for op in ops {
            match op {
                Op::Allocate { svc, req } => {
                    let before = a.assignment(&key(svc));
                    match a.allocate(&key(svc), &req) {
                        Ok(got) => {
                            prop_assert_eq!(Some(got.clone()), a.assignment(&key(svc)));
                            // Idempotent.
                            prop_assert_eq!(a.allocate(&key(svc), &req).unwrap(), got);
                            requests.insert(key(svc), req);
                        }
                        // A failure changes nothing for that Service.
                        Err(_) => prop_assert_eq!(a.assignment(&key(svc)), before),
                    }
                }
                Op::Release { svc } => {
                    if let Some(held) = a.release(&key(svc)) {
                        prop_assert_eq!(a.assignment(&key(svc)), None);
                        for ip in held.ips() {
                            if !a.holders(ip).is_empty() {
                                continue; // still shared by others
                            }
                            // Free again at once: anyone may take it now.
                            let probe = ServiceKey::new("probe", "p");
                            let r = AllocationRequest::default().requesting(ip);
                            prop_assert_eq!(a.allocate(&probe, &r).map(|g| g.ips()), Ok(vec![ip]));
                            a.release(&probe);
                        }
                    }
                }
                Op::SetPools(v) => {
                    variant = v;
                    let report = a.set_pools(pools(variant));
                    for s in &report.stranded {
                        for ip in &s.released {
                            prop_assert!(!a.holders(*ip).contains(&s.service));
                        }
                    }
                }
                Op::SetReserved(idx) => {
                    reserved = idx.iter().map(|&i| ADDRESSES[i as usize].parse().unwrap()).collect();
                    a.set_reserved(reserved.clone());
                    for ip in &reserved {
                        prop_assert!(a.holders(*ip).is_empty(), "{} reserved yet held", ip);
                    }
                }
            }
            a.check_invariants();
        }

        // Restart: a fresh allocator seeded from what Services recorded gets the same
        // assignments, in whatever order the Services are seen.
        let mut b = Allocator::new();
        b.set_pools(pools(variant));
        b.set_reserved(reserved.clone());
        let held: Vec<ServiceKey> = a.services();
        for svc in held.iter().rev() {
            let recorded = a.assignment(svc).unwrap();
            let seeded = b.assign(svc, &recorded.ips(), &requests[svc]).unwrap();
            prop_assert_eq!(&seeded, &recorded);
        }
        b.check_invariants();
        for svc in &held {
            prop_assert_eq!(b.assignment(svc), a.assignment(svc));
        }
        for p in a.all_pool_stats() {
            prop_assert_eq!(Some(p.clone()), b.pool_stats(&p.name));
        }
    }
}
