//! IronLB's IP address allocator: a pure data structure with no Kubernetes types.
//!
//! The controller describes pools ([`PoolSpec`]) and, per Service, what it asks for
//! ([`AllocationRequest`]); the [`Allocator`] answers with an [`Assignment`] or an
//! [`AllocError`] that carries a machine-readable [`AllocError::reason`].
//!
//! - IPv4 and IPv6, CIDRs and `a-b` ranges; allocation is O(log n) and memory is
//!   O(addresses in use + pool entries), so an IPv6 /64 costs what a /30 costs.
//! - Requested IPs, pool choice by name or by selectors (priority, then name),
//!   `autoAssign: false` pools only on explicit request, `avoidBuggyIPs`.
//! - Sharing keys with MetalLB's rules: same key, same pool, no port clash, same
//!   backend (Services with `externalTrafficPolicy: Local` share only with Local
//!   Services selecting the same pods).
//! - SingleStack / PreferDualStack / RequireDualStack (never half a RequireDualStack).
//! - Nodes' own addresses are reserved and never handed out.
//! - Restart safety: [`Allocator::assign`] records existing IPs exactly as they are;
//!   [`Allocator::set_pools`] and [`Allocator::set_reserved`] release and report the
//!   assignments a change strands, so the caller can allocate again and say so.
//!
//! ## Using it from a controller
//!
//! 1. On start, once the Service, IPPool, Namespace and Node stores are ready:
//!    [`Allocator::set_pools`] (all IPPools), [`Allocator::set_reserved`] (Nodes'
//!    addresses), then [`Allocator::assign`] for every Service with addresses in its
//!    `status.loadBalancer.ingress`. Only then allocate anything new.
//! 2. Per Service reconcile: build an [`AllocationRequest`] from the Service and its
//!    Namespace and call [`Allocator::allocate`]: unchanged Services get the same
//!    answer without any change inside; errors carry [`AllocError::reason`] for the
//!    `ironlb.io/ip-allocated` condition. A Service that stops being ours:
//!    [`Allocator::release`].
//! 3. IPPool or Node change: [`Allocator::set_pools`] / [`Allocator::set_reserved`];
//!    re-reconcile every Service in [`PoolsReport::stranded`] (their lost addresses
//!    are already released) with a Warning Event carrying [`Stranded::reason`], and
//!    write every pool's status from [`Allocator::pool_stats`].
//!
//! Without an explicit pool, an address a Service holds is kept even if its pool's
//! selectors or `autoAssign` changed since: addresses never move without need.
//!
//! Typical reconciler use:
//!
//! ```
//! use ironlb_ipam::{Allocator, AllocationRequest, PoolSpec, ServiceKey};
//!
//! let mut alloc = Allocator::new();
//! let report = alloc.set_pools(vec![PoolSpec::new("lan", ["192.0.2.0/24", "2001:db8::/64"])]);
//! assert!(report.pools["lan"].is_ok());
//!
//! let web = ServiceKey::new("default", "web");
//! let got = alloc.allocate(&web, &AllocationRequest::default()).unwrap();
//! assert_eq!(got.ips(), ["192.0.2.0".parse::<std::net::IpAddr>().unwrap()]);
//! // Reconciling again is idempotent.
//! assert_eq!(alloc.allocate(&web, &AllocationRequest::default()).unwrap(), got);
//! ```

mod addr;
mod allocator;
mod error;
mod freeset;
mod selector;
mod types;

pub use allocator::Allocator;
pub use error::AllocError;
pub use selector::{LabelSelector, Labels, SelectorRequirement};
pub use types::{
    parse_ip_list, AllocationRequest, AssignedIp, Assignment, Family, IpFamilyPolicy, PoolSpec,
    PoolStats, PoolsReport, Port, Protocol, ServiceKey, Stranded, TrafficPolicy,
};
