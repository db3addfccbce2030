//! Pure: what a Service asks of the allocator, and whether it is ours at all.
//!
//! No client, no I/O: a Service (and its Namespace's labels) in, an
//! [`AllocationRequest`] or a [`BadAnnotation`] out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_api::names::{
    ALLOW_SHARED_IP_ANNOTATIONS, IPS_ANNOTATIONS, LOAD_BALANCER_CLASS, POOL_ANNOTATIONS,
};
use ironlb_ipam::{
    parse_ip_list, AllocationRequest, Family, IpFamilyPolicy, Labels, Port, Protocol, TrafficPolicy,
};
use k8s_openapi::api::core::v1::Service;

/// Which Services this controller serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassPolicy {
    /// The loadBalancerClass served (`ironlb.io/lb` by default).
    pub class: String,
    /// Serve only Services that name `class` explicitly, not those without a class.
    pub only_explicit: bool,
}

impl Default for ClassPolicy {
    fn default() -> Self {
        ClassPolicy {
            class: LOAD_BALANCER_CLASS.to_string(),
            only_explicit: false,
        }
    }
}

impl ClassPolicy {
    /// Whether `svc` is ours: type LoadBalancer and a class we serve.
    pub fn serves(&self, svc: &Service) -> bool {
        let Some(spec) = svc.spec.as_ref() else {
            return false;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return false;
        }
        match spec.load_balancer_class.as_deref() {
            None | Some("") => !self.only_explicit,
            Some(c) => c == self.class,
        }
    }
}

/// An annotation (or `spec.loadBalancerIP`) whose value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAnnotation {
    /// The annotation's name, or `spec.loadBalancerIP`.
    pub name: String,
    /// Why, naming the bad entry.
    pub message: String,
}

impl std::fmt::Display for BadAnnotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// The first annotation of `names` (in precedence order) present on `svc`.
fn first_annotation<'a>(
    svc: &'a Service,
    names: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    let annotations = svc.metadata.annotations.as_ref()?;
    names.iter().find_map(|n| {
        annotations
            .get(*n)
            .map(|v| (*n, v.trim()))
            .filter(|(_, v)| !v.is_empty())
    })
}

/// The addresses `svc` asks for: the first requested-IPs annotation present, else the
/// deprecated `spec.loadBalancerIP`.
pub fn requested_ips(svc: &Service) -> Result<Vec<IpAddr>, BadAnnotation> {
    if let Some((name, value)) = first_annotation(svc, &IPS_ANNOTATIONS) {
        return parse_ip_list(value).map_err(|message| BadAnnotation {
            name: name.to_string(),
            message,
        });
    }
    let lb_ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .map(str::trim)
        .unwrap_or("");
    if lb_ip.is_empty() {
        return Ok(Vec::new());
    }
    lb_ip.parse().map(|ip| vec![ip]).map_err(|_| BadAnnotation {
        name: "spec.loadBalancerIP".to_string(),
        message: format!("'{lb_ip}' is not an IP address"),
    })
}

/// The allocator's request for `svc` in a Namespace labelled `namespace_labels`.
pub fn allocation_request(
    svc: &Service,
    namespace_labels: &Labels,
) -> Result<AllocationRequest, BadAnnotation> {
    let requested = requested_ips(svc)?;
    Ok(AllocationRequest {
        requested_ips: requested,
        ..base_request(svc, namespace_labels)
    })
}

/// The request without requested IPs: what seeding uses (a seeded address is kept
/// even when the requested-IPs annotation is unreadable).
pub fn base_request(svc: &Service, namespace_labels: &Labels) -> AllocationRequest {
    let spec = svc.spec.clone().unwrap_or_default();
    let families: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    let policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
        _ => IpFamilyPolicy::SingleStack,
    };
    let traffic_policy = if spec.external_traffic_policy.as_deref() == Some("Local") {
        TrafficPolicy::Local {
            selector: canonical_selector(spec.selector.as_ref()),
        }
    } else {
        TrafficPolicy::Cluster
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(_) => return None,
            };
            u16::try_from(p.port)
                .ok()
                .map(|port| Port { protocol, port })
        })
        .collect();
    AllocationRequest {
        ip_family_policy: policy,
        ip_families: families,
        requested_ips: Vec::new(),
        pool: first_annotation(svc, &POOL_ANNOTATIONS).map(|(_, v)| v.to_string()),
        sharing_key: first_annotation(svc, &ALLOW_SHARED_IP_ANNOTATIONS)
            .map(|(_, v)| v.to_string()),
        traffic_policy,
        ports,
        service_labels: svc.metadata.labels.clone().unwrap_or_default(),
        namespace_labels: namespace_labels.clone(),
    }
}

/// A pod selector as sorted `k=v,k=v`: two Local Services share an IP only when
/// these strings are equal.
fn canonical_selector(selector: Option<&BTreeMap<String, String>>) -> String {
    selector
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
