//! Kubernetes objects → the plain inputs of `ironlb-routes`. Pure functions of one
//! object each, and [`Converter`], which keeps each object's converted form while the
//! object is unchanged; the class decision is `ironlb_routes::is_ours`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ironlb_routes::class::{DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION};
use ironlb_routes::{
    BackendRef, EndpointInput, EndpointPortInput, EndpointSliceInput, IngressClassInput,
    IngressInput, IngressRef, Inputs, PathInput, PathType, PortRef, Protocol, RuleInput,
    ServiceInput, ServicePortInput, TargetPort, TlsInput,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// IngressClasses as selection sees them. Only the class this gateway was started for
/// (`--ingress-class`) counts as ours: two gateway installations with the same
/// controller string but different class names must not serve each other's Ingresses.
pub fn classes(all: &[&IngressClass], our_class: &str) -> Vec<IngressClassInput> {
    all.iter()
        .map(|c| {
            let name = c.metadata.name.clone().unwrap_or_default();
            let controller = c
                .spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_default();
            let controller = if name == our_class {
                controller
            } else {
                // Same controller, other installation: foreign to us.
                format!("other:{controller}")
            };
            let is_default = c
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true");
            IngressClassInput {
                name,
                controller,
                is_default,
            }
        })
        .collect()
}

/// Whether this Ingress belongs to this gateway.
pub fn is_ours(ingress: &Ingress, classes: &[IngressClassInput]) -> bool {
    let class_name = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .map(String::as_str);
    ironlb_routes::is_ours(class_name, legacy, classes)
}

/// `namespace/name` of an Ingress.
pub fn ingress_ref(ingress: &Ingress) -> IngressRef {
    IngressRef::new(
        ingress.metadata.namespace.clone().unwrap_or_default(),
        ingress.metadata.name.clone().unwrap_or_default(),
    )
}

/// One Ingress as the compiler sees it. Backends of other kinds (`resource`) and paths
/// without a Service backend are dropped: IronLB only routes to Services.
pub fn ingress(ing: &Ingress) -> IngressInput {
    let mut input = IngressInput::new(
        ing.metadata.namespace.clone().unwrap_or_default(),
        ing.metadata.name.clone().unwrap_or_default(),
    );
    input.creation_timestamp = ing
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    input.annotations = ing.metadata.annotations.clone().unwrap_or_default();
    let Some(spec) = &ing.spec else {
        return input;
    };
    input.default_backend = spec.default_backend.as_ref().and_then(backend);
    for rule in spec.rules.iter().flatten() {
        let paths = rule
            .http
            .iter()
            .flat_map(|http| &http.paths)
            .filter_map(|p| {
                Some(PathInput {
                    path: p.path.clone().unwrap_or_default(),
                    path_type: match p.path_type.as_str() {
                        "Exact" => PathType::Exact,
                        "Prefix" => PathType::Prefix,
                        _ => PathType::ImplementationSpecific,
                    },
                    backend: backend(&p.backend)?,
                })
            })
            .collect();
        input.rules.push(RuleInput {
            host: rule.host.clone().filter(|h| !h.is_empty()),
            paths,
        });
    }
    input.tls = spec
        .tls
        .iter()
        .flatten()
        .map(|t| TlsInput {
            hosts: t.hosts.clone().unwrap_or_default(),
            secret_name: t.secret_name.clone().filter(|s| !s.is_empty()),
        })
        .collect();
    input
}

fn backend(b: &IngressBackend) -> Option<BackendRef> {
    let svc = b.service.as_ref()?;
    let port = svc.port.as_ref()?;
    let port = match (&port.name, port.number) {
        (Some(name), _) if !name.is_empty() => PortRef::Name(name.clone()),
        (_, Some(n)) => PortRef::Number(u16::try_from(n).ok()?),
        _ => return None,
    };
    Some(BackendRef {
        service: svc.name.clone(),
        port,
    })
}

fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// One Service. A missing `targetPort` means the same number as `port`.
pub fn service(svc: &Service) -> ServiceInput {
    let mut input = ServiceInput::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    for p in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        let target_port = match &p.target_port {
            Some(IntOrString::Int(n)) => match u16::try_from(*n) {
                Ok(n) if n != 0 => TargetPort::Number(n),
                _ => TargetPort::Number(port),
            },
            Some(IntOrString::String(s)) if !s.is_empty() => TargetPort::Name(s.clone()),
            _ => TargetPort::Number(port),
        };
        input.ports.push(ServicePortInput {
            name: p.name.clone().filter(|n| !n.is_empty()),
            port,
            target_port,
            protocol: protocol(p.protocol.as_deref()),
        });
    }
    input
}

