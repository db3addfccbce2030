//! Rules of the allocator, as ordered sequences of steps against one allocator
//! (MetalLB's `TestAssignment` style) and as one test per rule.

use std::net::IpAddr;

use super::*;
use crate::{LabelSelector, Port};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn req() -> AllocationRequest {
    AllocationRequest::default()
}

fn allocator(pools: Vec<PoolSpec>) -> Allocator {
    let mut a = Allocator::new();
    let report = a.set_pools(pools);
    assert!(report.pools.values().all(Result::is_ok), "{report:?}");
    a
}

fn pool(name: &str, addresses: &[&str]) -> PoolSpec {
    PoolSpec::new(name, addresses.iter().copied())
}

/// What a step expects.
enum Expect {
    /// These addresses, in order.
    Ips(&'static [&'static str]),
    /// An error with this reason.
    Fails(&'static str),
}

/// One step: "description", service, what it does, what should happen.
struct Step {
    desc: &'static str,
    svc: &'static str,
    action: Action,
    expect: Expect,
}

enum Action {
    Allocate(AllocationRequest),
    Release,
}

fn run(alloc: &mut Allocator, steps: Vec<Step>) {
    for (n, step) in steps.into_iter().enumerate() {
        let key = svc(step.svc);
        let got = match step.action {
            Action::Allocate(r) => alloc.allocate(&key, &r).map(|a| a.ips()),
            Action::Release => Ok(alloc.release(&key).map(|a| a.ips()).unwrap_or_default()),
        };
        match (step.expect, got) {
            (Expect::Ips(want), Ok(got)) => {
                let want: Vec<IpAddr> = want.iter().map(|s| ip(s)).collect();
                assert_eq!(got, want, "step {n} '{}'", step.desc);
            }
            (Expect::Fails(reason), Err(e)) => {
                assert_eq!(e.reason(), reason, "step {n} '{}': {e}", step.desc)
            }
            (Expect::Ips(want), Err(e)) => {
                panic!("step {n} '{}': wanted {want:?}, got error {e}", step.desc)
            }
            (Expect::Fails(reason), Ok(got)) => {
                panic!("step {n} '{}': wanted {reason}, got {got:?}", step.desc)
            }
        }
        alloc.check_invariants();
    }
}

fn step(desc: &'static str, svc: &'static str, action: Action, expect: Expect) -> Step {
    Step {
        desc,
        svc,
        action,
        expect,
    }
}

use Action::{Allocate, Release};
use Expect::{Fails, Ips};

// === sequences ===

#[test]
fn sequence_sharing_requested_ips_and_exhaustion() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    let shared = |ports: &[u16]| {
        req()
            .sharing("key")
            .ports(ports.iter().map(|p| Port::tcp(*p)))
    };
    run(
        &mut a,
        vec![
            step(
                "s1 gets the lowest free address",
                "s1",
                Allocate(req()),
                Ips(&["192.0.2.0"]),
            ),
            step(
                "s1 asking again keeps it",
                "s1",
                Allocate(req()),
                Ips(&["192.0.2.0"]),
            ),
            step(
                "s2 cannot take s1's address: no sharing key",
                "s2",
                Allocate(req().requesting(ip("192.0.2.0"))),
                Fails("RequestedIPTaken"),
            ),
            step(
                "s2 gets the next one",
                "s2",
                Allocate(req()),
                Ips(&["192.0.2.1"]),
            ),
            step(
                "s3 asks for .2 with key and port 80",
                "s3",
                Allocate(shared(&[80]).requesting(ip("192.0.2.2"))),
                Ips(&["192.0.2.2"]),
            ),
            step(
                "s4 shares .2: same key, port 443",
                "s4",
                Allocate(shared(&[443]).requesting(ip("192.0.2.2"))),
                Ips(&["192.0.2.2"]),
            ),
            step(
                "s5 can't share with s3 (port 80 clash)",
                "s5",
                Allocate(shared(&[80]).requesting(ip("192.0.2.2"))),
                Fails("RequestedIPTaken"),
            ),
            step(
                "s5 can't share with another key",
                "s5",
                Allocate(
                    req()
                        .sharing("other")
                        .ports([Port::tcp(8080)])
                        .requesting(ip("192.0.2.2")),
                ),
                Fails("RequestedIPTaken"),
            ),
            step(
                "s5 can't share as Local with Cluster services",
                "s5",
                Allocate(shared(&[8080]).local("app=x").requesting(ip("192.0.2.2"))),
                Fails("RequestedIPTaken"),
            ),
            step(
                "s6 with the key and a free port lands on .2 by itself",
                "s6",
                Allocate(shared(&[22])),
                Ips(&["192.0.2.2"]),
            ),
            step(
                "s3 leaves; .2 stays with s4 and s6",
                "s3",
                Release,
                Ips(&["192.0.2.2"]),
            ),
            step(
                "s7 gets the last address",
                "s7",
                Allocate(req()),
                Ips(&["192.0.2.3"]),
            ),
            step(
                "s8 finds the pool exhausted",
                "s8",
                Allocate(req()),
                Fails("PoolExhausted"),
            ),
            step("s1 leaves", "s1", Release, Ips(&["192.0.2.0"])),
            step(
                "s8 gets s1's address at once",
                "s8",
                Allocate(req()),
                Ips(&["192.0.2.0"]),
            ),
            step(
                "s9 may share with s4 and s6 on a port of its own",
                "s9",
                Allocate(shared(&[80])),
                Ips(&["192.0.2.2"]),
            ),
        ],
    );
    assert_eq!(
        a.holders(ip("192.0.2.2")),
        [svc("s4"), svc("s6"), svc("s9")]
    );
}

