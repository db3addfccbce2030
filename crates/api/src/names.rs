//! Every well-known name IronLB reads or writes: annotations, labels, classes,
//! condition types, reasons and field managers. Use these constants, never literals,
//! so that a typo is a compile error rather than a silently ignored annotation.

// === Service annotations ===

/// Service annotation: name of the IPPool to allocate from.
pub const ANNOTATION_POOL: &str = "ironlb.io/pool";
/// Service annotation: comma-separated list of requested IPs (at most one per family).
pub const ANNOTATION_IPS: &str = "ironlb.io/ips";
/// Service annotation: sharing key; Services with the same key may share an IP.
pub const ANNOTATION_ALLOW_SHARED_IP: &str = "ironlb.io/allow-shared-ip";

/// MetalLB (legacy group) equivalent of [`ANNOTATION_POOL`].
pub const METALLB_LEGACY_ANNOTATION_POOL: &str = "metallb.universe.tf/address-pool";
/// MetalLB (legacy group) equivalent of [`ANNOTATION_IPS`].
pub const METALLB_LEGACY_ANNOTATION_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
/// MetalLB (legacy group) equivalent of [`ANNOTATION_ALLOW_SHARED_IP`].
pub const METALLB_LEGACY_ANNOTATION_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";

/// MetalLB equivalent of [`ANNOTATION_POOL`].
pub const METALLB_ANNOTATION_POOL: &str = "metallb.io/address-pool";
/// MetalLB equivalent of [`ANNOTATION_IPS`].
pub const METALLB_ANNOTATION_IPS: &str = "metallb.io/loadBalancerIPs";
/// MetalLB equivalent of [`ANNOTATION_ALLOW_SHARED_IP`].
pub const METALLB_ANNOTATION_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";

/// Pool annotations in order of precedence: IronLB's own first, then MetalLB's.
pub const POOL_ANNOTATIONS: [&str; 3] = [
    ANNOTATION_POOL,
    METALLB_ANNOTATION_POOL,
    METALLB_LEGACY_ANNOTATION_POOL,
];
/// Requested-IP annotations in order of precedence: IronLB's own first, then MetalLB's.
pub const IPS_ANNOTATIONS: [&str; 3] = [
    ANNOTATION_IPS,
    METALLB_ANNOTATION_IPS,
    METALLB_LEGACY_ANNOTATION_IPS,
];
/// Sharing-key annotations in order of precedence: IronLB's own first, then MetalLB's.
pub const ALLOW_SHARED_IP_ANNOTATIONS: [&str; 3] = [
    ANNOTATION_ALLOW_SHARED_IP,
    METALLB_ANNOTATION_ALLOW_SHARED_IP,
    METALLB_LEGACY_ANNOTATION_ALLOW_SHARED_IP,
];

// === Classes ===

/// `spec.loadBalancerClass` of Services IronLB serves (besides those with no class).
pub const LOAD_BALANCER_CLASS: &str = "ironlb.io/lb";
/// `spec.controller` of the IngressClass served by the ingress gateway.
pub const INGRESS_CONTROLLER: &str = "ironlb.io/ingress-gateway";

// === Labels ===

/// Node label: a node carrying it never announces load-balancer IPs.
pub const LABEL_EXCLUDE_FROM_EXTERNAL_LB: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

// === Service status conditions ===

/// Service condition: an IP was (True) or could not be (False) allocated.
pub const CONDITION_IP_ALLOCATED: &str = "ironlb.io/ip-allocated";
/// Service condition: the Service's IPs are (True) or are not (False) announced on the LAN.
pub const CONDITION_ANNOUNCED: &str = "ironlb.io/announced";

// === IPPool status conditions ===

/// IPPool condition: the pool parsed, does not overlap another pool, and is in use.
pub const POOL_CONDITION_READY: &str = "Ready";
/// IPPool condition: the pool is unusable (malformed entry, overlap); the message says why.
pub const POOL_CONDITION_INVALID: &str = "Invalid";

// === Field managers (server-side apply) ===

/// Field manager of the controller (Service `status.loadBalancer`, IPPool status).
pub const FIELD_MANAGER_CONTROLLER: &str = "ironlb-controller";
/// Field manager of the speaker (Service condition `ironlb.io/announced`).
pub const FIELD_MANAGER_SPEAKER: &str = "ironlb-speaker";
/// Field manager of the ingress gateway (Ingress `status.loadBalancer`).
pub const FIELD_MANAGER_GATEWAY: &str = "ironlb-gateway";

// === Finalizers ===

/// Finalizer the controller may put on Services whose IP it must release.
pub const FINALIZER_SERVICE: &str = "ironlb.io/service";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_lists_start_with_ironlb_names() {
        assert_eq!(POOL_ANNOTATIONS[0], ANNOTATION_POOL);
        assert_eq!(IPS_ANNOTATIONS[0], ANNOTATION_IPS);
        assert_eq!(ALLOW_SHARED_IP_ANNOTATIONS[0], ANNOTATION_ALLOW_SHARED_IP);
    }

    #[test]
    fn every_metallb_name_keeps_its_suffix() {
        for list in [
            POOL_ANNOTATIONS,
            IPS_ANNOTATIONS,
            ALLOW_SHARED_IP_ANNOTATIONS,
        ] {
            let suffix = list[0].split_once('/').unwrap().1;
            let suffix = match suffix {
                "pool" => "address-pool",
                "ips" => "loadBalancerIPs",
                other => other,
            };
            assert!(list[1..].iter().all(|n| n.ends_with(suffix)), "{list:?}");
        }
    }
}