fn namespace_name(m: &ObjectMeta) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

/// The Service an EndpointSlice belongs to; `None` for slices without a Service label
/// or of type FQDN (which IronLB cannot route to).
fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    if slice.address_type == "FQDN" {
        return None;
    }
    slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)
        .map(String::as_str)
}

/// One EndpointSlice; `None` for slices without a Service label or of type FQDN.
/// Unparsable addresses are dropped.
pub fn endpoint_slice(slice: &EndpointSlice) -> Option<EndpointSliceInput> {
    let service = slice_service(slice)?;
    let mut input = EndpointSliceInput::new(
        slice.metadata.namespace.clone().unwrap_or_default(),
        service,
    );
    input.ports = slice
        .ports
        .iter()
        .flatten()
        .map(|p| EndpointPortInput {
            name: p.name.clone().filter(|n| !n.is_empty()),
            port: p.port.and_then(|n| u16::try_from(n).ok()),
            protocol: protocol(p.protocol.as_deref()),
        })
        .collect();
    input.endpoints = slice
        .endpoints
        .iter()
        .map(|e| {
            let conditions = e.conditions.as_ref();
            EndpointInput {
                addresses: e
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .collect(),
                ready: conditions.and_then(|c| c.ready),
                serving: conditions.and_then(|c| c.serving),
                terminating: conditions.and_then(|c| c.terminating),
                node_name: e.node_name.clone(),
            }
        })
        .collect();
    Some(input)
}

/// Converts the stores' objects into the compiler's inputs, keeping what it converted
/// the previous time.
///
/// The reflector stores hold each object version in an `Arc` of its own and replace
/// that `Arc` when the object changes, so an unchanged object is recognised by its
/// pointer. Each entry holds the object's `Arc`, so the address cannot be reused by a
/// newer object while the entry lives. An unchanged object keeps the `Arc` of its
/// converted form, which makes comparing two inputs cheap and lets
/// `ironlb_routes::Compiler` skip what it derived from an unchanged Ingress.
#[derive(Default)]
pub struct Converter {
    ingresses: Cache<Ingress, IngressInput>,
    services: Cache<Service, ServiceInput>,
    slices: Cache<EndpointSlice, EndpointSliceInput>,
}

/// Converted objects by the address of the object's `Arc`.
type Cache<K, T> = HashMap<usize, (Arc<K>, Arc<T>)>;

/// The converted form of `obj`: from `previous` when it holds this very object version,
/// else new; either way recorded in `current`.
fn converted<K, T>(
    previous: &mut Cache<K, T>,
    current: &mut Cache<K, T>,
    obj: &Arc<K>,
    convert: impl FnOnce(&K) -> T,
) -> Arc<T> {
    let key = Arc::as_ptr(obj) as usize;
    let value = match previous.remove(&key) {
        Some((_, value)) => value,
        None => Arc::new(convert(obj)),
    };
    current.insert(key, (obj.clone(), value.clone()));
    value
}

