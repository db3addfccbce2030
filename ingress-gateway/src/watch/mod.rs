//! The watch side: Ingress, IngressClass, Service, EndpointSlice and TLS Secret stores →
//! a new [`Snapshot`] on every change (debounced), Ingress status and Warning Events.
//!
//! Shape: one reflector per kind feeds a shared [`Notify`]; one loop waits for a change,
//! lets the burst settle for `debounce`, converts the stores to `ironlb_routes::Inputs`
//! ([`convert`]), compiles, loads the certificates ([`certs`]) and swaps the snapshot in.
//! Both conversion and compilation keep what unchanged objects gave the previous build,
//! so an update costs a fraction of the first build.
//! Status writes ([`status`]) and Events ([`problems`]) go to two small workers so that a
//! slow API server never delays a swap.
//!
//! Memory: Secrets are watched with the field selector `type=kubernetes.io/tls` and
//! stripped to `tls.crt`/`tls.key`; `managedFields` and the last-applied annotation are
//! dropped from every object (Ingresses keep our own status entry: it is how we know
//! whose status we wrote, across restarts).

pub mod certs;
pub mod convert;
pub mod problems;
pub mod status;

use std::collections::HashMap;
use std::fmt::Debug;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use ironlb_routes::{Compiler, Inputs, RouteTable};
use ironlb_runtime::health::Readiness;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use rustls::sign::CertifiedKey;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::snapshot::{SharedSnapshot, Snapshot};
use certs::CertCache;
use problems::{Dedupe, EventSink, Problem, INVALID_TLS_SECRET};
use status::StatusChange;

/// `namespace/name` of an object named on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespacedName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl FromStr for NamespacedName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(NamespacedName {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{s:?} is not namespace/name")),
        }
    }
}

impl std::fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the watch side needs to know (from [`crate::Args`]).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The IngressClass this gateway serves.
    pub ingress_class: String,
    /// The gateway's own LoadBalancer Service, whose addresses go into Ingress status.
    pub publish_service: Option<NamespacedName>,
    /// The Secret holding the default certificate.
    pub default_ssl_certificate: Option<NamespacedName>,
    /// Write Ingress status and Events (one writer per cluster is enough).
    pub update_status: bool,
    /// How long a burst of changes may settle before a build.
    pub debounce: Duration,
}

impl WatchConfig {
    /// The defaults of the command line, for class `ingress_class`.
    pub fn new(ingress_class: &str) -> WatchConfig {
        WatchConfig {
            ingress_class: ingress_class.to_string(),
            publish_service: None,
            default_ssl_certificate: None,
            update_status: true,
            debounce: Duration::from_millis(5),
        }
    }
}

/// Everything the loop reads (reflector stores: cloning shares them).
#[derive(Clone)]
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    default_secret: Option<Store<Secret>>,
}

impl Stores {
    async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.ingresses.wait_until_ready().await?;
        self.classes.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        if let Some(s) = &self.default_secret {
            s.wait_until_ready().await?;
        }
        Ok(())
    }
}

/// A reflector for `api`; its stream yields `()` per change and logs watch errors (the
/// default backoff retries them).
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).modify(trim).default_backoff())
        .filter_map(|event| async move {
            match event {
                Ok(_) => Some(()),
                Err(error) => {
                    tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
                    None
                }
            }
        })
        .boxed();
    (reader, stream)
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn trim_meta<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

