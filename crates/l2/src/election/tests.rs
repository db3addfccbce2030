use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// IPs 198.18.0.0 + i (the benchmark range: plenty of distinct addresses).
fn ips(n: u32) -> impl Iterator<Item = IpAddr> {
    (0..n).map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)))
}

#[test]
fn score_is_pinned() {
    // Values computed independently with Python's hashlib from the definition in the
    // module docs. If this fails, owners change during a rolling upgrade.
    assert_eq!(score(ip("192.0.2.1"), "node-a"), 0x669d_6b6f_ebdc_edbc);
    assert_eq!(score(ip("192.0.2.1"), "node-b"), 0x989b_e97f_eb88_af25);
    assert_eq!(score(ip("2001:db8::1"), "node-a"), 0x434f_f51d_8701_941c);
    assert_eq!(
        score(ip("::ffff:192.0.2.1"), "node-a"),
        score(ip("192.0.2.1"), "node-a")
    );
}

#[test]
fn the_highest_score_wins() {
    assert_eq!(
        owner(ip("192.0.2.1"), &["node-a", "node-b"]),
        Some("node-b")
    );
    assert_eq!(owner(ip("192.0.2.1"), &["node-a"]), Some("node-a"));
    assert_eq!(owner(ip("192.0.2.1"), &[]), None);
}

#[test]
fn load_is_roughly_balanced() {
    let nodes = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    let mut count: BTreeMap<&str, u32> = BTreeMap::new();
    for ip in ips(5000) {
        *count.entry(owner(ip, &nodes).unwrap()).or_default() += 1;
    }
    // Expected 1000 each; a fair hash stays within a few standard deviations (~28).
    for node in nodes {
        let n = count[node];
        assert!(
            (850..=1150).contains(&n),
            "{node} owns {n} of 5000: {count:?}"
        );
    }
}

#[test]
fn shared_ips_need_a_node_eligible_for_every_service() {
    let inputs = [
        ElectionInput::new(ip("192.0.2.1"), ["node-a", "node-b"]),
        ElectionInput::new(ip("192.0.2.1"), ["node-a", "node-c"]),
        ElectionInput::new(ip("192.0.2.2"), ["node-c"]),
        ElectionInput::new(ip("192.0.2.3"), Vec::<String>::new()),
    ];
    let all_live = |_: &str| true;
    let owners = owners(&inputs, all_live);
    assert_eq!(owners[&ip("192.0.2.1")], Some("node-a"));
    assert_eq!(owners[&ip("192.0.2.2")], Some("node-c"));
    assert_eq!(owners[&ip("192.0.2.3")], None);
    let dead_c = |n: &str| n != "node-c";
    assert_eq!(super::owners(&inputs, dead_c)[&ip("192.0.2.2")], None);
    assert_eq!(
        owned_by("node-c", &inputs, all_live)
            .iter()
            .collect::<Vec<_>>(),
        vec![ip("192.0.2.2")]
    );
}

fn node_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("node-[a-z0-9]{1,8}", 1..12)
        .prop_map(|s| s.into_iter().collect())
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(v.into())),
        any::<u128>().prop_map(|v| IpAddr::V6(v.into())),
    ]
}

proptest! {
    #[test]
    fn the_owner_is_one_of_the_nodes_and_ignores_their_order(
        ip in any_ip(),
        nodes in node_names(),
        seed in any::<u64>(),
    ) {
        let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let first = owner(ip, &refs).unwrap();
        prop_assert!(refs.contains(&first));
        let mut shuffled = refs.clone();
        // A deterministic permutation from the seed.
        shuffled.sort_by_key(|n| score(IpAddr::V4(Ipv4Addr::from(seed as u32)), n));
        prop_assert_eq!(owner(ip, &shuffled), Some(first));
        let mut doubled = refs.clone();
        doubled.extend(refs.iter().copied());
        prop_assert_eq!(owner(ip, &doubled), Some(first));
    }

    #[test]
    fn removing_a_node_moves_only_its_ips(
        nodes in node_names(),
        victim in any::<prop::sample::Index>(),
        start in any::<u32>(),
    ) {
        let all: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let gone = all[victim.index(all.len())];
        let rest: Vec<&str> = all.iter().copied().filter(|n| *n != gone).collect();
        for i in 0..64u32 {
            let ip = IpAddr::V4(start.wrapping_add(i).into());
            let before = owner(ip, &all).unwrap();
            let after = owner(ip, &rest);
            if before == gone {
                prop_assert!(after != Some(gone));
                prop_assert_eq!(after.is_none(), rest.is_empty());
            } else {
                prop_assert_eq!(after, Some(before));
            }
        }
    }

    #[test]
    fn adding_a_node_moves_ips_only_to_it(
        nodes in node_names(),
        newcomer in "node-[a-z0-9]{1,8}",
        start in any::<u128>(),
    ) {
        let before: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut after = before.clone();
        after.push(&newcomer);
        for i in 0..64u128 {
            let ip = IpAddr::V6(start.wrapping_add(i).into());
            let now = owner(ip, &after).unwrap();
            prop_assert!(now == owner(ip, &before).unwrap() || now == newcomer);
        }
    }
}
