//! Prometheus metrics of the controller, registered before the health server starts.

use ironlb_ipam::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// IPPool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// [`ironlb_ipam::AllocError::reason`] (or `InvalidAnnotation`).
    pub reason: String,
}

/// Every metric the controller exports (prefix `ironlb_controller_`).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Addresses a pool may hand out, per family (saturating for IPv6).
    pub addresses_total: Family<PoolLabels, Gauge>,
    /// Addresses in use, per pool and family.
    pub addresses_in_use: Family<PoolLabels, Gauge>,
    /// Allocation failures (each new failure decision, not each resync), by reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// Time to reconcile one Service (the in-memory decision, not the API write).
    pub reconcile_duration: Histogram,
    /// Services holding at least one address.
    pub services_managed: Gauge,
    /// Status writes (server-side applies) to Services.
    pub status_writes: Counter,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
    /// 1 once the leader has seeded the allocator and reconciled every Service.
    pub synced: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            addresses_total: Family::default(),
            addresses_in_use: Family::default(),
            allocation_failures: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(1e-6, 4.0, 12)),
            services_managed: Gauge::default(),
            status_writes: Counter::default(),
            leader: Gauge::default(),
            synced: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("controller");
        r.register(
            "pool_addresses_total",
            "Addresses an IPPool may hand out, per family (saturating)",
            m.addresses_total.clone(),
        );
        r.register(
            "pool_addresses_in_use",
            "Addresses of an IPPool assigned to Services, per family",
            m.addresses_in_use.clone(),
        );
        r.register(
            "allocation_failures",
            "Allocation failures by reason",
            m.allocation_failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time to decide one Service",
            m.reconcile_duration.clone(),
        );
        r.register(
            "services_managed",
            "Services holding at least one address",
            m.services_managed.clone(),
        );
        r.register(
            "status_writes",
            "Service status writes",
            m.status_writes.clone(),
        );
        r.register("leader", "1 while this replica leads", m.leader.clone());
        r.register(
            "synced",
            "1 once the leader has seeded and reconciled every Service",
            m.synced.clone(),
        );
        m
    }

    /// Replaces the per-pool gauges with `stats`.
    pub fn set_pools(&self, stats: &[PoolStats]) {
        self.addresses_total.clear();
        self.addresses_in_use.clear();
        for s in stats {
            for (i, family) in ["ipv4", "ipv6"].into_iter().enumerate() {
                let labels = PoolLabels {
                    pool: s.name.clone(),
                    family: family.to_string(),
                };
                let total = i64::try_from(s.total[i]).unwrap_or(i64::MAX);
                let used = i64::try_from(s.assigned[i]).unwrap_or(i64::MAX);
                self.addresses_total.get_or_create(&labels).set(total);
                self.addresses_in_use.get_or_create(&labels).set(used);
            }
        }
    }
}