fn start_reflectors(
    client: &kube::Client,
    config: &WatchConfig,
) -> (Stores, BoxStream<'static, ()>) {
    let (ingresses, s1) = reflect(
        Api::<Ingress>::all(client.clone()),
        watcher::Config::default(),
        |ing: &mut Ingress| {
            // Keep only our own entries: they tell whose status we wrote.
            if let Some(m) = ing.metadata.managed_fields.as_mut() {
                m.retain(|e| e.manager.as_deref() == Some(status::FIELD_MANAGER));
                for e in m.iter_mut() {
                    e.fields_v1 = None;
                }
            }
            if let Some(a) = ing.metadata.annotations.as_mut() {
                a.remove(LAST_APPLIED);
            }
        },
    );
    let (classes, s2) = reflect(
        Api::<IngressClass>::all(client.clone()),
        watcher::Config::default(),
        trim_meta,
    );
    let (services, s3) = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        trim_meta,
    );
    let (slices, s4) = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        trim_meta,
    );
    let trim_secret = |s: &mut Secret| {
        trim_meta(s);
        s.metadata.annotations = None;
        s.metadata.labels = None;
        if let Some(d) = s.data.as_mut() {
            d.retain(|k, _| k == certs::TLS_CRT || k == certs::TLS_KEY);
        }
        s.string_data = None;
    };
    let (secrets, s5) = reflect(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        trim_secret,
    );
    let mut streams = vec![s1, s2, s3, s4, s5];
    // The default certificate's Secret may be of any type: a watch of its own.
    let default_secret = config.default_ssl_certificate.as_ref().map(|nn| {
        let (store, s) = reflect(
            Api::<Secret>::namespaced(client.clone(), &nn.namespace),
            watcher::Config::default().fields(&format!("metadata.name={}", nn.name)),
            trim_secret,
        );
        streams.push(s);
        store
    });
    let stores = Stores {
        ingresses,
        classes,
        services,
        slices,
        secrets,
        default_secret,
    };
    (stores, futures::stream::select_all(streams).boxed())
}

// === building snapshots ===

/// What one build produced.
struct Built {
    /// The new snapshot, unless nothing the data path sees changed.
    snapshot: Option<Snapshot>,
    /// Problems not reported by the previous build.
    new_problems: Vec<Problem>,
    /// Status writes to make.
    status_changes: Vec<StatusChange>,
}

/// Which certificate (by `Arc` address) each Secret key gave, or why none: a Secret
/// going from missing to invalid changes no route but must still be reported.
type CertIdentities = Vec<(String, Result<usize, String>)>;

/// The state kept between builds.
struct Builder {
    config: WatchConfig,
    fallback_cert: Arc<CertifiedKey>,
    converter: convert::Converter,
    compiler: Compiler,
    certs: CertCache,
    default_certs: CertCache,
    dedupe: Dedupe,
    /// Inputs and certificate identities of the last swap: equal ones need no new swap.
    last: Option<(Inputs, CertIdentities)>,
    last_default_error: Option<String>,
}

impl Builder {
    fn new(config: WatchConfig, fallback_cert: Arc<CertifiedKey>) -> Builder {
        Builder {
            config,
            fallback_cert,
            converter: convert::Converter::default(),
            compiler: Compiler::default(),
            certs: CertCache::default(),
            default_certs: CertCache::default(),
            dedupe: Dedupe::default(),
            last: None,
            last_default_error: None,
        }
    }

    fn default_cert(&mut self, stores: &Stores) -> Arc<CertifiedKey> {
        let (Some(nn), Some(store)) =
            (&self.config.default_ssl_certificate, &stores.default_secret)
        else {
            return self.fallback_cert.clone();
        };
        let secret = store.get(&ObjectRef::new(&nn.name).within(&nn.namespace));
        // Not necessarily kubernetes.io/tls: any Secret with tls.crt and tls.key will do.
        match self.default_certs.load(&nn.to_string(), secret.as_deref()) {
            Ok(cert) => {
                self.last_default_error = None;
                cert
            }
            Err(error) => {
                if self.last_default_error.as_ref() != Some(&error) {
                    tracing::warn!(secret = %nn, %error, "default certificate unusable; serving the self-signed one");
                    self.last_default_error = Some(error);
                }
                self.fallback_cert.clone()
            }
        }
    }