#[test]
fn sequence_pool_choice_by_annotation_selectors_priority_and_auto_assign() {
    let mut a = Allocator::new();
    let mut manual = pool("manual", &["198.51.100.0/30"]);
    manual.auto_assign = false;
    let mut web = pool("web", &["203.0.113.0/30"]);
    web.service_selector = Some(LabelSelector::labels([("tier", "web")]));
    web.priority = -1;
    let mut prod = pool("prod-only", &["203.0.113.8/30"]);
    prod.namespace_selector = Some(LabelSelector::labels([("env", "prod")]));
    prod.priority = -2;
    let report = a.set_pools(vec![
        pool("b-default", &["192.0.2.0/30"]),
        pool("a-default", &["192.0.2.4/30"]),
        manual,
        web,
        prod,
    ]);
    assert!(report.pools.values().all(Result::is_ok));
    run(
        &mut a,
        vec![
            step(
                "a plain Service gets the first auto pool by name at equal priority",
                "plain",
                Allocate(req()),
                Ips(&["192.0.2.4"]),
            ),
            step(
                "a web Service gets the higher-priority web pool",
                "web",
                Allocate(req().service_labels([("tier", "web")])),
                Ips(&["203.0.113.0"]),
            ),
            step(
                "a prod Service gets the prod pool first",
                "prod",
                Allocate(req().namespace_labels([("env", "prod")])),
                Ips(&["203.0.113.8"]),
            ),
            step(
                "naming the manual pool works",
                "named",
                Allocate(req().from_pool("manual")),
                Ips(&["198.51.100.0"]),
            ),
            step(
                "requesting an IP of the manual pool works",
                "pinned",
                Allocate(req().requesting(ip("198.51.100.3"))),
                Ips(&["198.51.100.3"]),
            ),
            step(
                "an unknown pool is an error",
                "lost",
                Allocate(req().from_pool("nope")),
                Fails("UnknownPool"),
            ),
            step(
                "an IP outside every pool is an error",
                "lost",
                Allocate(req().requesting(ip("198.18.0.1"))),
                Fails("RequestedIPOutsidePools"),
            ),
            step(
                "an IP of another pool than the one named is an error",
                "lost",
                Allocate(req().from_pool("manual").requesting(ip("192.0.2.1"))),
                Fails("RequestedIPWrongPool"),
            ),
            step(
                "changing the pool annotation moves the Service",
                "plain",
                Allocate(req().from_pool("b-default")),
                Ips(&["192.0.2.0"]),
            ),
            step(
                "its old address is free again",
                "next",
                Allocate(req()),
                Ips(&["192.0.2.4"]),
            ),
        ],
    );
}

