//! Plain input types: what the gateway glue extracts from Ingress, Service and
//! EndpointSlice objects. No Kubernetes types here, so the compiler stays pure and the
//! tests can build inputs that read like sentences.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Everything [`crate::compile`] needs for one snapshot.
///
/// Each object sits behind an `Arc` so that the glue can keep the converted form of an
/// unchanged object from one snapshot to the next, and [`crate::Compiler`] can tell an
/// unchanged Ingress by its pointer and reuse what it derived from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Ingresses of our class (the glue filters by IngressClass before calling us).
    pub ingresses: Vec<Arc<IngressInput>>,
    /// Services referenced (or not) by the Ingresses.
    pub services: Vec<Arc<ServiceInput>>,
    /// EndpointSlices, attributed to their Service by the `kubernetes.io/service-name` label.
    pub endpoint_slices: Vec<Arc<EndpointSliceInput>>,
}

impl Inputs {
    /// Inputs from plain values (tests, benchmarks, one-shot callers).
    pub fn new(
        ingresses: impl IntoIterator<Item = IngressInput>,
        services: impl IntoIterator<Item = ServiceInput>,
        endpoint_slices: impl IntoIterator<Item = EndpointSliceInput>,
    ) -> Inputs {
        Inputs {
            ingresses: ingresses.into_iter().map(Arc::new).collect(),
            services: services.into_iter().map(Arc::new).collect(),
            endpoint_slices: endpoint_slices.into_iter().map(Arc::new).collect(),
        }
    }
}

/// `namespace/name` of an Ingress; what a [`crate::Diagnostic`] and a [`crate::Route`] name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressRef {
    /// Namespace of the Ingress.
    pub namespace: String,
    /// Name of the Ingress.
    pub name: String,
}

impl IngressRef {
    /// Builds a reference from its two parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for IngressRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One Ingress, as the glue extracts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInput {
    /// Namespace of the Ingress (also the namespace of its Services and Secrets).
    pub namespace: String,
    /// Name of the Ingress.
    pub name: String,
    /// `metadata.creationTimestamp` in seconds since the Unix epoch. Conflicts are won by
    /// the oldest Ingress, ties broken by namespace then name.
    pub creation_timestamp: i64,
    /// `spec.rules`.
    pub rules: Vec<RuleInput>,
    /// `spec.defaultBackend`.
    pub default_backend: Option<BackendRef>,
    /// `spec.tls`.
    pub tls: Vec<TlsInput>,
    /// `metadata.annotations`, raw; parsed by [`crate::annotations`].
    pub annotations: BTreeMap<String, String>,
}

/// `spec.rules[]`: an optional host and its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInput {
    /// `host`; `None` (or empty) means every host.
    pub host: Option<String>,
    /// `http.paths`.
    pub paths: Vec<PathInput>,
}

/// `spec.rules[].http.paths[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInput {
    /// `path`; empty is only meaningful for `ImplementationSpecific` (means `/`).
    pub path: String,
    /// `pathType`.
    pub path_type: PathType,
    /// `backend`.
    pub backend: BackendRef,
}

/// `pathType` of an Ingress path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathType {
    /// Matches the URL path exactly, case-sensitively.
    Exact,
    /// Matches element-wise on `/`.
    Prefix,
    /// Treated as [`PathType::Prefix`] (regular expressions are not supported).
    ImplementationSpecific,
}

/// `backend.service` of an Ingress path or default backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendRef {
    /// Service name, in the Ingress's namespace.
    pub service: String,
    /// Service port, by number or by name.
    pub port: PortRef,
}

impl BackendRef {
    /// A backend on a numbered Service port.
    pub fn new(service: impl Into<String>, port: u16) -> Self {
        Self {
            service: service.into(),
            port: PortRef::Number(port),
        }
    }

    /// A backend on a named Service port.
    pub fn named(service: impl Into<String>, port: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            port: PortRef::Name(port.into()),
        }
    }
}

/// A Service port named by an Ingress backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => write!(f, "{s}"),
        }
    }
}

/// `spec.tls[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInput {
    /// `hosts`, possibly with a leading `*.` wildcard.
    pub hosts: Vec<String>,
    /// `secretName`; `None` means "TLS with the default certificate".
    pub secret_name: Option<String>,
}

/// A Service, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInput {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.ports`.
    pub ports: Vec<ServicePortInput>,
}

/// `spec.ports[]` of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInput {
    /// `name`; EndpointSlice ports carry the same name.
    pub name: Option<String>,
    /// `port`.
    pub port: u16,
    /// `targetPort`.
    pub target_port: TargetPort,
    /// `protocol`.
    pub protocol: Protocol,
}

/// `targetPort` of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number on the pods.
    Number(u16),
    /// A named container port; resolved per pod, hence through EndpointSlices.
    Name(String),
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (the default); the only protocol an HTTP gateway can use.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// An EndpointSlice, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSliceInput {
    /// Namespace of the slice (and its Service).
    pub namespace: String,
    /// Value of the `kubernetes.io/service-name` label.
    pub service: String,
    /// `ports`.
    pub ports: Vec<EndpointPortInput>,
    /// `endpoints`.
    pub endpoints: Vec<EndpointInput>,
}

