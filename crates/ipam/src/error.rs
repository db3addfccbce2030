//! Why an allocation failed, for the Service's condition and Events.

use std::net::IpAddr;

use crate::{Family, ServiceKey};

/// An allocation failure. [`AllocError::reason`] is a stable CamelCase word for
/// conditions and metrics; `Display` is the human message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Every candidate pool is full for a family.
    #[error("no {family} address left in pool(s) {}", pools.join(", "))]
    PoolExhausted {
        /// Pools tried, in order.
        pools: Vec<String>,
        /// Family that ran out.
        family: Family,
    },
    /// No pool may serve this Service (none matches its selectors, or none auto-assigns).
    #[error("no IPPool matches this Service: {detail}")]
    NoMatchingPool {
        /// Details.
        detail: String,
    },
    /// The explicitly requested pool does not exist.
    #[error("IPPool '{pool}' does not exist")]
    UnknownPool {
        /// Pool name.
        pool: String,
    },
    /// The explicitly requested pool is Invalid.
    #[error("IPPool '{pool}' is invalid: {message}")]
    PoolInvalid {
        /// Pool name.
        pool: String,
        /// Why.
        message: String,
    },
    /// A requested address is in no (valid) pool.
    #[error("requested IP {ip} is not in any IPPool{detail}")]
    RequestedIpOutsidePools {
        /// The address.
        ip: IpAddr,
        /// Extra detail (may be empty).
        detail: String,
    },
    /// A requested address is held by another Service and cannot be shared.
    #[error("requested IP {ip} is already used by {holder}: {why}")]
    RequestedIpTaken {
        /// The address.
        ip: IpAddr,
        /// One Service holding it.
        holder: ServiceKey,
        /// Why sharing is impossible.
        why: String,
    },
    /// A requested address is in another pool than the one requested.
    #[error(
        "requested IP {ip} is in IPPool '{actual}', not in the requested IPPool '{requested}'"
    )]
    RequestedIpWrongPool {
        /// The address.
        ip: IpAddr,
        /// Its pool.
        actual: String,
        /// The pool asked for.
        requested: String,
    },
    /// A requested address is a Node's own address.
    #[error("requested IP {ip} is a Node's own address")]
    RequestedIpReserved {
        /// The address.
        ip: IpAddr,
    },
    /// RequireDualStack could not get both families.
    #[error("RequireDualStack: {detail}")]
    DualStackUnavailable {
        /// Details.
        detail: String,
    },
    /// The request contradicts itself (two IPv4 addresses requested, ...).
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// Details.
        message: String,
    },
}

impl AllocError {
    /// Stable machine-readable reason (condition reason, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::PoolExhausted { .. } => "PoolExhausted",
            AllocError::NoMatchingPool { .. } => "NoMatchingPool",
            AllocError::UnknownPool { .. } => "UnknownPool",
            AllocError::PoolInvalid { .. } => "PoolInvalid",
            AllocError::RequestedIpOutsidePools { .. } => "RequestedIPOutsidePools",
            AllocError::RequestedIpTaken { .. } => "RequestedIPTaken",
            AllocError::RequestedIpWrongPool { .. } => "RequestedIPWrongPool",
            AllocError::RequestedIpReserved { .. } => "RequestedIPReserved",
            AllocError::DualStackUnavailable { .. } => "DualStackUnavailable",
            AllocError::InvalidRequest { .. } => "InvalidRequest",
        }
    }
}
