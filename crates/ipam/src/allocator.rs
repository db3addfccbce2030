//! The allocator: pools, who holds what, and the rules for handing out more.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::addr::{self, is_buggy, parse_entry, Range};
use crate::freeset::FreeSet;
use crate::{
    AllocError, AllocationRequest, AssignedIp, Assignment, Family, IpFamilyPolicy, PoolSpec,
    PoolStats, PoolsReport, Port, ServiceKey, Stranded, TrafficPolicy,
};
use foldhash::fast::RandomState;
use smallvec::SmallVec;

/// Allocates LoadBalancer addresses from pools. See the crate docs for the rules.
///
/// Invariants: every held address lies in a valid pool, is not reserved, and is
/// missing from that pool's free set; all holders of an address have the same
/// sharing key and traffic policy and disjoint ports.
#[derive(Debug, Default)]
pub struct Allocator {
    /// Pool specs as last given (for rebuilding when reserved addresses change).
    specs: Vec<PoolSpec>,
    /// Pools sorted by name.
    pools: Vec<Pool>,
    by_name: HashMap<String, usize>,
    /// Valid auto-assign pools by (priority, name).
    auto_order: Vec<usize>,
    /// Ranges of valid pools: start -> (end, pool).
    index: BTreeMap<u128, (u128, usize)>,
    /// Nodes' own addresses.
    reserved: BTreeSet<u128>,
    // foldhash: several times faster than SipHash and still randomly seeded per map,
    // since Service names are chosen by cluster users.
    used: HashMap<u128, IpUse, RandomState>,
    /// Keys are shared with [`IpUse::holders`], so holding costs no string copies.
    services: HashMap<Arc<ServiceKey>, SvcState, RandomState>,
    /// Addresses in use per sharing key, to find a shareable one quickly.
    by_sharing_key: HashMap<String, BTreeSet<u128>>,
    /// Names of pools valid after the last rebuild: they win overlaps.
    was_valid: HashSet<String>,
}

#[derive(Debug)]
struct Pool {
    spec: PoolSpec,
    /// `spec.name`, shared with every [`AssignedIp`] handed out.
    name: Arc<str>,
    invalid: Option<String>,
    /// Sorted, merged ranges per family.
    ranges: [Vec<Range>; 2],
    free: [FreeSet; 2],
    /// Addresses that may be handed out (buggy and reserved ones removed).
    total: [u128; 2],
    assigned: [u64; 2],
    reserved: Vec<u128>,
}

#[derive(Debug)]
struct IpUse {
    pool: usize,
    sharing: Option<String>,
    policy: TrafficPolicy,
    /// Nearly always one: kept inline.
    holders: SmallVec<[Arc<ServiceKey>; 1]>,
}

/// A Service's addresses: at most one per family, kept inline.
type Ips = SmallVec<[u128; 2]>;

#[derive(Debug)]
struct SvcState {
    ips: Ips,
    ports: Vec<Port>,
}

/// The families a request wants, in order, and whether all are required.
struct Wanted {
    families: &'static [Family],
    require_all: bool,
}

// === impl Allocator: public API ===

impl Allocator {
    /// An allocator with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set of pools. Malformed or overlapping pools are reported Invalid
    /// and serve nothing; the others keep working. Assignments whose addresses are no
    /// longer in a valid pool (shrink, deletion, invalidation, avoidBuggyIPs turned
    /// on) are released and listed in [`PoolsReport::stranded`]; assignments that
    /// merely moved to another pool are kept.
    pub fn set_pools(&mut self, pools: Vec<PoolSpec>) -> PoolsReport {
        self.specs = pools;
        self.rebuild()
    }

    /// Replaces the set of reserved addresses (Nodes' own InternalIP/ExternalIP).
    /// They are never handed out; Services holding one are released and reported.
    pub fn set_reserved(&mut self, ips: impl IntoIterator<Item = IpAddr>) -> PoolsReport {
        self.reserved = ips.into_iter().filter_map(addr::key).collect();
        self.rebuild()
    }

