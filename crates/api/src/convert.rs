//! Pure conversions between the CRD types and the allocator's plain data, so the
//! controller's reconcilers stay thin: IPPool -> [`ironlb_ipam::PoolSpec`], and
//! [`ironlb_ipam::PoolStats`] -> IPPool status with Ready / Invalid conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::ResourceExt;

use crate::names::{POOL_CONDITION_INVALID, POOL_CONDITION_READY};
use crate::{IPPool, IPPoolStatus};

/// The allocator's view of an IPPool. `created` is the creation timestamp in
/// seconds, so an older pool wins an overlap even after a controller restart.
pub fn pool_spec(pool: &IPPool) -> ironlb_ipam::PoolSpec {
    ironlb_ipam::PoolSpec {
        name: pool.name_any(),
        addresses: pool.spec.addresses.clone(),
        auto_assign: pool.spec.auto_assign,
        avoid_buggy_ips: pool.spec.avoid_buggy_ips,
        priority: pool.spec.priority,
        service_selector: pool.spec.service_selector.as_ref().map(label_selector),
        namespace_selector: pool.spec.namespace_selector.as_ref().map(label_selector),
        created: pool
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
    }
}

/// A Kubernetes LabelSelector as the allocator's plain selector.
pub fn label_selector(s: &LabelSelector) -> ironlb_ipam::LabelSelector {
    ironlb_ipam::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: s
            .match_expressions
            .iter()
            .flatten()
            .map(|e| ironlb_ipam::SelectorRequirement {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The IPPool status for `stats`. Conditions keep their `lastTransitionTime` from
/// `previous` when their status did not change, so re-applying an unchanged status
/// is a no-op for the apiserver.
pub fn pool_status(
    stats: &ironlb_ipam::PoolStats,
    previous: Option<&IPPoolStatus>,
    generation: Option<i64>,
    now: Time,
) -> IPPoolStatus {
    let (ready, invalid) = match &stats.invalid {
        None => (
            condition(
                POOL_CONDITION_READY,
                true,
                "PoolReady",
                "addresses parsed; the pool is in use".into(),
            ),
            condition(
                POOL_CONDITION_INVALID,
                false,
                "PoolValid",
                "no problem found".into(),
            ),
        ),
        Some(message) => (
            condition(POOL_CONDITION_READY, false, "PoolInvalid", message.clone()),
            condition(POOL_CONDITION_INVALID, true, "PoolInvalid", message.clone()),
        ),
    };
    let conditions = [ready, invalid]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            let before = previous.and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_));
            c.last_transition_time = match before {
                Some(o) if o.status == c.status => o.last_transition_time.clone(),
                _ => now.clone(),
            };
            c
        })
        .collect();
    IPPoolStatus {
        conditions,
        assigned_ipv4: i64::try_from(stats.assigned[0]).unwrap_or(i64::MAX),
        assigned_ipv6: i64::try_from(stats.assigned[1]).unwrap_or(i64::MAX),
        available_ipv4: stats.available[0].to_string(),
        available_ipv6: stats.available[1].to_string(),
        excluded_node_ips: stats.reserved.iter().map(ToString::to_string).collect(),
        observed_generation: generation,
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(Default::default()),
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IPPoolSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn an_ippool_becomes_a_pool_spec() {
        let mut pool = IPPool::new(
            "lan",
            IPPoolSpec {
                addresses: vec!["192.0.2.0/24".into()],
                auto_assign: false,
                avoid_buggy_ips: true,
                service_selector: Some(LabelSelector {
                    match_labels: Some([("tier".to_string(), "web".to_string())].into()),
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "env".into(),
                        operator: "In".into(),
                        values: Some(vec!["prod".into()]),
                    }]),
                }),
                namespace_selector: None,
                priority: 3,
            },
        );
        pool.metadata.creation_timestamp = Some(at(1_700_000_000));
        let spec = pool_spec(&pool);
        assert_eq!(spec.name, "lan");
        assert!(!spec.auto_assign && spec.avoid_buggy_ips);
        assert_eq!(spec.priority, 3);
        assert_eq!(spec.created, Some(1_700_000_000));
        let sel = spec.service_selector.unwrap();
        assert_eq!(sel.match_labels["tier"], "web");
        assert_eq!(sel.match_expressions[0].values, ["prod"]);
        assert_eq!(spec.namespace_selector, None);
    }

    #[test]
    fn stats_become_status_and_unchanged_conditions_keep_their_time() {
        let mut alloc = ironlb_ipam::Allocator::new();
        alloc.set_pools(vec![ironlb_ipam::PoolSpec::new(
            "lan",
            ["192.0.2.0/30", "2001:db8::/64"],
        )]);
        alloc.set_reserved(["192.0.2.1".parse().unwrap()]);
        let stats = alloc.pool_stats("lan").unwrap();
        let first = pool_status(&stats, None, Some(4), at(100));
        assert_eq!(first.available_ipv4, "3");
        assert_eq!(first.available_ipv6, "18446744073709551616");
        assert_eq!(first.excluded_node_ips, ["192.0.2.1"]);
        let ready = first
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.observed_generation),
            ("True", Some(4))
        );

        let again = pool_status(&stats, Some(&first), Some(4), at(200));
        assert_eq!(again, first, "nothing changed, not even a timestamp");

        let broken = ironlb_ipam::PoolStats {
            invalid: Some("overlaps IPPool 'x'".into()),
            ..stats
        };
        let st = pool_status(&broken, Some(&first), Some(5), at(300));
        let invalid = st.conditions.iter().find(|c| c.type_ == "Invalid").unwrap();
        assert_eq!(
            (invalid.status.as_str(), invalid.message.as_str()),
            ("True", "overlaps IPPool 'x'")
        );
        assert_eq!(invalid.last_transition_time, at(300));
    }
}