#[test]
fn sequence_dual_stack() {
    let mut a = allocator(vec![
        pool("v4-only", &["192.0.2.0/31"]),
        pool("w-dual", &["192.0.2.8/31", "2001:db8::/127"]),
    ]);
    let single6 = req().families(IpFamilyPolicy::SingleStack, [Family::V6]);
    let prefer = req().families(IpFamilyPolicy::PreferDualStack, [Family::V4, Family::V6]);
    let require6 = req().families(IpFamilyPolicy::RequireDualStack, [Family::V6, Family::V4]);
    run(
        &mut a,
        vec![
            step(
                "SingleStack IPv6 skips the v4-only pool",
                "v6",
                Allocate(single6.clone()),
                Ips(&["2001:db8::"]),
            ),
            step(
                "PreferDualStack gets both from the dual pool",
                "pref",
                Allocate(prefer.clone()),
                Ips(&["192.0.2.8", "2001:db8::1"]),
            ),
            step(
                "RequireDualStack finds no IPv6 left and takes nothing",
                "req",
                Allocate(require6.clone()),
                Fails("DualStackUnavailable"),
            ),
            step(
                "PreferDualStack settles for IPv4 alone",
                "pref2",
                Allocate(prefer.clone()),
                Ips(&["192.0.2.0"]),
            ),
            step("v6 leaves", "v6", Release, Ips(&["2001:db8::"])),
            step(
                "RequireDualStack now gets both, IPv6 first",
                "req",
                Allocate(require6),
                Ips(&["2001:db8::", "192.0.2.9"]),
            ),
            step(
                "pref2 still lacks IPv6 and keeps its IPv4",
                "pref2",
                Allocate(prefer),
                Ips(&["192.0.2.0"]),
            ),
        ],
    );
}

// === one test per rule ===

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut p = pool("lan", &["192.0.2.254-192.0.3.1"]);
    p.avoid_buggy_ips = true;
    let mut a = allocator(vec![p]);
    assert_eq!(a.pool_stats("lan").unwrap().total, [2, 0]);
    let err = a
        .allocate(&svc("x"), &req().requesting(ip("192.0.2.255")))
        .unwrap_err();
    assert_eq!(err.reason(), "RequestedIPOutsidePools");
    assert!(err.to_string().contains("avoids .0 and .255"), "{err}");
}

#[test]
fn a_pool_of_two_usable_addresses_serves_two_then_is_exhausted() {
    let mut p = pool("lan", &["192.0.2.254-192.0.3.1"]);
    p.avoid_buggy_ips = true;
    let mut a = allocator(vec![p]);
    assert_eq!(
        a.allocate(&svc("a"), &req()).unwrap().ips(),
        [ip("192.0.2.254")]
    );
    assert_eq!(
        a.allocate(&svc("b"), &req()).unwrap().ips(),
        [ip("192.0.3.1")]
    );
    assert_eq!(
        a.allocate(&svc("c"), &req()).unwrap_err().reason(),
        "PoolExhausted"
    );
}

#[test]
fn an_ipv6_slash_64_is_never_enumerated() {
    let mut a = allocator(vec![
        pool("v6", &["2001:db8::/64"]),
        pool("w-huge", &["2001:db8:1::/56"]),
    ]);
    let r = req().families(IpFamilyPolicy::SingleStack, [Family::V6]);
    for i in 0..1000 {
        a.allocate(&svc(&format!("s{i}")), &r).unwrap();
    }
    let stats = a.pool_stats("v6").unwrap();
    assert_eq!(stats.assigned, [0, 1000]);
    assert_eq!(stats.available[1], (1u128 << 64) - 1000);
    assert_eq!(stats.available_saturating(Family::V6), u64::MAX - 999);
    assert_eq!(
        a.pool_stats("w-huge")
            .unwrap()
            .available_saturating(Family::V6),
        u64::MAX
    );
    assert_eq!(
        a.pools[0].free[1].intervals(),
        1,
        "one interval however many are handed out"
    );
}

#[test]
fn node_addresses_are_never_handed_out_and_are_reported() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    a.set_reserved([ip("192.0.2.0"), ip("192.0.2.2"), ip("198.51.100.1")]);
    let got: Vec<IpAddr> = ["a", "b"]
        .iter()
        .map(|s| a.allocate(&svc(s), &req()).unwrap().ips()[0])
        .collect();
    assert_eq!(got, [ip("192.0.2.1"), ip("192.0.2.3")]);
    assert_eq!(
        a.allocate(&svc("c"), &req()).unwrap_err().reason(),
        "PoolExhausted"
    );
    let stats = a.pool_stats("lan").unwrap();
    assert_eq!(stats.reserved, [ip("192.0.2.0"), ip("192.0.2.2")]);
    assert_eq!((stats.total[0], stats.available[0]), (2, 0));
    let err = a
        .allocate(&svc("c"), &req().requesting(ip("192.0.2.2")))
        .unwrap_err();
    assert_eq!(err.reason(), "RequestedIPReserved");
    a.check_invariants();
}

