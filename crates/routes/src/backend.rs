//! Backend resolution: Service port (by number or name) → EndpointSlice ports (named
//! target ports resolve per slice) → ready socket addresses.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::table::FxMap;
use crate::{
    BackendRef, EndpointInput, EndpointSliceInput, PortRef, Protocol, ServiceInput,
    ServicePortInput, TargetPort,
};

/// A resolved backend, shared by every route that names the same Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Namespace of the Service.
    pub namespace: Box<str>,
    /// Service name.
    pub service: Box<str>,
    /// The Service port as the Ingress named it.
    pub port: PortRef,
    /// Where to send requests: ready endpoints, or serving-but-terminating ones when none
    /// is ready; empty means 503. Sorted, without duplicates.
    pub endpoints: Arc<[SocketAddr]>,
    /// True when `endpoints` are terminating ones (no endpoint was ready).
    pub terminating_fallback: bool,
}

/// Why a backend has no endpoints (each becomes a diagnostic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unresolved {
    UnknownService,
    UnknownPort,
    NoEndpoints,
}

/// Resolves and caches backends for one compilation.
pub(crate) struct Resolver<'a> {
    services: FxMap<(&'a str, &'a str), &'a ServiceInput>,
    slices: FxMap<(&'a str, &'a str), Vec<&'a EndpointSliceInput>>,
    cache: FxMap<(&'a str, &'a BackendRef), Resolution>,
}

/// A backend and, when it has no endpoints, why.
type Resolution = (Arc<Backend>, Option<Unresolved>);

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        services: &'a [Arc<ServiceInput>],
        slices: &'a [Arc<EndpointSliceInput>],
    ) -> Self {
        let services = services
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), &**s))
            .collect();
        let mut by_service: FxMap<_, Vec<_>> = FxMap::default();
        for slice in slices {
            by_service
                .entry((slice.namespace.as_str(), slice.service.as_str()))
                .or_default()
                .push(&**slice);
        }
        Self {
            services,
            slices: by_service,
            cache: FxMap::default(),
        }
    }

    /// The backend for `backend` in `namespace`, with the reason it has no endpoints.
    pub(crate) fn resolve(&mut self, namespace: &'a str, backend: &'a BackendRef) -> Resolution {
        let key = (namespace, backend);
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let (endpoints, terminating_fallback, problem) = self.endpoints(namespace, backend);
        let resolved = (
            Arc::new(Backend {
                namespace: namespace.into(),
                service: backend.service.as_str().into(),
                port: backend.port.clone(),
                endpoints: endpoints.into_iter().collect(),
                terminating_fallback,
            }),
            problem,
        );
        self.cache.insert(key, resolved.clone());
        resolved
    }

    fn endpoints(
        &self,
        namespace: &str,
        backend: &BackendRef,
    ) -> (BTreeSet<SocketAddr>, bool, Option<Unresolved>) {
        let none = |why| (BTreeSet::new(), false, Some(why));
        let Some(service) = self.services.get(&(namespace, backend.service.as_str())) else {
            return none(Unresolved::UnknownService);
        };
        let Some(port) = service.ports.iter().find(|p| {
            p.protocol == Protocol::Tcp
                && match &backend.port {
                    PortRef::Number(n) => p.port == *n,
                    PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
                }
        }) else {
            return none(Unresolved::UnknownPort);
        };
        let slices = self
            .slices
            .get(&(namespace, backend.service.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut ready = BTreeSet::new();
        let mut terminating = BTreeSet::new();
        for slice in slices {
            let Some(target) = slice_port(slice, port) else {
                continue;
            };
            for endpoint in &slice.endpoints {
                let set = match condition(endpoint) {
                    Condition::Ready => &mut ready,
                    Condition::ServingTerminating => &mut terminating,
                    Condition::Out => continue,
                };
                set.extend(
                    endpoint
                        .addresses
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, target)),
                );
            }
        }
        if !ready.is_empty() {
            (ready, false, None)
        } else if !terminating.is_empty() {
            (terminating, true, None)
        } else {
            none(Unresolved::NoEndpoints)
        }
    }
}

/// The target port a slice gives for a Service port: slice ports carry the Service
/// port's name (named targetPorts are resolved per pod, so per slice). A slice without
/// ports (hand-made) falls back to a numeric targetPort.
fn slice_port(slice: &EndpointSliceInput, port: &ServicePortInput) -> Option<u16> {
    let name = port.name.as_deref().unwrap_or("");
    let found = slice
        .ports
        .iter()
        .find(|p| p.protocol == Protocol::Tcp && p.name.as_deref().unwrap_or("") == name);
    match (found, &port.target_port) {
        (Some(p), _) => p.port,
        (None, TargetPort::Number(n)) if slice.ports.is_empty() => Some(*n),
        (None, _) => None,
    }
}

enum Condition {
    Ready,
    ServingTerminating,
    Out,
}

