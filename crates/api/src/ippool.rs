//! `IPPool`: a set of addresses the controller may hand to LoadBalancer Services.

// Every `printcolumn(...)` repeats `type_ = ...`; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// CEL rule checking every `addresses` entry with the Kubernetes IP/CIDR library:
/// `a-b` is a range of two IPs of the same family, `x/n` a CIDR, anything else one IP.
/// The controller re-checks everything (start <= end, overlaps) and reports in status.
pub const ADDRESSES_CEL_RULE: &str = "self.all(a, a.contains('-') ? \
(a.split('-').size() == 2 && isIP(a.split('-')[0].trim()) && isIP(a.split('-')[1].trim()) \
&& ip(a.split('-')[0].trim()).family() == ip(a.split('-')[1].trim()).family()) \
: (a.contains('/') ? isCIDR(a.trim()) : isIP(a.trim())))";

/// Structural fallback for apiservers or tools that do not evaluate CEL: only the
/// characters and shape of an IP, a CIDR or a range. Hex digits, dots and colons.
pub const ADDRESS_PATTERN: &str =
    r"^\s*[0-9A-Fa-f:.]+(\s*/\s*[0-9]{1,3}|\s*-\s*[0-9A-Fa-f:.]+)?\s*$";

/// Desired state of an [`IPPool`].
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ironlb.io",
    version = "v1alpha1",
    kind = "IPPool",
    plural = "ippools",
    singular = "ippool",
    shortname = "ipp",
    category = "ironlb",
    status = "IPPoolStatus",
    doc = "A set of addresses (CIDRs and ranges, IPv4 and IPv6) that IronLB hands to LoadBalancer Services.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Assigned v4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Assigned v6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Available v4",
        type_ = "string",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Available v6",
        type_ = "string",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// Addresses of the pool: CIDRs (`192.0.2.0/24`, `2001:db8::/64`), ranges
    /// (`192.0.2.10-192.0.2.20`) or single IPs. IPv4 and IPv6 may be mixed.
    #[schemars(length(min = 1, max = 256), inner(length(min = 1, max = 100), regex(pattern = ADDRESS_PATTERN)))]
    #[x_kube(
        validation = Rule::new("size(self) > 0").message("addresses must list at least one CIDR or range"),
        validation = Rule::new(ADDRESSES_CEL_RULE).message("each address must be a CIDR (192.0.2.0/24), a range of two IPs of the same family (192.0.2.10-192.0.2.20) or a single IP")
    )]
    pub addresses: Vec<String>,

    /// Whether Services without an explicit pool may get addresses from this pool.
    /// When false, only Services naming the pool (annotation) or one of its IPs get one.
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Skip addresses ending in .0 and .255 (IPv4), which some old equipment
    /// mistakes for network or broadcast addresses.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// Only Services matching this selector get addresses from this pool automatically.
    /// Empty or absent: every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,

    /// Only Services in Namespaces matching this selector get addresses from this pool
    /// automatically. Empty or absent: every Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Pools are tried in ascending priority, then by name. Default 0.
    #[serde(default)]
    pub priority: i32,
}

fn default_true() -> bool {
    true
}

/// Observed state of an [`IPPool`], written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// `Ready` (True when the pool is usable) and `Invalid` (True with a message when
    /// an entry is malformed or the pool overlaps another one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// IPv4 addresses of this pool currently assigned to Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,

    /// IPv6 addresses of this pool currently assigned to Services.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,

    /// IPv4 addresses still available, in decimal.
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: String,

    /// IPv6 addresses still available, in decimal (exact; an IPv6 /64 holds
    /// 18446744073709551616 addresses, more than an integer field can carry).
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: String,

    /// Addresses of the pool that are Nodes' own InternalIP/ExternalIP and are
    /// therefore never handed out.
    #[serde(
        default,
        rename = "excludedNodeIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_node_ips: Vec<String>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests;