impl Converter {
    /// The compiler's inputs: our Ingresses (sorted by namespace/name), and only the
    /// Services and EndpointSlices they reference (sorted), so that churn elsewhere in
    /// the cluster yields equal inputs and no swap.
    pub fn inputs(
        &mut self,
        ingresses: &[Arc<Ingress>],
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        classes: &[IngressClassInput],
    ) -> Inputs {
        let mut previous = std::mem::take(&mut self.ingresses);
        let mut ours: Vec<Arc<IngressInput>> = ingresses
            .iter()
            .filter(|i| is_ours(i, classes))
            .map(|i| converted(&mut previous, &mut self.ingresses, i, ingress))
            .collect();
        ours.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let wanted: HashSet<(&str, &str)> = ours
            .iter()
            .flat_map(|i| {
                i.rules
                    .iter()
                    .flat_map(|r| r.paths.iter().map(|p| &p.backend))
                    .chain(i.default_backend.as_ref())
                    .map(|b| (i.namespace.as_str(), b.service.as_str()))
            })
            .collect();
        let mut previous = std::mem::take(&mut self.services);
        let mut svcs: BTreeMap<(&str, &str), Arc<ServiceInput>> = BTreeMap::new();
        for s in services {
            let key = namespace_name(&s.metadata);
            if wanted.contains(&key) {
                svcs.insert(
                    key,
                    converted(&mut previous, &mut self.services, s, service),
                );
            }
        }

        let mut previous = std::mem::take(&mut self.slices);
        let mut eps: BTreeMap<(&str, &str), Arc<EndpointSliceInput>> = BTreeMap::new();
        for s in slices {
            let Some(service) = slice_service(s) else {
                continue;
            };
            let namespace = s.metadata.namespace.as_deref().unwrap_or_default();
            if !wanted.contains(&(namespace, service)) {
                continue;
            }
            let input = converted(&mut previous, &mut self.slices, s, |s| {
                endpoint_slice(s).expect("a slice with a Service is converted")
            });
            eps.insert(namespace_name(&s.metadata), input);
        }
        Inputs {
            ingresses: ours,
            services: svcs.into_values().collect(),
            endpoint_slices: eps.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress_json(v: serde_json::Value) -> Ingress {
        serde_json::from_value(v).expect("a valid Ingress")
    }

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let mut v = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
        if default {
            v["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        serde_json::from_value(v).expect("a valid IngressClass")
    }

    #[test]
    fn only_the_configured_class_of_our_controller_is_ours() {
        let ours = class("ironlb", ironlb_routes::class::CONTROLLER, false);
        let twin = class("ironlb-internal", ironlb_routes::class::CONTROLLER, false);
        let nginx = class("nginx", "k8s.io/ingress-nginx", true);
        let classes = classes(&[&ours, &twin, &nginx], "ironlb");
        let with_class = |c: &str| {
            ingress_json(
                json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"ingressClassName": c}}),
            )
        };
        assert!(is_ours(&with_class("ironlb"), &classes));
        assert!(!is_ours(&with_class("ironlb-internal"), &classes));
        assert!(!is_ours(&with_class("nginx"), &classes));
        // nginx is the default class, not us.
        let classless = ingress_json(json!({"metadata": {"name": "a", "namespace": "n"}}));
        assert!(!is_ours(&classless, &classes));
        let legacy = ingress_json(json!({"metadata": {"name": "a", "namespace": "n",
            "annotations": {LEGACY_CLASS_ANNOTATION: "ironlb"}}}));
        assert!(is_ours(&legacy, &classes));
    }

    #[test]
    fn classless_ingresses_follow_our_default_class() {
        let ours = class("ironlb", ironlb_routes::class::CONTROLLER, true);
        let classes = classes(&[&ours], "ironlb");
        let classless = ingress_json(json!({"metadata": {"name": "a", "namespace": "n"}}));
        assert!(is_ours(&classless, &classes));
    }