    /// Gives `service` what `request` asks for. Idempotent: a Service that already
    /// holds acceptable addresses keeps them (so calling this on every reconcile is
    /// right). A changed request (other pool, other requested IPs, families, a new
    /// port clash) moves it. On error the Service keeps what it held.
    pub fn allocate(
        &mut self,
        service: &ServiceKey,
        request: &AllocationRequest,
    ) -> Result<Assignment, AllocError> {
        let wanted = wanted_families(request)?;
        if !request.requested_ips.is_empty() {
            let ips =
                self.check_requested(service, request, &request.requested_ips, &wanted, false)?;
            return Ok(self.commit(service, request, ips));
        }
        let candidates = self.candidates(request)?;
        let kept = self.keepable(service, request, &wanted, &candidates);
        let ips = self.choose(service, request, &wanted, &candidates, kept)?;
        Ok(self.commit(service, request, ips))
    }

    /// Records that `service` holds `ips` (seeding from Service status after a
    /// restart). The addresses must be in valid pools, not reserved, and shareable
    /// under the request's key and ports; the requested pool is not enforced, so a
    /// seeded address is never refused for a pool annotation (a later
    /// [`Allocator::allocate`] moves it if the request disagrees).
    pub fn assign(
        &mut self,
        service: &ServiceKey,
        ips: &[IpAddr],
        request: &AllocationRequest,
    ) -> Result<Assignment, AllocError> {
        let wanted = Wanted {
            families: &[Family::V4, Family::V6],
            require_all: false,
        };
        let ips = self.check_requested(service, request, ips, &wanted, true)?;
        Ok(self.commit(service, request, ips))
    }

    /// Releases everything `service` holds; the addresses are free at once (or stay
    /// with the other Services sharing them). Returns what it held.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        let held = self.assignment(service);
        if let Some(state) = self.services.remove(service) {
            for a in state.ips {
                self.unhold(a, service);
            }
        }
        held
    }

    /// What `service` holds, if anything.
    pub fn assignment(&self, service: &ServiceKey) -> Option<Assignment> {
        let state = self.services.get(service)?;
        Some(self.assignment_of(&state.ips))
    }

    /// Services holding `ip` (more than one when shared), sorted.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        let mut h: Vec<ServiceKey> = addr::key(ip)
            .and_then(|k| self.used.get(&k))
            .map(|u| u.holders.iter().map(|h| ServiceKey::clone(h)).collect())
            .unwrap_or_default();
        h.sort();
        h
    }

    /// Counts and validity of one pool.
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        self.by_name.get(name).map(|&i| self.stats(i))
    }

    /// Counts and validity of every pool, sorted by name.
    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        (0..self.pools.len()).map(|i| self.stats(i)).collect()
    }

    /// Services holding at least one address, sorted.
    pub fn services(&self) -> Vec<ServiceKey> {
        let mut s: Vec<ServiceKey> = self.services.keys().map(|k| ServiceKey::clone(k)).collect();
        s.sort();
        s
    }
}

// === impl Allocator: choosing ===

fn wanted_families(req: &AllocationRequest) -> Result<Wanted, AllocError> {
    let primary = req.ip_families.first().copied().unwrap_or(Family::V4);
    if req.ip_families.get(1) == Some(&primary) {
        return Err(AllocError::InvalidRequest {
            message: format!("ipFamilies lists {primary} twice"),
        });
    }
    let (one, both): (&'static [Family], &'static [Family]) = match primary {
        Family::V4 => (&[Family::V4], &[Family::V4, Family::V6]),
        Family::V6 => (&[Family::V6], &[Family::V6, Family::V4]),
    };
    Ok(match req.ip_family_policy {
        IpFamilyPolicy::SingleStack => Wanted {
            families: one,
            require_all: true,
        },
        IpFamilyPolicy::PreferDualStack if req.ip_families.len() == 1 => Wanted {
            families: one,
            require_all: true,
        },
        IpFamilyPolicy::PreferDualStack => Wanted {
            families: both,
            require_all: false,
        },
        IpFamilyPolicy::RequireDualStack => Wanted {
            families: both,
            require_all: true,
        },
    })
}

