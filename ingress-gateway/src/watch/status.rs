//! Ingress `status.loadBalancer`: the addresses of the gateway's own LoadBalancer
//! Service (`--publish-service`), written with server-side apply on the status
//! subresource under [`FIELD_MANAGER`]. Deciding what to write is pure
//! ([`status_changes`]); writing is [`apply`].

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The field manager of every write the gateway makes.
pub const FIELD_MANAGER: &str = "ironlb-gateway";

/// One published address: an IP or a hostname, as both status types carry them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// `ip`.
    pub ip: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
}

/// What to do to one Ingress's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// Set `status.loadBalancer.ingress` to these addresses (our field manager).
    Set {
        namespace: String,
        name: String,
        addresses: Vec<Address>,
    },
    /// Give up our ownership: SSA removes the fields only we owned.
    Clear { namespace: String, name: String },
}

/// The addresses of the publish Service's `status.loadBalancer.ingress`, in its order.
pub fn published_addresses(svc: &Service) -> Vec<Address> {
    svc.status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .map(|i| Address {
            ip: i.ip.clone().filter(|s| !s.is_empty()),
            hostname: i.hostname.clone().filter(|s| !s.is_empty()),
        })
        .filter(|a| a.ip.is_some() || a.hostname.is_some())
        .collect()
}

/// The addresses an Ingress's status currently holds (ports are not compared).
pub fn current_addresses(ing: &Ingress) -> Vec<Address> {
    ing.status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .map(|i| Address {
            ip: i.ip.clone().filter(|s| !s.is_empty()),
            hostname: i.hostname.clone().filter(|s| !s.is_empty()),
        })
        .collect()
}

/// Whether our field manager owns part of the Ingress's status (so a removal is ours to
/// make; the stores keep only our own `managedFields` entries).
pub fn we_manage_status(ing: &Ingress) -> bool {
    ing.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER) && m.subresource.as_deref() == Some("status")
    })
}

/// The writes that bring Ingress statuses where they should be. `ours(ing)` says which
/// Ingresses this gateway serves; `published` is `None` when there is no publish Service
/// to copy from (then nothing is set, but Ingresses that left the class are still
/// cleared). Never touches an Ingress that is not ours unless we own part of its status.
pub fn status_changes<'a>(
    ingresses: impl IntoIterator<Item = &'a Ingress>,
    ours: impl Fn(&Ingress) -> bool,
    published: Option<&[Address]>,
) -> Vec<StatusChange> {
    let mut changes = Vec::new();
    for ing in ingresses {
        let namespace = || ing.metadata.namespace.clone().unwrap_or_default();
        let name = || ing.metadata.name.clone().unwrap_or_default();
        let mine = we_manage_status(ing);
        if ours(ing) {
            let Some(published) = published else {
                continue;
            };
            let current = current_addresses(ing);
            if published.is_empty() {
                // Nothing to publish (yet): withdraw what we wrote, leave others' alone.
                if mine && !current.is_empty() {
                    changes.push(StatusChange::Clear {
                        namespace: namespace(),
                        name: name(),
                    });
                }
            } else if current != published {
                changes.push(StatusChange::Set {
                    namespace: namespace(),
                    name: name(),
                    addresses: published.to_vec(),
                });
            }
        } else if mine {
            changes.push(StatusChange::Clear {
                namespace: namespace(),
                name: name(),
            });
        }
    }
    changes
}

/// Writes one change with server-side apply on the status subresource.
pub async fn apply(client: &kube::Client, change: &StatusChange) -> Result<(), kube::Error> {
    let (namespace, name, status) = match change {
        StatusChange::Set {
            namespace,
            name,
            addresses,
        } => {
            let ingress: Vec<serde_json::Value> = addresses
                .iter()
                .map(|a| {
                    let mut v = json!({});
                    if let Some(ip) = &a.ip {
                        v["ip"] = json!(ip);
                    }
                    if let Some(h) = &a.hostname {
                        v["hostname"] = json!(h);
                    }
                    v
                })
                .collect();
            (
                namespace,
                name,
                Some(json!({"loadBalancer": {"ingress": ingress}})),
            )
        }
        StatusChange::Clear { namespace, name } => (namespace, name, None),
    };
    let mut body = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(status) = status {
        body["status"] = status;
    }
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(name: &str, ips: &[&str], managed_by_us: bool) -> Ingress {
        let mut v = json!({"metadata": {"name": name, "namespace": "shop"}});
        if !ips.is_empty() {
            let list: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
            v["status"] = json!({"loadBalancer": {"ingress": list}});
        }
        if managed_by_us {
            v["metadata"]["managedFields"] = json!([{"manager": FIELD_MANAGER, "operation": "Apply",
                "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
        }
        serde_json::from_value(v).unwrap()
    }

    fn ip(s: &str) -> Address {
        Address {
            ip: Some(s.into()),
            hostname: None,
        }
    }

    #[test]
    fn the_publish_service_addresses_are_read_in_order() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "gw", "namespace": "ironlb"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}, {}]}}}))
        .unwrap();
        assert_eq!(
            published_addresses(&svc),
            vec![
                ip("192.0.2.10"),
                Address {
                    ip: None,
                    hostname: Some("lb.example.com".into())
                }
            ]
        );
    }

    #[test]
    fn only_differing_statuses_of_our_ingresses_are_set() {
        let up_to_date = ingress("same", &["192.0.2.10"], true);
        let stale = ingress("stale", &["192.0.2.99"], true);
        let fresh = ingress("fresh", &[], false);
        let published = [ip("192.0.2.10")];
        let changes = status_changes([&up_to_date, &stale, &fresh], |_| true, Some(&published));
        let names: Vec<_> = changes
            .iter()
            .map(|c| match c {
                StatusChange::Set { name, .. } => name.as_str(),
                StatusChange::Clear { .. } => panic!("nothing to clear"),
            })
            .collect();
        assert_eq!(names, ["stale", "fresh"]);
    }

    #[test]
    fn ingresses_of_other_classes_are_cleared_only_when_we_wrote_their_status() {
        let left_us = ingress("left", &["192.0.2.10"], true);
        let never_ours = ingress("nginx-one", &["198.51.100.7"], false);
        let changes = status_changes(
            [&left_us, &never_ours],
            |_| false,
            Some(&[ip("192.0.2.10")]),
        );
        assert_eq!(
            changes,
            vec![StatusChange::Clear {
                namespace: "shop".into(),
                name: "left".into()
            }]
        );
    }

    #[test]
    fn without_a_publish_service_nothing_is_set() {
        let fresh = ingress("fresh", &[], false);
        assert!(status_changes([&fresh], |_| true, None).is_empty());
        let written = ingress("written", &["192.0.2.10"], true);
        assert_eq!(status_changes([&written], |_| true, Some(&[])).len(), 1);
        let foreign = ingress("foreign", &["192.0.2.10"], false);
        assert!(status_changes([&foreign], |_| true, Some(&[])).is_empty());
    }
}