    fn build(&mut self, stores: &Stores, generation: u64) -> Built {
        let ingress_objs = stores.ingresses.state();
        let class_objs = stores.classes.state();
        let service_objs = stores.services.state();
        let slice_objs = stores.slices.state();
        let classes = convert::classes(
            &class_objs.iter().map(|a| &**a).collect::<Vec<_>>(),
            &self.config.ingress_class,
        );
        let inputs = self
            .converter
            .inputs(&ingress_objs, &service_objs, &slice_objs, &classes);

        // Status first: it depends on the publish Service even when routes are unchanged.
        let status_changes = if self.config.update_status {
            let published = self.config.publish_service.as_ref().map(|nn| {
                stores
                    .services
                    .get(&ObjectRef::new(&nn.name).within(&nn.namespace))
                    .map(|svc| status::published_addresses(&svc))
                    .unwrap_or_default()
            });
            status::status_changes(
                ingress_objs.iter().map(|a| &**a),
                |ing| convert::is_ours(ing, &classes),
                published.as_deref(),
            )
        } else {
            Vec::new()
        };

        // Every Secret a TLS entry names, loaded (or not) once per version.
        let mut loaded: HashMap<String, certs::Loaded> = HashMap::new();
        for ing in &inputs.ingresses {
            for secret in ing.tls.iter().filter_map(|t| t.secret_name.as_ref()) {
                let key = format!("{}/{}", ing.namespace, secret);
                if let std::collections::hash_map::Entry::Vacant(slot) = loaded.entry(key) {
                    let obj = stores
                        .secrets
                        .get(&ObjectRef::new(secret).within(&ing.namespace));
                    let result = self.certs.load(slot.key(), obj.as_deref());
                    slot.insert(result);
                }
            }
        }
        self.certs.retain(|k| loaded.contains_key(k));
        let default_cert = self.default_cert(stores);
        let mut identities: CertIdentities = loaded
            .iter()
            .map(|(k, v)| {
                let identity = match v {
                    Ok(cert) => Ok(Arc::as_ptr(cert) as usize),
                    Err(error) => Err(error.to_string()),
                };
                (k.clone(), identity)
            })
            .collect();
        identities.push((String::new(), Ok(Arc::as_ptr(&default_cert) as usize)));
        identities.sort();

        if self
            .last
            .as_ref()
            .is_some_and(|(i, c)| *i == inputs && *c == identities)
        {
            return Built {
                snapshot: None,
                new_problems: Vec::new(),
                status_changes,
            };
        }

        let (routes, diagnostics) = self.compiler.compile(&inputs);
        let mut problems: Vec<Problem> = diagnostics.into_iter().map(Problem::from).collect();
        problems.extend(tls_problems(&inputs, &loaded));
        let certs = snapshot_certs(&routes, &loaded);
        let new_problems = self.dedupe.new_problems(problems);
        self.last = Some((inputs, identities));
        Built {
            snapshot: Some(Snapshot {
                routes,
                certs,
                default_cert,
                generation,
            }),
            new_problems,
            status_changes,
        }
    }
}

/// The certificates the table's TLS entries use, by `namespace/name`.
fn snapshot_certs(
    routes: &RouteTable,
    loaded: &HashMap<String, certs::Loaded>,
) -> HashMap<String, Arc<CertifiedKey>> {
    routes
        .tls_secrets()
        .filter_map(|s| {
            let key = format!("{}/{}", s.namespace, s.name);
            let cert = loaded.get(&key)?.as_ref().ok()?.clone();
            Some((key, cert))
        })
        .collect()
}

/// One Warning per host whose Secret is missing or invalid (served with the default
/// certificate meanwhile).
fn tls_problems(inputs: &Inputs, loaded: &HashMap<String, certs::Loaded>) -> Vec<Problem> {
    let mut out = Vec::new();
    for ing in &inputs.ingresses {
        for tls in &ing.tls {
            let Some(secret) = &tls.secret_name else {
                continue;
            };
            let key = format!("{}/{}", ing.namespace, secret);
            let Some(Err(error)) = loaded.get(&key) else {
                continue;
            };
            for host in &tls.hosts {
                out.push(Problem {
                    ingress: ing.key(),
                    reason: INVALID_TLS_SECRET.to_string(),
                    message: format!(
                        "host {host}: Secret {key} is not a valid TLS certificate: {error}; serving the default certificate"
                    ),
                });
            }
        }
    }
    out
}

// === the loop and its workers ===