    #[test]
    fn an_ingress_converts_with_its_rules_backends_and_tls() {
        let ing = ingress_json(json!({
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
            "spec": {
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 8080}}},
                "rules": [{"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                    {"path": "/x", "pathType": "Exact", "backend": {"resource": {"kind": "Bucket", "name": "b"}}},
                    {"path": "/api", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
                ]}}],
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}, {"hosts": ["b.example.com"]}]
            }
        }));
        let input = ingress(&ing);
        assert_eq!(input.creation_timestamp, 1_767_225_600);
        assert_eq!(
            input.default_backend,
            Some(BackendRef::new("fallback", 8080))
        );
        assert_eq!(input.rules.len(), 1);
        let paths = &input.rules[0].paths;
        assert_eq!(paths.len(), 2, "the resource backend is dropped");
        assert_eq!(paths[0].backend, BackendRef::named("web", "http"));
        assert_eq!(paths[1].path_type, PathType::ImplementationSpecific);
        assert_eq!(input.tls[0].secret_name.as_deref(), Some("shop-tls"));
        assert_eq!(input.tls[1].secret_name, None);
        assert_eq!(input.annotations.len(), 1);
    }

    #[test]
    fn a_service_without_target_port_targets_its_own_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ports": [
                {"name": "http", "port": 80},
                {"name": "named", "port": 81, "targetPort": "web"},
                {"port": 82, "targetPort": 8082, "protocol": "UDP"}
            ]}
        }))
        .unwrap();
        let input = service(&svc);
        assert_eq!(input.ports[0].target_port, TargetPort::Number(80));
        assert_eq!(input.ports[1].target_port, TargetPort::Name("web".into()));
        assert_eq!(input.ports[2].protocol, Protocol::Udp);
        assert_eq!(input.ports[2].name, None);
    }

    #[test]
    fn endpoint_slices_keep_conditions_as_given_and_drop_fqdn_slices() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["192.0.2.10"]},
                {"addresses": ["192.0.2.11", "not-an-ip"], "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }))
        .unwrap();
        let input = endpoint_slice(&slice).expect("a labelled IPv4 slice");
        assert_eq!(input.service, "web");
        assert_eq!(input.ports[0].port, Some(8080));
        assert_eq!(input.endpoints[0].ready, None);
        assert_eq!(input.endpoints[1].addresses.len(), 1);
        assert_eq!(input.endpoints[1].terminating, Some(true));
        let mut fqdn = slice.clone();
        fqdn.address_type = "FQDN".into();
        assert_eq!(endpoint_slice(&fqdn), None);
    }

    #[test]
    fn inputs_keep_only_our_ingresses_and_what_they_reference() {
        let ours = class("ironlb", ironlb_routes::class::CONTROLLER, false);
        let classes = classes(&[&ours], "ironlb");
        let mine = ingress_json(
            json!({"metadata": {"name": "b", "namespace": "n"}, "spec": {
            "ingressClassName": "ironlb",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        );
        let other = ingress_json(
            json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "db", "port": {"number": 80}}}}]}}]}}),
        );
        let svc = |name: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})).unwrap()
        };
        let (web, db) = (Arc::new(svc("web")), Arc::new(svc("db")));
        let (mine, other) = (Arc::new(mine), Arc::new(other));
        let mut converter = Converter::default();
        let inputs = converter.inputs(&[other, mine.clone()], &[db, web.clone()], &[], &classes);
        assert_eq!(inputs.ingresses.len(), 1);
        assert_eq!(inputs.ingresses[0].name, "b");
        assert_eq!(inputs.services.len(), 1);
        assert_eq!(inputs.services[0].name, "web");

        // The same object versions again: the same converted values, shared.
        let again = converter.inputs(
            std::slice::from_ref(&mine),
            std::slice::from_ref(&web),
            &[],
            &classes,
        );
        assert!(Arc::ptr_eq(&again.ingresses[0], &inputs.ingresses[0]));
        assert!(Arc::ptr_eq(&again.services[0], &inputs.services[0]));
        // A new version of the Ingress (a new `Arc` in the store) is converted anew.
        let newer = Arc::new((*mine).clone());
        let third = converter.inputs(&[newer], &[web], &[], &classes);
        assert!(!Arc::ptr_eq(&third.ingresses[0], &inputs.ingresses[0]));
        assert_eq!(third, again);
    }
}