#[test]
fn a_node_taking_a_service_address_strands_that_service() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    a.allocate(&svc("web"), &req()).unwrap();
    let report = a.set_reserved([ip("192.0.2.0")]);
    assert_eq!(report.stranded.len(), 1);
    assert_eq!(report.stranded[0].service, svc("web"));
    assert_eq!(report.stranded[0].released, [ip("192.0.2.0")]);
    assert!(report.stranded[0].reason.contains("Node's own address"));
    assert_eq!(a.assignment(&svc("web")), None);
    assert_eq!(
        a.allocate(&svc("web"), &req()).unwrap().ips(),
        [ip("192.0.2.1")]
    );
    a.check_invariants();
}

#[test]
fn shrinking_or_deleting_a_pool_strands_only_what_no_longer_fits() {
    let mut a = allocator(vec![
        pool("lan", &["192.0.2.0/30"]),
        pool("dmz", &["198.51.100.0/30"]),
    ]);
    for s in ["a", "b", "c"] {
        a.allocate(&svc(s), &req().from_pool("lan")).unwrap();
    }
    a.allocate(&svc("d"), &req().from_pool("dmz")).unwrap();
    let report = a.set_pools(vec![
        pool("lan", &["192.0.2.0/31"]),
        pool("dmz", &["198.51.100.0/30"]),
    ]);
    assert_eq!(
        report
            .stranded
            .iter()
            .map(|s| s.service.clone())
            .collect::<Vec<_>>(),
        [svc("c")]
    );
    assert!(
        report.stranded[0]
            .reason
            .contains("no longer in any IPPool"),
        "{:?}",
        report.stranded
    );
    assert_eq!(a.assignment(&svc("a")).unwrap().ips(), [ip("192.0.2.0")]);
    assert_eq!(a.pool_stats("lan").unwrap().assigned, [2, 0]);

    let report = a.set_pools(vec![pool("lan", &["192.0.2.0/31"])]);
    assert_eq!(report.stranded.len(), 1);
    assert_eq!(report.stranded[0].service, svc("d"));
    assert_eq!(a.pool_stats("dmz"), None);
    a.check_invariants();
}

#[test]
fn an_address_moving_to_another_pool_stays_put() {
    let mut a = allocator(vec![pool("old", &["192.0.2.0/30"])]);
    a.allocate(&svc("web"), &req()).unwrap();
    let report = a.set_pools(vec![pool("new", &["192.0.2.0/29"])]);
    assert!(report.stranded.is_empty());
    let got = a.assignment(&svc("web")).unwrap();
    assert_eq!((got.ips[0].ip, &*got.ips[0].pool), (ip("192.0.2.0"), "new"));
    assert_eq!(a.pool_stats("new").unwrap().assigned, [1, 0]);
    a.check_invariants();
}

#[test]
fn malformed_and_overlapping_pools_are_invalid_and_the_rest_works() {
    let mut a = Allocator::new();
    let mut old = pool("z-old", &["192.0.2.0/24"]);
    old.created = Some(100);
    let mut new = pool("a-new", &["192.0.2.128/25"]);
    new.created = Some(200);
    let report = a.set_pools(vec![
        pool("broken", &["192.0.2.0/33"]),
        new,
        old,
        pool("v6", &["2001:db8::/64"]),
    ]);
    assert!(report.pools["broken"]
        .as_ref()
        .unwrap_err()
        .contains("prefix length 33 exceeds 32"));
    let overlap = report.pools["a-new"].as_ref().unwrap_err();
    assert!(
        overlap.contains("overlaps") && overlap.contains("'z-old'"),
        "{overlap}"
    );
    assert!(report.pools["z-old"].is_ok() && report.pools["v6"].is_ok());
    assert_eq!(
        a.allocate(&svc("web"), &req()).unwrap().ips(),
        [ip("192.0.2.0")]
    );
    assert_eq!(
        a.allocate(&svc("x"), &req().from_pool("broken"))
            .unwrap_err()
            .reason(),
        "PoolInvalid"
    );
    assert_eq!(
        a.pool_stats("a-new").unwrap().invalid.as_deref(),
        Some(overlap.as_str())
    );
}