/// EndpointSlice condition defaults: unset `ready` means ready, unset `serving` means
/// the same as `ready`, unset `terminating` means not terminating.
fn condition(e: &EndpointInput) -> Condition {
    let ready = e.ready.unwrap_or(true);
    let serving = e.serving.unwrap_or(ready);
    let terminating = e.terminating.unwrap_or(false);
    if ready && !terminating {
        Condition::Ready
    } else if serving && terminating {
        Condition::ServingTerminating
    } else {
        Condition::Out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EndpointSliceInput as Slice;

    fn resolve(
        services: &[ServiceInput],
        slices: &[Slice],
        backend: BackendRef,
    ) -> (Arc<Backend>, Option<Unresolved>) {
        let services: Vec<_> = services.iter().cloned().map(Arc::new).collect();
        let slices: Vec<_> = slices.iter().cloned().map(Arc::new).collect();
        Resolver::new(&services, &slices).resolve("shop", &backend)
    }

    fn addrs(b: &Backend) -> Vec<String> {
        b.endpoints.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn numbered_service_port_resolves_through_the_slice_port_name() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let slices = [Slice::new("shop", "web")
            .port("http", 8080)
            .ready("192.0.2.1")
            .ready("192.0.2.2")];
        let (b, problem) = resolve(&svc, &slices, BackendRef::new("web", 80));
        assert_eq!(problem, None);
        assert_eq!(addrs(&b), ["192.0.2.1:8080", "192.0.2.2:8080"]);
    }

    #[test]
    fn named_target_ports_resolve_per_slice() {
        let svc = [ServiceInput::new("shop", "web").named_target("http", 80, "web-http")];
        let slices = [
            Slice::new("shop", "web")
                .port("http", 8080)
                .ready("192.0.2.1"),
            Slice::new("shop", "web")
                .port("http", 9090)
                .ready("192.0.2.2"),
        ];
        let (b, _) = resolve(&svc, &slices, BackendRef::named("web", "http"));
        assert_eq!(addrs(&b), ["192.0.2.1:8080", "192.0.2.2:9090"]);
    }

    #[test]
    fn unnamed_single_port_matches_unnamed_slice_port() {
        let svc = [ServiceInput::new("shop", "web").port("", 80, 8080)];
        let slices = [Slice::new("shop", "web")
            .port("", 8080)
            .ready("2001:db8::1")];
        let (b, _) = resolve(&svc, &slices, BackendRef::new("web", 80));
        assert_eq!(addrs(&b), ["[2001:db8::1]:8080"]);
    }

    #[test]
    fn only_ready_endpoints_are_used() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let slices = [Slice::new("shop", "web")
            .port("http", 8080)
            .ready("192.0.2.1")
            .terminating("192.0.2.2")
            .not_ready("192.0.2.3")];
        let (b, _) = resolve(&svc, &slices, BackendRef::new("web", 80));
        assert_eq!(addrs(&b), ["192.0.2.1:8080"]);
        assert!(!b.terminating_fallback);
    }

    #[test]
    fn serving_terminating_endpoints_are_used_when_none_is_ready() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let slices = [Slice::new("shop", "web")
            .port("http", 8080)
            .terminating("192.0.2.2")
            .not_ready("192.0.2.3")
            .endpoint("192.0.2.4", false, false, true)];
        let (b, problem) = resolve(&svc, &slices, BackendRef::new("web", 80));
        assert_eq!(addrs(&b), ["192.0.2.2:8080"]);
        assert!(b.terminating_fallback);
        assert_eq!(problem, None);
    }

    #[test]
    fn unset_conditions_mean_ready() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let mut slice = Slice::new("shop", "web")
            .port("http", 8080)
            .ready("192.0.2.1");
        slice.endpoints[0].ready = None;
        slice.endpoints[0].serving = None;
        slice.endpoints[0].terminating = None;
        let (b, _) = resolve(&svc, &[slice], BackendRef::new("web", 80));
        assert_eq!(addrs(&b), ["192.0.2.1:8080"]);
    }

    #[test]
    fn missing_service_port_or_endpoints_are_reported() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let slices = [Slice::new("shop", "web")
            .port("http", 8080)
            .not_ready("192.0.2.1")];
        let reason = |b| resolve(&svc, &slices, b).1;
        assert_eq!(
            reason(BackendRef::new("api", 80)),
            Some(Unresolved::UnknownService)
        );
        assert_eq!(
            reason(BackendRef::new("web", 81)),
            Some(Unresolved::UnknownPort)
        );
        assert_eq!(
            reason(BackendRef::named("web", "grpc")),
            Some(Unresolved::UnknownPort)
        );
        assert_eq!(
            reason(BackendRef::new("web", 80)),
            Some(Unresolved::NoEndpoints)
        );
    }

    #[test]
    fn slices_of_other_namespaces_do_not_leak_in() {
        let svc = [ServiceInput::new("shop", "web").port("http", 80, 8080)];
        let slices = [Slice::new("other", "web")
            .port("http", 8080)
            .ready("192.0.2.9")];
        let (b, problem) = resolve(&svc, &slices, BackendRef::new("web", 80));
        assert!(b.endpoints.is_empty());
        assert_eq!(problem, Some(Unresolved::NoEndpoints));
    }

    #[test]
    fn same_backend_is_shared() {
        let svc = [Arc::new(
            ServiceInput::new("shop", "web").port("http", 80, 8080),
        )];
        let mut r = Resolver::new(&svc, &[]);
        let web = BackendRef::new("web", 80);
        let a = r.resolve("shop", &web).0;
        let b = r.resolve("shop", &web).0;
        assert!(Arc::ptr_eq(&a, &b));
    }
}