/// Runs the watch side until `shutdown`: builds and swaps snapshots into `snapshot`,
/// marks `readiness` once every store has listed and the first snapshot is in, writes
/// Ingress status and Events (when `config.update_status`). `fallback_cert` is the
/// default certificate while no `--default-ssl-certificate` Secret is usable.
pub async fn run(
    client: kube::Client,
    config: WatchConfig,
    snapshot: SharedSnapshot,
    fallback_cert: Arc<CertifiedKey>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let (stores, mut changes) = start_reflectors(&client, &config);
    let notify = Arc::new(Notify::new());
    {
        let notify = notify.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = changes.next() => match next {
                        Some(()) => notify.notify_one(),
                        None => break,
                    },
                }
            }
        });
    }
    let status_tx = spawn_status_worker(client.clone(), notify.clone(), shutdown.clone());
    let events_tx = spawn_event_worker(client.clone(), shutdown.clone());

    tokio::select! {
        _ = shutdown.cancelled() => return,
        ready = stores.wait_until_ready() => {
            if let Err(error) = ready {
                tracing::error!(%error, "a watch ended before its first list");
                return;
            }
        }
    }
    tracing::info!("every store listed; building the first snapshot");
    let mut builder = Builder::new(config.clone(), fallback_cert);
    let mut first = true;
    loop {
        let generation = snapshot.load().generation + 1;
        // Compiling 10,000 rules takes tens of milliseconds: on a blocking thread, so
        // the data path's workers keep serving meanwhile.
        let (returned, built, took) = {
            let stores = stores.clone();
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let built = builder.build(&stores, generation);
                (builder, built, started.elapsed())
            })
            .await
            .expect("snapshot build panicked")
        };
        metrics.snapshot_built(took);
        builder = returned;
        if let Some(next) = built.snapshot {
            let routes = next.routes.len();
            let next = Arc::new(next);
            snapshot.store(next.clone());
            metrics.snapshot_swapped(&next.routes);
            tracing::debug!(generation, routes, ?took, "snapshot swapped");
        }
        if first {
            readiness.set(true);
            tracing::info!("first snapshot in; ready");
            first = false;
        }
        if config.update_status {
            for problem in built.new_problems {
                let regarding = stores
                    .ingresses
                    .get(&ObjectRef::new(&problem.ingress.name).within(&problem.ingress.namespace))
                    .map(|ing| ing.object_ref(&()));
                if let Some(regarding) = regarding {
                    let _ = events_tx.send((problem, regarding));
                }
            }
            if !built.status_changes.is_empty() {
                let _ = status_tx.send(built.status_changes);
            }
        } else {
            for p in built.new_problems {
                tracing::warn!(ingress = %p.ingress, reason = %p.reason, "{}", p.message);
            }
        }

        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = notify.notified() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.debounce) => {}
        }
    }
    tracing::info!("watch side stopped");
}

/// Applies the latest status changes; on failure it asks for a rebuild after a second
/// (which recomputes what is still missing).
fn spawn_status_worker(
    client: kube::Client,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) -> tokio::sync::watch::Sender<Vec<StatusChange>> {
    let (tx, mut rx) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            let changes = rx.borrow_and_update().clone();
            let mut failed = false;
            for change in &changes {
                if let Err(error) = status::apply(&client, change).await {
                    tracing::warn!(?change, %error, "writing Ingress status failed");
                    failed = true;
                } else {
                    tracing::debug!(?change, "Ingress status written");
                }
            }
            if failed {
                tokio::time::sleep(Duration::from_secs(1)).await;
                notify.notify_one();
            }
        }
    });
    tx
}

fn spawn_event_worker(
    client: kube::Client,
    shutdown: CancellationToken,
) -> mpsc::UnboundedSender<(Problem, ObjectReference)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Problem, ObjectReference)>();
    let sink = EventSink::new(client);
    tokio::spawn(async move {
        loop {
            let (problem, regarding) = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = rx.recv() => match next { Some(n) => n, None => break },
            };
            tracing::warn!(ingress = %problem.ingress, reason = %problem.reason, "{}", problem.message);
            sink.warn(&problem, &regarding).await;
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_names_parse_strictly() {
        let nn: NamespacedName = "ironlb/gateway".parse().unwrap();
        assert_eq!(nn.to_string(), "ironlb/gateway");
        for bad in ["gateway", "/gateway", "ironlb/", "a/b/c"] {
            assert!(bad.parse::<NamespacedName>().is_err(), "{bad}");
        }
    }
}