#[test]
fn a_pool_valid_before_keeps_winning_an_overlap() {
    let mut a = allocator(vec![pool("b", &["192.0.2.0/24"])]);
    a.allocate(&svc("web"), &req()).unwrap();
    let report = a.set_pools(vec![
        pool("a", &["192.0.2.0/25"]),
        pool("b", &["192.0.2.0/24"]),
    ]);
    assert!(report.pools["a"].is_err(), "the newcomer loses");
    assert!(report.stranded.is_empty());
}

#[test]
fn bad_selectors_make_the_pool_invalid() {
    let mut p = pool("lan", &["192.0.2.0/24"]);
    p.service_selector = Some(LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![crate::SelectorRequirement {
            key: "a".into(),
            operator: "Has".into(),
            values: vec![],
        }],
    });
    let mut a = Allocator::new();
    let report = a.set_pools(vec![p]);
    assert!(report.pools["lan"]
        .as_ref()
        .unwrap_err()
        .contains("serviceSelector"));
    assert_eq!(
        a.allocate(&svc("web"), &req()).unwrap_err().reason(),
        "NoMatchingPool"
    );
}

#[test]
fn no_matching_pool_says_why() {
    let mut manual = pool("manual", &["192.0.2.0/24"]);
    manual.auto_assign = false;
    let mut a = allocator(vec![manual]);
    let err = a.allocate(&svc("web"), &req()).unwrap_err();
    assert_eq!(err.reason(), "NoMatchingPool");
    assert!(err.to_string().contains("autoAssign"), "{err}");

    let mut a = allocator(vec![pool("v4", &["192.0.2.0/24"])]);
    let err = a
        .allocate(
            &svc("web"),
            &req().families(IpFamilyPolicy::SingleStack, [Family::V6]),
        )
        .unwrap_err();
    assert_eq!(err.reason(), "NoMatchingPool");
    assert!(err.to_string().contains("no IPv6 addresses"), "{err}");
}

#[test]
fn require_dual_stack_never_leaves_half_a_result() {
    let mut a = allocator(vec![
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8::/64"]),
    ]);
    let r = req().families(IpFamilyPolicy::RequireDualStack, [Family::V4, Family::V6]);
    let err = a.allocate(&svc("web"), &r).unwrap_err();
    assert_eq!(err.reason(), "DualStackUnavailable");
    assert_eq!(a.assignment(&svc("web")), None);
    assert_eq!(a.pool_stats("v4").unwrap().assigned, [0, 0]);
    let err = a
        .allocate(&svc("web"), &r.clone().requesting(ip("192.0.2.5")))
        .unwrap_err();
    assert_eq!(err.reason(), "DualStackUnavailable");
}

#[test]
fn requested_ips_must_be_one_per_family() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/24"])]);
    let r = req()
        .requesting(ip("192.0.2.1"))
        .requesting(ip("192.0.2.2"));
    assert_eq!(
        a.allocate(&svc("web"), &r).unwrap_err().reason(),
        "InvalidRequest"
    );
}

#[test]
fn local_services_share_only_with_the_same_selector() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/24"])]);
    let local = |sel: &str, port: u16| req().sharing("k").local(sel).ports([Port::tcp(port)]);
    let first = a.allocate(&svc("a"), &local("app=web", 80)).unwrap().ips();
    assert_eq!(
        a.allocate(&svc("b"), &local("app=web", 443)).unwrap().ips(),
        first
    );
    assert_ne!(
        a.allocate(&svc("c"), &local("app=db", 5432)).unwrap().ips(),
        first
    );
    let err = a
        .allocate(&svc("d"), &local("app=db", 22).requesting(first[0]))
        .unwrap_err();
    assert!(err.to_string().contains("select different pods"), "{err}");
}

