//! Fixtures that read like sentences:
//! `Svc::lb("web").ports([80]).requesting("192.0.2.10").build()`,
//! `pool("lan", ["192.0.2.200-192.0.2.250"])`, `tls_secret("default", "shop-tls", &crt, &key)`.

use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

/// A Service under construction.
#[derive(Debug, Clone)]
pub struct Svc {
    svc: Service,
}

impl Svc {
    /// A `type: LoadBalancer` Service in namespace `default`.
    pub fn lb(name: &str) -> Svc {
        Svc::of_type(name, "LoadBalancer")
    }

    /// A Service of any type in namespace `default`.
    pub fn of_type(name: &str, type_: &str) -> Svc {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.to_string()),
                selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
                ports: Some(vec![port(80, "TCP")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        Svc { svc }
    }

    pub fn namespace(mut self, ns: &str) -> Svc {
        self.svc.metadata.namespace = Some(ns.to_string());
        self
    }

    /// TCP ports (replaces the default port 80).
    pub fn ports(mut self, ports: impl IntoIterator<Item = i32>) -> Svc {
        self.spec().ports = Some(ports.into_iter().map(|p| port(p, "TCP")).collect());
        self
    }

    /// Ports with an explicit protocol.
    pub fn ports_with_protocol(
        mut self,
        ports: impl IntoIterator<Item = (i32, &'static str)>,
    ) -> Svc {
        self.spec().ports = Some(ports.into_iter().map(|(p, proto)| port(p, proto)).collect());
        self
    }

    /// Requests IPs through `ironlb.io/ips`.
    pub fn requesting(self, ips: &str) -> Svc {
        self.annotation("ironlb.io/ips", ips)
    }

    /// Chooses a pool through `ironlb.io/pool`.
    pub fn from_pool(self, pool: &str) -> Svc {
        self.annotation("ironlb.io/pool", pool)
    }

    /// Allows sharing an IP with Services of the same key.
    pub fn sharing(self, key: &str) -> Svc {
        self.annotation("ironlb.io/allow-shared-ip", key)
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Svc {
        self.svc
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Svc {
        self.svc
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    pub fn class(mut self, class: &str) -> Svc {
        self.spec().load_balancer_class = Some(class.to_string());
        self
    }

    /// `SingleStack`, `PreferDualStack` or `RequireDualStack`, with the families listed.
    pub fn families(mut self, policy: &str, families: &[&str]) -> Svc {
        let spec = self.spec();
        spec.ip_family_policy = Some(policy.to_string());
        spec.ip_families = Some(families.iter().map(|f| f.to_string()).collect());
        self
    }

    pub fn traffic_policy_local(mut self) -> Svc {
        self.spec().external_traffic_policy = Some("Local".into());
        self
    }

    pub fn external_ips(mut self, ips: &[&str]) -> Svc {
        self.spec().external_ips = Some(ips.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn build(self) -> Service {
        self.svc
    }

    fn spec(&mut self) -> &mut ServiceSpec {
        self.svc.spec.get_or_insert_with(Default::default)
    }
}

/// The name fixtures give a Service port (`tcp-8080`); EndpointSlices must use the same.
pub fn port_name(p: i32, protocol: &str) -> String {
    format!("{}-{p}", protocol.to_ascii_lowercase())
}

fn port(p: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(port_name(p, protocol)),
        port: p,
        protocol: Some(protocol.to_string()),
        ..Default::default()
    }
}

/// An IPPool with the given addresses and default options.
pub fn pool<'a>(name: &str, addresses: impl IntoIterator<Item = &'a str>) -> ironlb_api::IPPool {
    let spec: ironlb_api::IPPoolSpec = serde_json::from_value(serde_json::json!({
        "addresses": addresses.into_iter().collect::<Vec<_>>(),
    }))
    .expect("a pool spec with only addresses deserializes");
    ironlb_api::IPPool::new(name, spec)
}

/// A `kubernetes.io/tls` Secret `namespace/name` holding `cert` and `key` (PEM, or
/// anything else a test wants the gateway to refuse).
pub fn tls_secret(namespace: &str, name: &str, cert: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(cert.as_bytes().to_vec())),
            ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
        ])),
        ..Default::default()
    }
}

/// A CA made for one test or demo and a certificate it signs for `host`, as PEM:
/// (CA certificate, certificate, key). Clients trust the CA (`curl --cacert`).
pub fn ca_and_cert(host: &str) -> anyhow::Result<(String, String, String)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "IronLB test CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}
