//! Pure: the Service status the controller owns, and whether the live one differs.
//!
//! The controller owns exactly `status.loadBalancer.ingress` (ip + ipMode VIP) and the
//! condition `ironlb.io/ip-allocated`, written by server-side apply under
//! `ironlb-controller` on the status subresource. Everything else in status belongs
//! to others (the speaker's `ironlb.io/announced` condition, for one).

use std::net::IpAddr;

use ironlb_api::names::{CONDITION_IP_ALLOCATED, FIELD_MANAGER_CONTROLLER};
use ironlb_ipam::Assignment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{json, Value};

/// Condition reason when addresses are held.
pub const REASON_ALLOCATED: &str = "IPAllocated";
/// Condition reason when an annotation is unusable and nothing is held.
pub const REASON_INVALID_ANNOTATION: &str = "InvalidAnnotation";

/// What the controller wants in a Service's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// `status.loadBalancer.ingress[*].ip`, primary family first.
    pub ips: Vec<IpAddr>,
    /// The `ironlb.io/ip-allocated` condition.
    pub allocated: bool,
    /// Condition reason (CamelCase).
    pub reason: String,
    /// Condition message, for `kubectl describe svc`.
    pub message: String,
}

impl Desired {
    /// Addresses held and the pools they came from.
    pub fn allocated(a: &Assignment) -> Desired {
        Desired {
            ips: a.ips(),
            allocated: true,
            reason: REASON_ALLOCATED.to_string(),
            message: describe(a),
        }
    }

    /// Not (fully) allocated: `held` stays in the status (an error never takes away
    /// what a Service holds), the condition says why.
    pub fn failed(held: Option<&Assignment>, reason: &str, message: String) -> Desired {
        Desired {
            ips: held.map(Assignment::ips).unwrap_or_default(),
            allocated: false,
            reason: reason.to_string(),
            message,
        }
    }
}

/// `192.0.2.1 from IPPool 'lan'`, or several comma-separated.
pub fn describe(a: &Assignment) -> String {
    a.ips
        .iter()
        .map(|ip| format!("{} from IPPool '{}'", ip.ip, ip.pool))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Addresses in the live `status.loadBalancer.ingress` (entries that parse).
pub fn live_ips(svc: &Service) -> Vec<IpAddr> {
    ingress(svc)
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect()
}

fn ingress(
    svc: &Service,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::LoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
}

/// The live `ironlb.io/ip-allocated` condition.
pub fn live_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION_IP_ALLOCATED))
}

/// Whether the live status already says what `desired` says.
pub fn up_to_date(svc: &Service, desired: &Desired) -> bool {
    let live: Vec<(Option<&str>, Option<&str>)> = ingress(svc)
        .map(|i| (i.ip.as_deref(), i.ip_mode.as_deref()))
        .collect();
    let want: Vec<String> = desired.ips.iter().map(ToString::to_string).collect();
    let ingress_same = live.len() == want.len()
        && live
            .iter()
            .zip(&want)
            .all(|((ip, mode), w)| *ip == Some(w.as_str()) && *mode == Some("VIP"));
    let condition_same = live_condition(svc).is_some_and(|c| {
        c.status == status_word(desired.allocated)
            && c.reason == desired.reason
            && c.message == desired.message
    });
    ingress_same && condition_same
}

fn status_word(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The server-side apply body for `desired`. The condition keeps its
/// `lastTransitionTime` when its status did not change.
pub fn apply_body(svc: &Service, desired: &Desired, now: Time) -> Value {
    let transition = match live_condition(svc) {
        Some(c) if c.status == status_word(desired.allocated) => c.last_transition_time.clone(),
        _ => now,
    };
    let ingress: Vec<Value> = desired
        .ips
        .iter()
        .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "status": {
            "loadBalancer": {"ingress": ingress},
            "conditions": [{
                "type": CONDITION_IP_ALLOCATED,
                "status": status_word(desired.allocated),
                "reason": desired.reason,
                "message": desired.message,
                "lastTransitionTime": transition,
            }],
        },
    })
}

/// The server-side apply body that gives up every status field the controller owns
/// (and only those).
pub fn clear_body() -> Value {
    json!({"apiVersion": "v1", "kind": "Service"})
}

/// Whether the controller's field manager owns something in the status: the
/// only reliable sign, across restarts, that a Service's status was written by us.
pub fn written_by_us(svc: &Service) -> bool {
    svc.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER_CONTROLLER)
            && m.subresource.as_deref() == Some("status")
            && m.operation.as_deref() == Some("Apply")
    })
}

/// Drops what the controller never reads from a Service before it is cached:
/// other managers' managedFields and the last-applied annotation. Keeps memory
/// proportional to what matters with thousands of Services.
pub fn slim(svc: &mut Service) {
    if let Some(mf) = svc.metadata.managed_fields.as_mut() {
        mf.retain(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER_CONTROLLER)
                && m.subresource.as_deref() == Some("status")
        });
        for m in mf.iter_mut() {
            m.fields_v1 = None;
        }
        if mf.is_empty() {
            svc.metadata.managed_fields = None;
        }
    }
    if let Some(a) = svc.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests;