#[test]
fn sharing_is_per_pool() {
    let mut a = allocator(vec![
        pool("one", &["192.0.2.0/30"]),
        pool("two", &["198.51.100.0/30"]),
    ]);
    let r = |p: &str, port: u16| req().sharing("k").from_pool(p).ports([Port::tcp(port)]);
    let x = a.allocate(&svc("a"), &r("one", 80)).unwrap().ips();
    let y = a.allocate(&svc("b"), &r("two", 443)).unwrap().ips();
    assert_ne!(x, y);
}

#[test]
fn a_new_port_clash_moves_the_service_off_the_shared_address() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    let r = |port: u16| req().sharing("k").ports([Port::tcp(port)]);
    a.allocate(&svc("a"), &r(80)).unwrap();
    assert_eq!(
        a.allocate(&svc("b"), &r(443)).unwrap().ips(),
        [ip("192.0.2.0")]
    );
    assert_eq!(
        a.allocate(&svc("b"), &r(80)).unwrap().ips(),
        [ip("192.0.2.1")]
    );
    assert_eq!(a.holders(ip("192.0.2.0")), [svc("a")]);
}

#[test]
fn the_sole_holder_may_change_its_sharing_key_in_place() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    let first = a.allocate(&svc("a"), &req()).unwrap();
    assert_eq!(a.allocate(&svc("a"), &req().sharing("k")).unwrap(), first);
    assert_eq!(
        a.allocate(&svc("b"), &req().sharing("k").ports([Port::udp(53)]))
            .unwrap(),
        first
    );
    a.check_invariants();
}

#[test]
fn a_failed_change_keeps_what_the_service_held() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    let held = a.allocate(&svc("web"), &req()).unwrap();
    assert!(a
        .allocate(&svc("web"), &req().requesting(ip("198.51.100.1")))
        .is_err());
    assert_eq!(a.assignment(&svc("web")), Some(held));
}

#[test]
fn seeding_reproduces_recorded_addresses_whatever_the_order() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/24"])]);
    let shared = |port: u16| req().sharing("k").ports([Port::tcp(port)]);
    a.allocate(&svc("a"), &req()).unwrap();
    a.allocate(&svc("b"), &shared(80)).unwrap();
    a.allocate(&svc("c"), &shared(443)).unwrap();
    a.release(&svc("a"));
    a.allocate(&svc("d"), &req()).unwrap();

    let mut b = allocator(vec![pool("lan", &["192.0.2.0/24"])]);
    let recorded = [("d", req()), ("c", shared(443)), ("b", shared(80))];
    for (name, r) in &recorded {
        let ips = a.assignment(&svc(name)).unwrap().ips();
        assert_eq!(b.assign(&svc(name), &ips, r).unwrap().ips(), ips);
    }
    for (name, r) in &recorded {
        assert_eq!(
            b.allocate(&svc(name), r).unwrap(),
            a.assignment(&svc(name)).unwrap(),
            "{name}"
        );
    }
    b.check_invariants();
}

#[test]
fn seeding_refuses_what_would_break_the_rules() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/24"])]);
    a.assign(&svc("a"), &[ip("192.0.2.7")], &req()).unwrap();
    let err = a.assign(&svc("b"), &[ip("192.0.2.7")], &req()).unwrap_err();
    assert_eq!(err.reason(), "RequestedIPTaken");
    assert!(err.to_string().contains("default/a"), "{err}");
    assert_eq!(
        a.assign(&svc("c"), &[ip("198.51.100.7")], &req())
            .unwrap_err()
            .reason(),
        "RequestedIPOutsidePools"
    );
    // The recorded address wins over the pool annotation when seeding.
    let mut other = pool("other", &["198.51.100.0/24"]);
    other.auto_assign = false;
    a.set_pools(vec![pool("lan", &["192.0.2.0/24"]), other]);
    assert!(a
        .assign(&svc("d"), &[ip("192.0.2.9")], &req().from_pool("other"))
        .is_ok());
}

#[test]
fn errors_carry_reasons_and_messages() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/32"])]);
    a.allocate(&svc("a"), &req()).unwrap();
    let err = a.allocate(&svc("b"), &req()).unwrap_err();
    assert_eq!(err.reason(), "PoolExhausted");
    assert_eq!(err.to_string(), "no IPv4 address left in pool(s) lan");
}

