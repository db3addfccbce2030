//! The watch side against the embedded API server, through a real kube client: class
//! selection, snapshots following Ingress / Service / EndpointSlice / Secret changes,
//! Ingress status from the publish Service, Warning Events.
//!
//! Every wait is bounded (`wait_until`) only to avoid hangs; nothing here is timed.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ironlb_e2e::support::fixtures::tls_secret;
use ironlb_e2e::support::{wait_until, TestCluster};
use ironlb_gateway::metrics::Metrics;
use ironlb_gateway::snapshot::{SharedSnapshot, Snapshot};
use ironlb_gateway::watch::{self, WatchConfig};
use ironlb_routes::Match;
use ironlb_runtime::health::Readiness;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rustls::sign::CertifiedKey;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const NS: &str = "default";

// === fixtures ===

/// An Ingress under construction: `ingress("web").class("ironlb").prefix("a.example.com", "/", "web", 80)`.
struct Ing(Value);

fn ingress(name: &str) -> Ing {
    Ing(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"rules": []}
    }))
}

impl Ing {
    fn class(mut self, class: &str) -> Ing {
        self.0["spec"]["ingressClassName"] = json!(class);
        self
    }
    fn annotation(mut self, k: &str, v: &str) -> Ing {
        self.0["metadata"]["annotations"][k] = json!(v);
        self
    }
    fn path(mut self, host: &str, path_type: &str, path: &str, svc: &str, port: u16) -> Ing {
        self.0["spec"]["rules"].as_array_mut().unwrap().push(json!({
            "host": host,
            "http": {"paths": [{"path": path, "pathType": path_type,
                "backend": {"service": {"name": svc, "port": {"number": port}}}}]}
        }));
        self
    }
    fn prefix(self, host: &str, path: &str, svc: &str, port: u16) -> Ing {
        self.path(host, "Prefix", path, svc, port)
    }
    fn tls(mut self, host: &str, secret: &str) -> Ing {
        self.0["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
        self
    }
    fn build(self) -> Ingress {
        serde_json::from_value(self.0).expect("a valid Ingress")
    }
}

fn ingress_class(name: &str, controller: &str, default: bool) -> IngressClass {
    let mut v = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
    if default {
        v["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    serde_json::from_value(v).unwrap()
}

/// A ClusterIP Service `name` with port 80 → 8080 named `http`.
fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

/// The EndpointSlice of Service `name` with these ready endpoints on port 8080.
fn slice(name: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-1"), "namespace": NS,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
    .unwrap()
}

fn tls_data(crt: &str, key: &str) -> std::collections::BTreeMap<String, ByteString> {
    [
        ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
        ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
    ]
    .into()
}

/// A merge patch replacing a TLS Secret's certificate and key.
fn new_tls_data(crt: &str, key: &str) -> Value {
    json!({"data": serde_json::to_value(tls_data(crt, key)).unwrap()})
}

/// A self-signed certificate for `host`: (cert PEM, key PEM, cert DER).
fn cert_for(host: &str) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

// === harness ===

/// A cluster plus the watch side running in this process.
struct Gateway {
    cluster: TestCluster,
    snapshot: SharedSnapshot,
    readiness: Readiness,
    fallback: Arc<CertifiedKey>,
    stop: CancellationToken,
}

impl Gateway {
    async fn start(config: impl FnOnce(&mut WatchConfig)) -> Gateway {
        let cluster = TestCluster::start().await.expect("cluster");
        let mut cfg = WatchConfig::new("ironlb");
        config(&mut cfg);
        let fallback = Arc::new(ironlb_gateway::tls::self_signed_default());
        let snapshot: SharedSnapshot =
            Arc::new(ArcSwap::from_pointee(Snapshot::empty(fallback.clone())));
        let readiness = Readiness::default();
        let stop = CancellationToken::new();
        tokio::spawn(watch::run(
            cluster.admin.clone(),
            cfg,
            snapshot.clone(),
            fallback.clone(),
            Arc::new(Metrics::unregistered()),
            readiness.clone(),
            stop.clone(),
        ));
        Gateway {
            cluster,
            snapshot,
            readiness,
            fallback,
            stop,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cluster.admin.clone(), NS)
    }

    async fn create<K>(&self, obj: &K)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .create(&PostParams::default(), obj)
            .await
            .expect("create");
    }

    async fn create_class(&self, class: &IngressClass) {
        Api::<IngressClass>::all(self.cluster.admin.clone())
            .create(&PostParams::default(), class)
            .await
            .expect("create IngressClass");
    }

    /// A backend Service with one ready endpoint.
    async fn backend(&self, name: &str, ip: &str) {
        self.create(&service(name)).await;
        self.create(&slice(name, &[ip])).await;
    }

    async fn merge<K>(&self, name: &str, patch: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("merge patch");
    }

    /// Waits until `check` holds for the current snapshot.
    async fn until(&self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        wait_until(what, WAIT, || {
            let snap = self.snapshot.load_full();
            let ok = check(&snap);
            async move { ok.then_some(snap) }
        })
        .await
        .unwrap()
    }

    /// Waits until `host` + `path` is routed to the Ingress `ingress`.
    async fn until_routed(&self, host: &str, path: &str, ingress: &str) -> Arc<Snapshot> {
        self.until(&format!("{host}{path} routed to {ingress}"), |s| {
            routed_to(s, host, path) == Some(ingress.to_string())
        })
        .await
    }

    async fn ingress_ips(&self, name: &str) -> Vec<String> {
        let ing = self.api::<Ingress>().get(name).await.expect("get Ingress");
        ing.status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect()
    }

    async fn until_ingress_ips(&self, name: &str, want: &[&str]) {
        wait_until(&format!("status of {name} = {want:?}"), WAIT, || async {
            (self.ingress_ips(name).await == want).then_some(())
        })
        .await
        .unwrap();
    }

    /// Events on Ingress `name` with `reason`.
    async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        self.api::<Event>()
            .list(&Default::default())
            .await
            .expect("list Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect()
    }

    async fn until_event(&self, name: &str, reason: &str) -> Event {
        wait_until(&format!("a {reason} Event on {name}"), WAIT, || async {
            self.events(name, reason).await.into_iter().next()
        })
        .await
        .unwrap()
    }

    /// Waits for a `reason` Event on Ingress `name` whose note contains `needle`;
    /// returns the note.
    async fn until_event_note(&self, name: &str, reason: &str, needle: &str) -> String {
        wait_until(
            &format!("a {reason} Event on {name} with {needle:?}"),
            WAIT,
            || async {
                self.events(name, reason)
                    .await
                    .into_iter()
                    .filter_map(|e| e.note)
                    .find(|n| n.contains(needle))
            },
        )
        .await
        .unwrap()
    }

    /// Sets the publish Service's `status.loadBalancer.ingress` to `ip`.
    async fn publish_ip(&self, ip: &str) {
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        self.api::<Service>()
            .patch_status("gateway", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("patch publish Service status");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn routed_to(s: &Snapshot, host: &str, path: &str) -> Option<String> {
    match s.routes.route(host, path) {
        Match::Rule(r) | Match::DefaultBackend(r) => Some(r.ingress.name.clone()),
        Match::NotFound => None,
    }
}

fn endpoints(s: &Snapshot, host: &str, path: &str) -> Vec<String> {
    match s.routes.route(host, path) {
        Match::Rule(r) | Match::DefaultBackend(r) => {
            r.backend.endpoints.iter().map(|e| e.to_string()).collect()
        }
        Match::NotFound => Vec::new(),
    }
}

fn ours() -> IngressClass {
    ingress_class("ironlb", "ironlb.io/ingress-gateway", false)
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_of_our_class_default_class_and_legacy_annotation_are_served_others_left_alone() {
    let gw = Gateway::start(|c| c.publish_service = Some("default/gateway".parse().unwrap())).await;
    gw.create_class(&ours()).await;
    gw.create_class(&ingress_class("nginx", "k8s.io/ingress-nginx", false))
        .await;
    gw.create(&service("gateway")).await;
    gw.publish_ip("192.0.2.50").await;
    gw.backend("web", "192.0.2.10").await;
    gw.create(
        &ingress("by-class")
            .class("ironlb")
            .prefix("a.example.com", "/", "web", 80)
            .build(),
    )
    .await;
    gw.create(
        &ingress("by-annotation")
            .annotation("kubernetes.io/ingress.class", "ironlb")
            .prefix("b.example.com", "/", "web", 80)
            .build(),
    )
    .await;
    gw.create(
        &ingress("nginx-one")
            .class("nginx")
            .prefix("c.example.com", "/", "web", 80)
            .build(),
    )
    .await;
    gw.create(
        &ingress("classless")
            .prefix("d.example.com", "/", "web", 80)
            .build(),
    )
    .await;
    // Another controller's status, which we must never touch.
    let theirs = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}});
    gw.api::<Ingress>()
        .patch_status("nginx-one", &PatchParams::default(), &Patch::Merge(&theirs))
        .await
        .unwrap();

    let snap = gw.until_routed("a.example.com", "/", "by-class").await;
    assert!(
        gw.readiness.is_ready(),
        "ready once the first snapshot is in"
    );
    gw.until_routed("b.example.com", "/", "by-annotation").await;
    gw.until_ingress_ips("by-class", &["192.0.2.50"]).await;
    gw.until_ingress_ips("by-annotation", &["192.0.2.50"]).await;
    let snap_now = gw.snapshot.load_full();
    assert!(snap_now.generation >= snap.generation);
    assert_eq!(
        routed_to(&snap_now, "c.example.com", "/"),
        None,
        "other class"
    );
    assert_eq!(
        routed_to(&snap_now, "d.example.com", "/"),
        None,
        "no default class yet"
    );
    assert_eq!(gw.ingress_ips("nginx-one").await, ["198.51.100.7"]);
    assert!(gw.ingress_ips("classless").await.is_empty());

    // Our class becomes the default: the class-less Ingress is ours now.
    gw.merge_class_default().await;
    gw.until_routed("d.example.com", "/", "classless").await;
    gw.until_ingress_ips("classless", &["192.0.2.50"]).await;
    assert_eq!(
        gw.ingress_ips("nginx-one").await,
        ["198.51.100.7"],
        "never touched"
    );
    assert_eq!(routed_to(&gw.snapshot.load(), "c.example.com", "/"), None);
}

impl Gateway {
    async fn merge_class_default(&self) {
        let patch = json!({"metadata": {"annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}});
        Api::<IngressClass>::all(self.cluster.admin.clone())
            .patch("ironlb", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_changes_and_endpoint_removal_reach_the_snapshot() {
    let gw = Gateway::start(|_| {}).await;
    gw.create_class(&ours()).await;
    gw.create(&service("web")).await;
    gw.create(&slice("web", &["192.0.2.10", "192.0.2.11"]))
        .await;
    gw.create(&service("api")).await;
    gw.create(&slice("api", &["192.0.2.20"])).await;
    gw.create(
        &ingress("shop")
            .class("ironlb")
            .prefix("shop.example.com", "/", "web", 80)
            .build(),
    )
    .await;

    let first = gw.until_routed("shop.example.com", "/cart", "shop").await;
    let mut eps = endpoints(&first, "shop.example.com", "/cart");
    eps.sort();
    assert_eq!(eps, ["192.0.2.10:8080", "192.0.2.11:8080"]);

    // A new path on the Ingress: a new snapshot routes it to the other Service.
    let patch = json!({"spec": {"rules": [
        {"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
        ]}}
    ]}});
    gw.merge::<Ingress>("shop", patch).await;
    let second = gw
        .until("/api routed to the api Service", |s| {
            endpoints(s, "shop.example.com", "/api/v1") == ["192.0.2.20:8080"]
        })
        .await;
    assert!(second.generation > first.generation);

    // One endpoint goes away.
    let patch =
        json!({"endpoints": [{"addresses": ["192.0.2.11"], "conditions": {"ready": true}}]});
    gw.merge::<EndpointSlice>("web-1", patch).await;
    gw.until("192.0.2.10 removed", |s| {
        endpoints(s, "shop.example.com", "/") == ["192.0.2.11:8080"]
    })
    .await;

    // The Ingress goes away: 404 again.
    gw.api::<Ingress>()
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    gw.until("the deleted Ingress unrouted", |s| {
        routed_to(s, "shop.example.com", "/").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_the_publish_service_and_is_removed_when_the_ingress_leaves_the_class() {
    let gw = Gateway::start(|c| c.publish_service = Some("default/gateway".parse().unwrap())).await;
    gw.create_class(&ours()).await;
    gw.create_class(&ingress_class("nginx", "k8s.io/ingress-nginx", false))
        .await;
    gw.create(&service("gateway")).await;
    gw.backend("web", "192.0.2.10").await;
    gw.create(
        &ingress("shop")
            .class("ironlb")
            .prefix("shop.example.com", "/", "web", 80)
            .build(),
    )
    .await;
    gw.until_routed("shop.example.com", "/", "shop").await;
    // No address published yet: nothing written.
    assert!(gw.ingress_ips("shop").await.is_empty());

    gw.publish_ip("192.0.2.50").await;
    gw.until_ingress_ips("shop", &["192.0.2.50"]).await;
    let ing = gw.api::<Ingress>().get("shop").await.unwrap();
    let managers: Vec<_> = ing
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        ["ironlb-gateway"],
        "written with server-side apply"
    );

    gw.publish_ip("192.0.2.51").await;
    gw.until_ingress_ips("shop", &["192.0.2.51"]).await;

    // The Ingress moves to another class: our status goes away.
    gw.merge::<Ingress>("shop", json!({"spec": {"ingressClassName": "nginx"}}))
        .await;
    gw.until_ingress_ips("shop", &[]).await;
    gw.until("the Ingress unrouted", |s| {
        routed_to(s, "shop.example.com", "/").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_snippets_and_bad_tls_secrets_raise_one_warning_event_each() {
    let gw = Gateway::start(|_| {}).await;
    gw.create_class(&ours()).await;
    gw.backend("web", "192.0.2.10").await;
    gw.create(
        &ingress("shop")
            .class("ironlb")
            .prefix("shop.example.com", "/", "web", 80)
            .path("shop.example.com", "Prefix", "/a;b", "web", 80)
            .annotation(
                "nginx.ingress.kubernetes.io/configuration-snippet",
                "more_set_headers \"x: y\";",
            )
            .tls("shop.example.com", "shop-tls")
            .build(),
    )
    .await;
    gw.create(&tls_secret(
        NS,
        "shop-tls",
        "not a certificate",
        "not a key",
    ))
    .await;

    let snap = gw.until_routed("shop.example.com", "/", "shop").await;
    let invalid = gw.until_event("shop", "InvalidPath").await;
    assert_eq!(invalid.type_.as_deref(), Some("Warning"));
    assert_eq!(
        invalid.reporting_controller.as_deref(),
        Some("ironlb-gateway")
    );
    gw.until_event("shop", "SnippetRefused").await;
    // The Secret may be seen after the Ingress ("does not exist" first): wait for the
    // final word on it.
    let note = gw
        .until_event_note("shop", "InvalidTLSSecret", "no certificate in PEM")
        .await;
    assert!(
        note.starts_with(
            "host shop.example.com: Secret default/shop-tls is not a valid TLS certificate: "
        ),
        "{note}"
    );
    assert!(
        Arc::ptr_eq(&snap.cert_for_sni(Some("shop.example.com")), &gw.fallback),
        "the host is served with the default certificate"
    );

    // An unrelated change rebuilds the snapshot; the same problems are not re-reported
    // (a re-report would show as a new Event or a bumped series count).
    let published = |events: Vec<Event>| -> Vec<(Option<String>, i32)> {
        events
            .into_iter()
            .map(|e| (e.note, e.series.map_or(1, |s| s.count)))
            .collect()
    };
    let mut seen = Vec::new();
    for reason in ["InvalidPath", "SnippetRefused", "InvalidTLSSecret"] {
        seen.push(published(gw.events("shop", reason).await));
    }
    let before = gw.snapshot.load().generation;
    gw.backend("other", "192.0.2.30").await;
    gw.create(
        &ingress("other")
            .class("ironlb")
            .prefix("other.example.com", "/", "other", 80)
            .build(),
    )
    .await;
    let after = gw.until_routed("other.example.com", "/", "other").await;
    assert!(after.generation > before);
    for (reason, seen) in ["InvalidPath", "SnippetRefused", "InvalidTLSSecret"]
        .into_iter()
        .zip(seen)
    {
        assert_eq!(published(gw.events("shop", reason).await), seen, "{reason}");
    }
    assert_eq!(gw.events("shop", "InvalidPath").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secret_rotation_and_the_default_certificate_are_picked_up_live() {
    let gw = Gateway::start(|c| {
        c.default_ssl_certificate = Some("default/fallback-cert".parse().unwrap())
    })
    .await;
    gw.create_class(&ours()).await;
    gw.backend("web", "192.0.2.10").await;
    let (crt1, key1, der1) = cert_for("shop.example.com");
    gw.create(&tls_secret(NS, "shop-tls", &crt1, &key1)).await;
    gw.create(
        &ingress("shop")
            .class("ironlb")
            .prefix("shop.example.com", "/", "web", 80)
            .tls("shop.example.com", "shop-tls")
            .build(),
    )
    .await;
    let leaf = |s: &Snapshot, sni: Option<&str>| s.cert_for_sni(sni).cert[0].as_ref().to_vec();
    gw.until("the Ingress certificate served", |s| {
        leaf(s, Some("shop.example.com")) == der1
    })
    .await;
    // No default Secret yet: the self-signed fallback.
    assert!(Arc::ptr_eq(&gw.snapshot.load().default_cert, &gw.fallback));

    // Rotation.
    let (crt2, key2, der2) = cert_for("shop.example.com");
    gw.merge::<Secret>("shop-tls", new_tls_data(&crt2, &key2))
        .await;
    gw.until("the rotated certificate served", |s| {
        leaf(s, Some("shop.example.com")) == der2
    })
    .await;

    // The default certificate from its Secret (an Opaque one is fine), then rotated.
    let (crt3, key3, der3) = cert_for("default.example.com");
    let mut opaque = tls_secret(NS, "fallback-cert", &crt3, &key3);
    opaque.type_ = Some("Opaque".into());
    gw.create(&opaque).await;
    gw.until("the default certificate from its Secret", |s| {
        leaf(s, Some("unknown.example.com")) == der3 && leaf(s, None) == der3
    })
    .await;
    let (crt4, key4, der4) = cert_for("default.example.com");
    gw.merge::<Secret>("fallback-cert", new_tls_data(&crt4, &key4))
        .await;
    gw.until("the rotated default certificate", |s| leaf(s, None) == der4)
        .await;
    assert_eq!(leaf(&gw.snapshot.load(), Some("shop.example.com")), der2);
}

/// A TLS Secret that goes from missing to invalid changes no route (the host is served
/// with the default certificate either way) but is a new problem: it gets its own Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tls_secret_that_turns_up_invalid_is_reported_again() {
    let gw = Gateway::start(|_| {}).await;
    gw.create_class(&ours()).await;
    gw.backend("web", "192.0.2.10").await;
    gw.create(
        &ingress("shop")
            .class("ironlb")
            .prefix("shop.example.com", "/", "web", 80)
            .tls("shop.example.com", "shop-tls")
            .build(),
    )
    .await;
    gw.until_routed("shop.example.com", "/", "shop").await;
    gw.until_event_note("shop", "InvalidTLSSecret", "does not exist")
        .await;
    gw.create(&tls_secret(
        NS,
        "shop-tls",
        "not a certificate",
        "not a key",
    ))
    .await;
    gw.until_event_note("shop", "InvalidTLSSecret", "no certificate in PEM")
        .await;
}