impl Allocator {
    /// Pools that may serve the request, best first.
    fn candidates(&self, req: &AllocationRequest) -> Result<Vec<usize>, AllocError> {
        if let Some(name) = &req.pool {
            let &i = self
                .by_name
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if let Some(message) = &self.pools[i].invalid {
                return Err(AllocError::PoolInvalid {
                    pool: name.clone(),
                    message: message.clone(),
                });
            }
            return Ok(vec![i]);
        }
        let matching: Vec<usize> = self
            .auto_order
            .iter()
            .copied()
            .filter(|&i| {
                let spec = &self.pools[i].spec;
                spec.service_selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&req.service_labels))
                    && spec
                        .namespace_selector
                        .as_ref()
                        .is_none_or(|s| s.matches(&req.namespace_labels))
            })
            .collect();
        if matching.is_empty() {
            let detail = if self.pools.iter().all(|p| p.invalid.is_some()) {
                "there is no valid IPPool".to_string()
            } else if self.auto_order.is_empty() {
                "no valid IPPool has autoAssign enabled; name one with the pool annotation"
                    .to_string()
            } else {
                "the serviceSelector or namespaceSelector of every autoAssign IPPool excludes it"
                    .to_string()
            };
            return Err(AllocError::NoMatchingPool { detail });
        }
        Ok(matching)
    }

    /// The Service's current addresses that still satisfy the request.
    fn keepable(
        &self,
        svc: &ServiceKey,
        req: &AllocationRequest,
        wanted: &Wanted,
        candidates: &[usize],
    ) -> Ips {
        let Some(state) = self.services.get(svc) else {
            return Ips::new();
        };
        state
            .ips
            .iter()
            .copied()
            .filter(|a| {
                wanted.families.contains(&addr::family(*a))
                    && (req.pool.is_none() || candidates.contains(&self.used[a].pool))
                    && self.compatible(*a, svc, req).is_ok()
            })
            .collect()
    }

    /// A shareable or free address of `family` in pool `p`, without taking it.
    fn pick(
        &self,
        svc: &ServiceKey,
        req: &AllocationRequest,
        p: usize,
        family: Family,
    ) -> Option<u128> {
        if let Some(shared) = req
            .sharing_key
            .as_ref()
            .and_then(|k| self.by_sharing_key.get(k))
        {
            let found = shared.iter().copied().find(|a| {
                addr::family(*a) == family
                    && self.used[a].pool == p
                    && self.compatible(*a, svc, req).is_ok()
            });
            if found.is_some() {
                return found;
            }
        }
        self.pools[p].free[family.index()].first()
    }

    /// Picks addresses for the wanted families, keeping `kept`. All of a Service's
    /// addresses come from one pool (as in MetalLB). Nothing is taken yet.
    fn choose(
        &self,
        svc: &ServiceKey,
        req: &AllocationRequest,
        wanted: &Wanted,
        candidates: &[usize],
        kept: Ips,
    ) -> Result<Ips, AllocError> {
        let missing = |held: &[u128]| -> SmallVec<[Family; 2]> {
            wanted
                .families
                .iter()
                .copied()
                .filter(|f| !held.iter().any(|a| addr::family(*a) == *f))
                .collect()
        };
        let from_pool = |p: usize, families: &[Family]| -> Option<Ips> {
            families
                .iter()
                .map(|f| self.pick(svc, req, p, *f))
                .collect()
        };

        // What it holds stays; the rest comes from the same pool if it can.
        if let Some(first) = kept.first() {
            let lacking = missing(&kept);
            if lacking.is_empty() {
                return Ok(kept);
            }
            if let Some(picks) = from_pool(self.used[first].pool, &lacking) {
                return Ok(kept.into_iter().chain(picks).collect());
            }
            if !wanted.require_all {
                // PreferDualStack: keep what it has rather than move.
                return Ok(kept);
            }
            // RequireDualStack: a pool with both families, below.
        }

        // Every wanted family from one pool, best pool first.
        for &p in candidates {
            if let Some(picks) = from_pool(p, wanted.families) {
                return Ok(picks);
            }
        }
        if wanted.families.len() == 2 {
            if wanted.require_all {
                return Err(AllocError::DualStackUnavailable {
                    detail: format!(
                        "no IPPool among {} has both an IPv4 and an IPv6 address available",
                        self.names(candidates)
                    ),
                });
            }
            // PreferDualStack: one family, primary first.
            for f in wanted.families {
                for &p in candidates {
                    if let Some(a) = self.pick(svc, req, p, *f) {
                        return Ok(smallvec::smallvec![a]);
                    }
                }
            }
        }
        let family = wanted.families[0];
        if candidates
            .iter()
            .all(|&p| self.pools[p].ranges[family.index()].is_empty())
        {
            return Err(AllocError::NoMatchingPool {
                detail: format!(
                    "no {family} addresses in IPPool(s) {}",
                    self.names(candidates)
                ),
            });
        }
        Err(AllocError::PoolExhausted {
            pools: candidates
                .iter()
                .map(|&p| self.pools[p].spec.name.clone())
                .collect(),
            family,
        })
    }

    /// Checks explicitly given addresses (requested, or seeded when `seeding`).
    fn check_requested(
        &self,
        svc: &ServiceKey,
        req: &AllocationRequest,
        ips: &[IpAddr],
        wanted: &Wanted,
        seeding: bool,
    ) -> Result<Ips, AllocError> {
        let explicit_pool = if seeding || req.pool.is_none() {
            None
        } else {
            Some(self.candidates(req)?[0])
        };
        let mut families: Vec<Family> = ips.iter().map(|ip| Family::of(*ip)).collect();
        families.sort();
        families.dedup();
        if families.len() != ips.len() {
            return Err(AllocError::InvalidRequest {
                message: format!(
                    "at most one address per family may be requested, got {}",
                    join(ips)
                ),
            });
        }
        if !seeding {
            if req.ip_family_policy == IpFamilyPolicy::SingleStack && ips.len() > 1 {
                return Err(AllocError::InvalidRequest {
                    message: format!(
                        "a SingleStack Service may request one address, got {}",
                        join(ips)
                    ),
                });
            }
            if wanted.require_all && wanted.families.len() == 2 && ips.len() < 2 {
                return Err(AllocError::DualStackUnavailable {
                    detail: format!(
                        "only {} requested; request one address per family",
                        join(ips)
                    ),
                });
            }
        }
        let mut out = Ips::new();
        for &ip in ips {
            let outside = |detail: String| AllocError::RequestedIpOutsidePools { ip, detail };
            let k = addr::key(ip).ok_or_else(|| outside(" (IPv4-mapped IPv6 address)".into()))?;
            if self.reserved.contains(&k) {
                return Err(AllocError::RequestedIpReserved { ip });
            }
            let Some(p) = self.pool_of(k) else {
                let detail = self
                    .pools
                    .iter()
                    .find(|p| {
                        p.invalid.is_some()
                            && p.ranges
                                .iter()
                                .flatten()
                                .any(|r| r.start <= k && k <= r.end)
                    })
                    .map(|p| format!(" (IPPool '{}' holds it but is invalid)", p.spec.name))
                    .unwrap_or_default();
                return Err(outside(detail));
            };
            let pool = &self.pools[p];
            if pool.spec.avoid_buggy_ips && Family::of(ip) == Family::V4 && is_buggy(k) {
                return Err(outside(format!(
                    " (IPPool '{}' avoids .0 and .255 addresses)",
                    pool.spec.name
                )));
            }
            if let Some(e) = explicit_pool.filter(|e| *e != p) {
                return Err(AllocError::RequestedIpWrongPool {
                    ip,
                    actual: pool.spec.name.clone(),
                    requested: self.pools[e].spec.name.clone(),
                });
            }
            if let Err((holder, why)) = self.compatible(k, svc, req) {
                return Err(AllocError::RequestedIpTaken { ip, holder, why });
            }
            out.push(k);
        }
        Ok(out)
    }

    /// Whether `svc` may hold `a` next to its other holders (MetalLB's rules).
    fn compatible(
        &self,
        a: u128,
        svc: &ServiceKey,
        req: &AllocationRequest,
    ) -> Result<(), (ServiceKey, String)> {
        let Some(u) = self.used.get(&a) else {
            return Ok(());
        };
        let mut others = u.holders.iter().filter(|h| ***h != *svc).peekable();
        let Some(first) = others.peek().copied() else {
            return Ok(());
        };
        let (Some(theirs), Some(ours)) = (&u.sharing, &req.sharing_key) else {
            let why = if u.sharing.is_none() {
                "it does not allow sharing"
            } else {
                "this Service has no sharing key"
            };
            return Err((ServiceKey::clone(first), why.to_string()));
        };
        if theirs != ours {
            return Err((
                ServiceKey::clone(first),
                format!("sharing key '{ours}' differs from its key '{theirs}'"),
            ));
        }
        if u.policy != req.traffic_policy {
            let why = match (&u.policy, &req.traffic_policy) {
                (TrafficPolicy::Local { .. }, TrafficPolicy::Local { .. }) => {
                    "both use externalTrafficPolicy Local but select different pods"
                }
                _ => "externalTrafficPolicy Local and Cluster cannot share an address",
            };
            return Err((ServiceKey::clone(first), why.to_string()));
        }
        for other in others {
            if let Some(port) = self.services[other]
                .ports
                .iter()
                .find(|p| req.ports.contains(p))
            {
                return Err((
                    ServiceKey::clone(other),
                    format!("port {port} is used by both"),
                ));
            }
        }
        Ok(())
    }

    fn names(&self, pools: &[usize]) -> String {
        pools
            .iter()
            .map(|&p| format!("'{}'", self.pools[p].spec.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn pool_of(&self, k: u128) -> Option<usize> {
        lookup(&self.index, k)
    }
}

fn lookup(index: &BTreeMap<u128, (u128, usize)>, k: u128) -> Option<usize> {
    index
        .range(..=k)
        .next_back()
        .filter(|(_, (end, _))| *end >= k)
        .map(|(_, (_, p))| *p)
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// === impl Allocator: bookkeeping ===

impl Allocator {
    /// Makes `svc` hold exactly `ips` (already checked), releasing what it no longer holds.
    fn commit(&mut self, svc: &ServiceKey, req: &AllocationRequest, mut ips: Ips) -> Assignment {
        // Primary family first, whatever order the addresses were found in.
        let primary = req.ip_families.first().copied().unwrap_or(Family::V4);
        ips.sort_by_key(|a| addr::family(*a) != primary);

        // Reconciling an unchanged Service is the common case: touch nothing.
        let existing = match self.services.get_key_value(svc) {
            Some((key, state)) => {
                let unchanged = state.ips == ips
                    && state.ports == req.ports
                    && ips.iter().all(|a| {
                        let u = &self.used[a];
                        u.sharing == req.sharing_key && u.policy == req.traffic_policy
                    });
                if unchanged {
                    return self.assignment_of(&ips);
                }
                Some((Arc::clone(key), state.ips.clone()))
            }
            None => None,
        };
        let key = existing
            .as_ref()
            .map_or_else(|| Arc::new(svc.clone()), |(k, _)| Arc::clone(k));
        if let Some((_, old)) = &existing {
            for a in old.iter().filter(|a| !ips.contains(a)) {
                self.unhold(*a, svc);
            }
        }
        for &a in &ips {
            self.hold(a, &key, req);
        }
        let assignment = self.assignment_of(&ips);
        let ports = req.ports.clone();
        match (existing, ips.is_empty()) {
            (Some(_), true) => {
                self.services.remove(svc);
            }
            (Some(_), false) => {
                let state = self.services.get_mut(svc).expect("present");
                state.ips = ips;
                state.ports = ports;
            }
            (None, true) => {}
            (None, false) => {
                self.services.insert(key, SvcState { ips, ports });
            }
        }
        assignment
    }

    fn assignment_of(&self, ips: &[u128]) -> Assignment {
        Assignment {
            ips: ips
                .iter()
                .map(|a| AssignedIp {
                    ip: addr::ip(*a),
                    pool: Arc::clone(&self.pools[self.used[a].pool].name),
                })
                .collect(),
        }
    }

    fn hold(&mut self, a: u128, svc: &Arc<ServiceKey>, req: &AllocationRequest) {
        let family = addr::family(a);
        let old_key = match self.used.get_mut(&a) {
            Some(u) => {
                if !u.holders.contains(svc) {
                    u.holders.push(Arc::clone(svc));
                }
                // Compatible by now: either the same key, or svc is the only holder
                // changing its own key.
                if u.policy != req.traffic_policy {
                    u.policy = req.traffic_policy.clone();
                }
                if u.sharing == req.sharing_key {
                    return;
                }
                std::mem::replace(&mut u.sharing, req.sharing_key.clone())
            }
            None => {
                let p = self
                    .pool_of(a)
                    .expect("checked addresses lie in a valid pool");
                let pool = &mut self.pools[p];
                let took = pool.free[family.index()].take(a);
                debug_assert!(took, "address {} was not free", addr::ip(a));
                pool.assigned[family.index()] += 1;
                self.used.insert(
                    a,
                    IpUse {
                        pool: p,
                        sharing: req.sharing_key.clone(),
                        policy: req.traffic_policy.clone(),
                        holders: smallvec::smallvec![Arc::clone(svc)],
                    },
                );
                None
            }
        };
        if old_key != req.sharing_key {
            if let Some(k) = old_key {
                self.unindex(&k, a);
            }
            if let Some(k) = &req.sharing_key {
                self.by_sharing_key.entry(k.clone()).or_default().insert(a);
            }
        }
    }

    fn unhold(&mut self, a: u128, svc: &ServiceKey) {
        let Some(u) = self.used.get_mut(&a) else {
            return;
        };
        u.holders.retain(|h| **h != *svc);
        if !u.holders.is_empty() {
            return;
        }
        let u = self.used.remove(&a).expect("present");
        let family = addr::family(a).index();
        let pool = &mut self.pools[u.pool];
        pool.free[family].give(a);
        pool.assigned[family] -= 1;
        if let Some(k) = u.sharing {
            self.unindex(&k, a);
        }
    }

    fn unindex(&mut self, key: &str, a: u128) {
        if let Some(set) = self.by_sharing_key.get_mut(key) {
            set.remove(&a);
            if set.is_empty() {
                self.by_sharing_key.remove(key);
            }
        }
    }

    fn stats(&self, i: usize) -> PoolStats {
        let p = &self.pools[i];
        PoolStats {
            name: p.spec.name.clone(),
            invalid: p.invalid.clone(),
            total: p.total,
            assigned: p.assigned,
            available: [0, 1].map(|f| p.total[f] - u128::from(p.assigned[f])),
            reserved: p.reserved.iter().map(|a| addr::ip(*a)).collect(),
        }
    }

    /// Rebuilds pools from `self.specs` and `self.reserved`, re-homes every held
    /// address and releases those that no longer fit. O(pools' entries + held
    /// addresses × log).
    fn rebuild(&mut self) -> PoolsReport {
        let mut specs = self.specs.clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        // Names are unique in Kubernetes; should a caller pass one twice, the first wins.
        specs.dedup_by(|later, first| later.name == first.name);
        let mut pools: Vec<Pool> = specs.into_iter().map(Pool::parse).collect();

        // Overlaps: pools valid before win, then older, then by name.
        let mut order: Vec<usize> = (0..pools.len())
            .filter(|&i| pools[i].invalid.is_none())
            .collect();
        order.sort_by_key(|&i| {
            let s = &pools[i].spec;
            (
                !self.was_valid.contains(&s.name),
                s.created.unwrap_or(i64::MAX),
                s.name.clone(),
            )
        });
        let mut index: BTreeMap<u128, (u128, usize)> = BTreeMap::new();
        for i in order {
            let clash = pools[i].ranges.iter().flatten().find_map(|r| {
                index
                    .range(..=r.end)
                    .next_back()
                    .filter(|(_, (end, _))| *end >= r.start)
                    .map(|(s, (e, other))| (*r, Range { start: *s, end: *e }, *other))
            });
            match clash {
                Some((mine, theirs, other)) => {
                    pools[i].invalid = Some(format!(
                        "{} overlaps {} of IPPool '{}'",
                        show(mine),
                        show(theirs),
                        pools[other].spec.name
                    ));
                }
                None => {
                    for r in pools[i].ranges.iter().flatten() {
                        index.insert(r.start, (r.end, i));
                    }
                }
            }
        }

        // Free space and totals; reserved addresses come out.
        for (i, pool) in pools.iter_mut().enumerate() {
            if pool.invalid.is_some() {
                pool.ranges.iter_mut().for_each(Vec::clear);
                continue;
            }
            let avoid = pool.spec.avoid_buggy_ips;
            for f in [Family::V4, Family::V6] {
                let fi = f.index();
                pool.free[fi] = FreeSet::new(&pool.ranges[fi], avoid && f == Family::V4);
                pool.total[fi] = pool.ranges[fi].iter().map(|r| r.allocatable(avoid)).sum();
            }
            for &r in &self.reserved {
                if lookup(&index, r) == Some(i) && pool.free[addr::family(r).index()].take(r) {
                    pool.reserved.push(r);
                    pool.total[addr::family(r).index()] -= 1;
                }
            }
        }

        // Re-home held addresses.
        let mut stranded: Vec<(u128, String)> = Vec::new();
        for (&a, u) in self.used.iter_mut() {
            let fi = addr::family(a).index();
            match lookup(&index, a) {
                Some(p) if !self.reserved.contains(&a) && pools[p].free[fi].take(a) => {
                    pools[p].assigned[fi] += 1;
                    u.pool = p;
                }
                found => {
                    let why = if self.reserved.contains(&a) {
                        "it is now a Node's own address".to_string()
                    } else if let Some(p) = found {
                        format!(
                            "IPPool '{}' now avoids .0 and .255 addresses",
                            pools[p].spec.name
                        )
                    } else if let Some(p) = self.pools.get(u.pool).filter(|old| {
                        pools
                            .iter()
                            .any(|n| n.spec.name == old.spec.name && n.invalid.is_some())
                    }) {
                        let name = &p.spec.name;
                        let msg = pools
                            .iter()
                            .find(|n| &n.spec.name == name)
                            .and_then(|n| n.invalid.clone());
                        format!("IPPool '{name}' is invalid: {}", msg.unwrap_or_default())
                    } else {
                        "it is no longer in any IPPool".to_string()
                    };
                    stranded.push((a, why));
                }
            }
        }
        let mut lost: BTreeMap<ServiceKey, (Vec<IpAddr>, Vec<String>)> = BTreeMap::new();
        for (a, why) in stranded {
            let u = self.used.remove(&a).expect("present");
            if let Some(k) = &u.sharing {
                self.unindex(k, a);
            }
            for h in u.holders {
                if let Some(state) = self.services.get_mut(&h) {
                    state.ips.retain(|x| *x != a);
                    if state.ips.is_empty() {
                        self.services.remove(&h);
                    }
                }
                let entry = lost.entry(ServiceKey::clone(&h)).or_default();
                entry.0.push(addr::ip(a));
                entry.1.push(format!("{} released: {why}", addr::ip(a)));
            }
        }

        self.by_name = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.spec.name.clone(), i))
            .collect();
        self.auto_order = (0..pools.len())
            .filter(|&i| pools[i].invalid.is_none() && pools[i].spec.auto_assign)
            .collect();
        self.auto_order.sort_by(|&a, &b| {
            (pools[a].spec.priority, &pools[a].spec.name)
                .cmp(&(pools[b].spec.priority, &pools[b].spec.name))
        });
        self.was_valid = pools
            .iter()
            .filter(|p| p.invalid.is_none())
            .map(|p| p.spec.name.clone())
            .collect();
        self.index = index;
        self.pools = pools;

        PoolsReport {
            pools: self
                .pools
                .iter()
                .map(|p| (p.spec.name.clone(), p.invalid.clone().map_or(Ok(()), Err)))
                .collect(),
            stranded: lost
                .into_iter()
                .map(|(service, (mut released, reasons))| {
                    released.sort();
                    Stranded {
                        service,
                        released,
                        reason: reasons.join("; "),
                    }
                })
                .collect(),
        }
    }
}

fn show(r: Range) -> String {
    if r.start == r.end {
        addr::ip(r.start).to_string()
    } else {
        format!("{}-{}", addr::ip(r.start), addr::ip(r.end))
    }
}

impl Pool {
    /// Parses a spec; problems make the pool Invalid with a message.
    fn parse(spec: PoolSpec) -> Pool {
        let mut pool = Pool {
            name: Arc::from(spec.name.as_str()),
            spec,
            invalid: None,
            ranges: [Vec::new(), Vec::new()],
            free: [FreeSet::default(), FreeSet::default()],
            total: [0, 0],
            assigned: [0, 0],
            reserved: Vec::new(),
        };
        if let Err(message) = pool.parse_ranges() {
            pool.invalid = Some(message);
            pool.ranges.iter_mut().for_each(Vec::clear);
        }
        pool
    }

    fn parse_ranges(&mut self) -> Result<(), String> {
        if self.spec.addresses.is_empty() {
            return Err("addresses is empty".into());
        }
        for (what, sel) in [
            ("serviceSelector", &self.spec.service_selector),
            ("namespaceSelector", &self.spec.namespace_selector),
        ] {
            if let Some(Err(e)) = sel.as_ref().map(|s| s.validate()) {
                return Err(format!("{what}: {e}"));
            }
        }
        for entry in &self.spec.addresses {
            let r =
                parse_entry(entry).map_err(|e| format!("address entry '{}': {e}", entry.trim()))?;
            self.ranges[r.family().index()].push(r);
        }
        // Entries of one pool may overlap or touch: merge them.
        for ranges in &mut self.ranges {
            ranges.sort();
            let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
            for r in ranges.drain(..) {
                match merged.last_mut() {
                    Some(last) if r.start <= last.end.saturating_add(1) => {
                        last.end = last.end.max(r.end)
                    }
                    _ => merged.push(r),
                }
            }
            *ranges = merged;
        }
        Ok(())
    }
}

// === invariants, for tests ===

#[cfg(test)]
impl Allocator {
    /// Panics unless the internal indexes agree with each other.
    pub(crate) fn check_invariants(&self) {
        let mut counted = vec![[0u64; 2]; self.pools.len()];
        for (&a, u) in &self.used {
            let f = addr::family(a).index();
            let pool = &self.pools[u.pool];
            assert!(
                pool.invalid.is_none(),
                "{} held in invalid pool",
                addr::ip(a)
            );
            assert_eq!(
                self.pool_of(a),
                Some(u.pool),
                "{} indexed in its pool",
                addr::ip(a)
            );
            assert!(!pool.free[f].contains(a), "{} held and free", addr::ip(a));
            assert!(
                !self.reserved.contains(&a),
                "{} held and reserved",
                addr::ip(a)
            );
            assert!(
                !(pool.spec.avoid_buggy_ips && f == 0 && is_buggy(a)),
                "{} is buggy",
                addr::ip(a)
            );
            assert!(!u.holders.is_empty());
            counted[u.pool][f] += 1;
            for (i, h) in u.holders.iter().enumerate() {
                assert!(
                    self.services[h].ips.contains(&a),
                    "{h} holds {}",
                    addr::ip(a)
                );
                for other in &u.holders[i + 1..] {
                    assert!(u.sharing.is_some(), "{} shared without a key", addr::ip(a));
                    let (mine, theirs) = (&self.services[h].ports, &self.services[other].ports);
                    assert!(
                        mine.iter().all(|p| !theirs.contains(p)),
                        "{h} and {other} clash on {}",
                        addr::ip(a)
                    );
                }
            }
            if let Some(k) = &u.sharing {
                assert!(self.by_sharing_key[k].contains(&a));
            }
        }
        for (svc, state) in &self.services {
            assert!(!state.ips.is_empty());
            let mut fams: Vec<Family> = state.ips.iter().map(|a| addr::family(*a)).collect();
            fams.sort();
            fams.dedup();
            assert_eq!(fams.len(), state.ips.len(), "{svc} holds two of one family");
            for a in &state.ips {
                assert!(self.used[a].holders.contains(svc));
            }
        }
        for (k, set) in &self.by_sharing_key {
            for a in set {
                assert_eq!(self.used[a].sharing.as_ref(), Some(k));
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            assert_eq!(
                p.assigned, counted[i],
                "assigned counts of '{}'",
                p.spec.name
            );
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