/// `ports[]` of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPortInput {
    /// `name`: the name of the Service port it implements (empty/`None` for an unnamed one).
    pub name: Option<String>,
    /// `port`: the resolved target port on the pods.
    pub port: Option<u16>,
    /// `protocol`.
    pub protocol: Protocol,
}

/// `endpoints[]` of an EndpointSlice. Conditions are kept as the API gives them
/// (`None` = unset) so that the defaulting rules live here and are tested here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInput {
    /// `addresses` (the glue drops FQDN slices and unparsable addresses).
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready`; unset means ready.
    pub ready: Option<bool>,
    /// `conditions.serving`; unset means the same as `ready`.
    pub serving: Option<bool>,
    /// `conditions.terminating`; unset means not terminating.
    pub terminating: Option<bool>,
    /// `nodeName`.
    pub node_name: Option<String>,
}

// === fixture-style builders ===
// They let tests, benchmarks and the glue's own tests write inputs as sentences:
// `IngressInput::new("shop", "web").created(10).prefix("shop.example", "/", "web", 80)`.

impl IngressInput {
    /// An Ingress without rules, created at the epoch.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            creation_timestamp: 0,
            rules: Vec::new(),
            default_backend: None,
            tls: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Sets the creation timestamp (seconds).
    pub fn created(mut self, secs: i64) -> Self {
        self.creation_timestamp = secs;
        self
    }

    /// Adds a path to the rule for `host` (`""` = every host), creating the rule if needed.
    pub fn path(
        mut self,
        host: &str,
        path_type: PathType,
        path: &str,
        backend: BackendRef,
    ) -> Self {
        let host = (!host.is_empty()).then(|| host.to_string());
        let path = PathInput {
            path: path.to_string(),
            path_type,
            backend,
        };
        match self.rules.iter_mut().find(|r| r.host == host) {
            Some(rule) => rule.paths.push(path),
            None => self.rules.push(RuleInput {
                host,
                paths: vec![path],
            }),
        }
        self
    }

    /// Adds a `Prefix` path to a numbered Service port.
    pub fn prefix(self, host: &str, path: &str, service: &str, port: u16) -> Self {
        self.path(host, PathType::Prefix, path, BackendRef::new(service, port))
    }

    /// Adds an `Exact` path to a numbered Service port.
    pub fn exact(self, host: &str, path: &str, service: &str, port: u16) -> Self {
        self.path(host, PathType::Exact, path, BackendRef::new(service, port))
    }

    /// Sets `spec.defaultBackend`.
    pub fn default_backend(mut self, service: &str, port: u16) -> Self {
        self.default_backend = Some(BackendRef::new(service, port));
        self
    }

    /// Adds a `spec.tls` entry.
    pub fn tls(mut self, hosts: &[&str], secret_name: &str) -> Self {
        self.tls.push(TlsInput {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            secret_name: (!secret_name.is_empty()).then(|| secret_name.to_string()),
        });
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    /// `namespace/name` of this Ingress.
    pub fn key(&self) -> IngressRef {
        IngressRef::new(self.namespace.clone(), self.name.clone())
    }
}

impl ServiceInput {
    /// A Service without ports.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            ports: Vec::new(),
        }
    }

    /// Adds a TCP port (`name` empty = unnamed) with a numeric target port.
    pub fn port(mut self, name: &str, port: u16, target_port: u16) -> Self {
        self.ports.push(ServicePortInput {
            name: (!name.is_empty()).then(|| name.to_string()),
            port,
            target_port: TargetPort::Number(target_port),
            protocol: Protocol::Tcp,
        });
        self
    }

    /// Adds a TCP port with a named target port.
    pub fn named_target(mut self, name: &str, port: u16, target_port: &str) -> Self {
        self.ports.push(ServicePortInput {
            name: (!name.is_empty()).then(|| name.to_string()),
            port,
            target_port: TargetPort::Name(target_port.to_string()),
            protocol: Protocol::Tcp,
        });
        self
    }
}

impl EndpointSliceInput {
    /// An empty slice for `service`.
    pub fn new(namespace: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            ports: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    /// Adds a TCP port implementing the Service port `name` (empty = unnamed).
    pub fn port(mut self, name: &str, port: u16) -> Self {
        self.ports.push(EndpointPortInput {
            name: (!name.is_empty()).then(|| name.to_string()),
            port: Some(port),
            protocol: Protocol::Tcp,
        });
        self
    }

    /// Adds an endpoint with explicit conditions.
    pub fn endpoint(mut self, ip: &str, ready: bool, serving: bool, terminating: bool) -> Self {
        self.endpoints.push(EndpointInput {
            addresses: vec![ip.parse().expect("fixture IP address")],
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
            node_name: None,
        });
        self
    }

    /// Adds a ready endpoint.
    pub fn ready(self, ip: &str) -> Self {
        self.endpoint(ip, true, true, false)
    }

    /// Adds an endpoint that is terminating but still serving.
    pub fn terminating(self, ip: &str) -> Self {
        self.endpoint(ip, false, true, true)
    }

    /// Adds an endpoint that is neither ready nor serving.
    pub fn not_ready(self, ip: &str) -> Self {
        self.endpoint(ip, false, false, false)
    }
}