#[test]
fn a_pool_edited_into_garbage_strands_its_services_with_the_parse_error() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    a.allocate(&svc("web"), &req()).unwrap();
    let report = a.set_pools(vec![pool("lan", &["192.0.2.0/33"])]);
    assert_eq!(report.stranded.len(), 1);
    let reason = &report.stranded[0].reason;
    assert!(
        reason.contains("IPPool 'lan' is invalid") && reason.contains("exceeds 32"),
        "{reason}"
    );
    a.check_invariants();
}

#[test]
fn turning_on_avoid_buggy_ips_strands_dot_zero_holders_only() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    a.allocate(&svc("zero"), &req()).unwrap();
    a.allocate(&svc("one"), &req()).unwrap();
    let mut p = pool("lan", &["192.0.2.0/30"]);
    p.avoid_buggy_ips = true;
    let report = a.set_pools(vec![p]);
    assert_eq!(report.stranded.len(), 1);
    assert_eq!(report.stranded[0].service, svc("zero"));
    assert!(report.stranded[0].reason.contains("avoids .0 and .255"));
    assert_eq!(
        a.allocate(&svc("zero"), &req()).unwrap().ips(),
        [ip("192.0.2.2")]
    );
    a.check_invariants();
}

#[test]
fn a_shared_address_strands_every_holder() {
    let mut a = allocator(vec![pool("lan", &["192.0.2.0/30"])]);
    let r = |port: u16| req().sharing("k").ports([Port::tcp(port)]);
    a.allocate(&svc("a"), &r(80)).unwrap();
    a.allocate(&svc("b"), &r(443)).unwrap();
    let report = a.set_reserved([ip("192.0.2.0")]);
    let who: Vec<ServiceKey> = report.stranded.iter().map(|s| s.service.clone()).collect();
    assert_eq!(who, [svc("a"), svc("b")]);
    // They re-allocate and share again on the next address.
    assert_eq!(
        a.allocate(&svc("a"), &r(80)).unwrap().ips(),
        [ip("192.0.2.1")]
    );
    assert_eq!(
        a.allocate(&svc("b"), &r(443)).unwrap().ips(),
        [ip("192.0.2.1")]
    );
    a.check_invariants();
}

#[test]
fn pool_stats_count_per_family() {
    let mut a = allocator(vec![pool("dual", &["192.0.2.0/29", "2001:db8::/120"])]);
    let dual = req().families(IpFamilyPolicy::RequireDualStack, [Family::V4, Family::V6]);
    a.allocate(&svc("a"), &dual).unwrap();
    a.allocate(&svc("b"), &req()).unwrap();
    let s = a.pool_stats("dual").unwrap();
    assert_eq!(s.total, [8, 256]);
    assert_eq!(s.assigned, [2, 1]);
    assert_eq!(s.available, [6, 255]);
    assert_eq!(s.invalid, None);
}

#[test]
fn a_thousand_services_survive_a_restart_unchanged() {
    let pools = || {
        vec![
            pool("v4", &["198.18.0.0/22"]),
            pool("v6", &["2001:db8::/64"]),
        ]
    };
    let request = |i: usize| match i % 4 {
        0 => req(),
        1 => req().families(IpFamilyPolicy::SingleStack, [Family::V6]),
        2 => req().sharing("web").ports([Port::tcp(8000 + i as u16)]),
        _ => req().families(IpFamilyPolicy::PreferDualStack, [Family::V4, Family::V6]),
    };
    let mut before = allocator(pools());
    for i in 0..1000 {
        before
            .allocate(&svc(&format!("s{i}")), &request(i))
            .unwrap();
    }
    for i in (0..1000).step_by(7) {
        before.release(&svc(&format!("s{i}")));
    }
    for i in (0..1000).step_by(14) {
        before
            .allocate(&svc(&format!("s{i}")), &request(i))
            .unwrap();
    }

    let mut after = allocator(pools());
    for i in (0..1000).rev() {
        if let Some(held) = before.assignment(&svc(&format!("s{i}"))) {
            after
                .assign(&svc(&format!("s{i}")), &held.ips(), &request(i))
                .unwrap();
        }
    }
    let mut changed = 0;
    for i in 0..1000 {
        let key = svc(&format!("s{i}"));
        let was = before.assignment(&key);
        let now = after.allocate(&key, &request(i)).ok();
        if was.is_some() && was != now {
            changed += 1;
        }
    }
    assert_eq!(changed, 0);
    after.check_invariants();
}
