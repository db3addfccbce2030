//! `L2Announcement`: which pools' addresses are announced on the LAN (ARP / NDP),
//! from which nodes and on which interfaces.

// Every `printcolumn(...)` repeats `type_ = ...`; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an [`L2Announcement`]. An address is announced when its pool is
/// selected (by name in `ipPools` or by `ipPoolSelectors`; both empty = every pool),
/// from nodes matching `nodeSelectors` (empty = every node).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ironlb.io",
    version = "v1alpha1",
    kind = "L2Announcement",
    plural = "l2announcements",
    singular = "l2announcement",
    shortname = "l2a",
    category = "ironlb",
    status = "L2AnnouncementStatus",
    doc = "Announces the addresses of selected IPPools on the LAN (ARP for IPv4, NDP for IPv6) from selected nodes.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipPools"),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementSpec {
    /// Names of IPPools whose addresses are announced.
    #[serde(default, rename = "ipPools", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub ip_pools: Vec<String>,

    /// IPPools whose labels match any of these selectors are announced too.
    #[serde(
        default,
        rename = "ipPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_pool_selectors: Vec<LabelSelector>,

    /// Nodes matching any of these selectors may announce. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Interface names or glob patterns (`eth*`, `en?s0`) to announce on. Empty: the
    /// interface whose subnet holds the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 64), regex(pattern = r"^[^\s/]+$"))
    )]
    #[x_kube(validation = Rule::new("self.all(i, !i.contains('/') && i != '.' && i != '..')").message("interfaces are names or glob patterns without '/'"))]
    pub interfaces: Vec<String>,
}

/// Observed state of an [`L2Announcement`].
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementStatus {
    /// Conditions written by the speakers (e.g. `Ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
