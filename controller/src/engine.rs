//! The reconcile loop: one task owns the allocator, decides in memory and hands the
//! API writes (status applies, Events) to bounded concurrent tasks.
//!
//! Shape (MetalLB's `service_controller_reload` order, controller-rs's reconciler):
//! 1. Reflectors for Services, IPPools, Namespaces and Nodes fill their stores and
//!    send a [`Trigger`] per change.
//! 2. While this replica leads: on takeover, pools → reserved Node addresses → seed
//!    every Service's existing `status.loadBalancer.ingress` → only then reconcile
//!    every Service. A restart therefore never moves an IP.
//! 3. A Service reconcile is [`Engine::reconcile`]: allocate (idempotent), compare
//!    with the live status, write only when different, emit an Event per new decision.
//! 4. IPPool/Node changes re-run `set_pools`/`set_reserved`; stranded Services get a
//!    Warning Event and a new address; every Service is re-checked (a new pool may
//!    serve a pending one). Freed addresses re-check pending Services at once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlb_api::convert::{pool_spec, pool_status};
use ironlb_api::names::FIELD_MANAGER_CONTROLLER;
use ironlb_api::{IPPool, IPPoolStatus};
use ironlb_ipam::{Allocator, PoolSpec, PoolsReport, ServiceKey};
use ironlb_runtime::health::Readiness;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::events::{self, Note};
use crate::metrics::{Metrics, ReasonLabels};
use crate::request::{allocation_request, base_request, ClassPolicy};
use crate::status::{
    apply_body, clear_body, describe, live_condition, live_ips, up_to_date, written_by_us, Desired,
    REASON_INVALID_ANNOTATION,
};

/// What changed, as sent by the reflectors.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// A Service was added, changed or deleted.
    Service(ServiceKey),
    /// The Service list was (re)loaded: check every Service, drop the vanished.
    ServicesRelisted,
    /// IPPools changed.
    Pools,
    /// Nodes changed (their addresses are reserved).
    Nodes,
    /// A Namespace changed (its labels feed namespace selectors).
    Namespace(String),
}

/// The stores the reflectors fill.
#[derive(Clone)]
pub struct Stores {
    /// Services, all namespaces (slimmed, see [`crate::status::slim`]).
    pub services: Store<Service>,
    /// IPPools.
    pub pools: Store<IPPool>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
    /// Nodes.
    pub nodes: Store<Node>,
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Which Services are ours.
    pub class: ClassPolicy,
    /// Identity (Events' reportingInstance).
    pub identity: String,
    /// API writes in flight at most.
    pub write_concurrency: usize,
}

struct WriteDone {
    key: ServiceKey,
    ok: bool,
}

/// The state owned by the reconcile task.
pub struct Engine {
    client: kube::Client,
    cfg: EngineConfig,
    stores: Stores,
    metrics: Metrics,
    readiness: Readiness,
    alloc: Allocator,
    leading: bool,
    /// Cancelled when leadership is lost: writes not yet sent are dropped.
    term: CancellationToken,
    queue: VecDeque<ServiceKey>,
    queued: HashSet<ServiceKey>,
    /// Services whose allocation failed: re-checked whenever addresses are freed.
    pending: BTreeSet<ServiceKey>,
    /// Status writes on their way (`None`: a clear).
    in_flight: HashMap<ServiceKey, Option<Desired>>,
    /// Last Event per Service, so a resync never repeats one.
    last_event: HashMap<ServiceKey, (&'static str, String)>,
    /// Last bad-annotation warning per Service.
    warned: HashMap<ServiceKey, String>,
    last_specs: Option<Vec<PoolSpec>>,
    last_reserved: Option<Vec<IpAddr>>,
    pool_written: HashMap<String, IPPoolStatus>,
    pools_due: Option<Instant>,
    synced: bool,
    sem: Arc<Semaphore>,
    done_tx: mpsc::UnboundedSender<WriteDone>,
    trigger_tx: mpsc::UnboundedSender<Trigger>,
}

impl Engine {
    /// Runs until `shutdown`. `leading` says when this replica may write.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        client: kube::Client,
        cfg: EngineConfig,
        stores: Stores,
        metrics: Metrics,
        readiness: Readiness,
        mut triggers: mpsc::UnboundedReceiver<Trigger>,
        trigger_tx: mpsc::UnboundedSender<Trigger>,
        mut leading: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut engine = Engine {
            client,
            sem: Arc::new(Semaphore::new(cfg.write_concurrency.max(1))),
            cfg,
            stores,
            metrics,
            readiness,
            alloc: Allocator::new(),
            leading: false,
            term: CancellationToken::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            pending: BTreeSet::new(),
            in_flight: HashMap::new(),
            last_event: HashMap::new(),
            warned: HashMap::new(),
            last_specs: None,
            last_reserved: None,
            pool_written: HashMap::new(),
            pools_due: None,
            synced: false,
            done_tx,
            trigger_tx,
        };
        // Caches first: nothing is decided from a partial view.
        let stores = engine.stores.clone();
        let ready = async {
            let _ = stores.services.wait_until_ready().await;
            let _ = stores.pools.wait_until_ready().await;
            let _ = stores.namespaces.wait_until_ready().await;
            let _ = stores.nodes.wait_until_ready().await;
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ready => {}
        }
        tracing::info!(
            services = engine.stores.services.state().len(),
            pools = engine.stores.pools.state().len(),
            "caches synced"
        );
        engine.readiness.set(true);
        let mut leading_now = *leading.borrow_and_update();
        if leading_now {
            engine.take_over();
        }
        loop {
            let pools_due = engine.pools_due;
            let busy = !engine.queue.is_empty();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                changed = leading.changed() => {
                    if changed.is_err() {
                        // The election ended (shutdown): stop writing.
                        engine.step_down();
                        shutdown.cancelled().await;
                        break;
                    }
                    let now = *leading.borrow_and_update();
                    if now != leading_now {
                        leading_now = now;
                        if now { engine.take_over() } else { engine.step_down() }
                    }
                }
                Some(done) = done_rx.recv() => engine.write_done(done),
                Some(t) = triggers.recv() => {
                    engine.on_trigger(t);
                    while let Ok(t) = triggers.try_recv() {
                        engine.on_trigger(t);
                    }
                }
                _ = sleep_until(pools_due), if pools_due.is_some() => engine.flush_pools(),
                _ = std::future::ready(()), if busy => engine.work(256),
            }
            engine.check_synced();
        }
        engine.term.cancel();
    }

    // === leadership ===

    /// Becomes the writer: rebuild the allocator from what the cluster already holds,
    /// then re-check every Service.
    fn take_over(&mut self) {
        let started = Instant::now();
        self.leading = true;
        self.metrics.leader.set(1);
        self.term = CancellationToken::new();
        self.alloc = Allocator::new();
        self.last_specs = None;
        self.last_reserved = None;
        self.pool_written.clear();
        self.synced = false;
        self.metrics.synced.set(0);
        self.readiness.set(false);
        // 1. pools, 2. reserved addresses: no stranding report matters yet.
        let specs = self.pool_specs();
        self.alloc.set_pools(specs.clone());
        self.last_specs = Some(specs);
        let reserved = self.node_ips();
        self.alloc.set_reserved(reserved.clone());
        self.last_reserved = Some(reserved);
        // 3. seed, oldest Service first, so the older holder wins a conflict.
        let mut held: Vec<Arc<Service>> = self
            .stores
            .services
            .state()
            .into_iter()
            .filter(|s| self.cfg.class.serves(s) && !live_ips(s).is_empty())
            .collect();
        held.sort_by(|a, b| {
            (
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                key_of(a),
            )
                .cmp(&(
                    b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    key_of(b),
                ))
        });
        let mut seeded = 0usize;
        for svc in &held {
            let key = key_of(svc);
            let ns = self.namespace_labels(&key.namespace);
            let request = base_request(svc, &ns);
            match self.alloc.assign(&key, &live_ips(svc), &request) {
                Ok(_) => seeded += 1,
                Err(e) => {
                    tracing::warn!(service = %key, error = %e, "existing address not kept; the Service will get a new one")
                }
            }
        }
        // 4. only now anything new.
        for svc in self.stores.services.state() {
            self.enqueue(key_of(&svc));
        }
        self.schedule_pools(Duration::ZERO);
        tracing::info!(seeded, of = held.len(), took = ?started.elapsed(), "leading: allocator seeded from Service status");
    }

    fn step_down(&mut self) {
        if self.leading {
            tracing::info!("no longer leading: standing by");
        }
        self.leading = false;
        self.metrics.leader.set(0);
        self.metrics.synced.set(0);
        self.term.cancel();
        self.alloc = Allocator::new();
        self.queue.clear();
        self.queued.clear();
        self.pending.clear();
        self.in_flight.clear();
        self.pools_due = None;
        self.synced = false;
        self.readiness.set(true);
    }

    fn check_synced(&mut self) {
        if self.leading && !self.synced && self.queue.is_empty() && self.in_flight.is_empty() {
            self.synced = true;
            self.metrics.synced.set(1);
            self.readiness.set(true);
            tracing::info!(
                services = self.alloc.services().len(),
                "every Service reconciled"
            );
        }
    }

    // === triggers ===

    fn on_trigger(&mut self, t: Trigger) {
        if !self.leading {
            return;
        }
        match t {
            Trigger::Service(key) => self.enqueue(key),
            Trigger::ServicesRelisted => {
                for key in self.alloc.services() {
                    self.enqueue(key);
                }
                for svc in self.stores.services.state() {
                    self.enqueue(key_of(&svc));
                }
            }
            Trigger::Pools => {
                let specs = self.pool_specs();
                if self.last_specs.as_ref() != Some(&specs) {
                    let report = self.alloc.set_pools(specs.clone());
                    self.last_specs = Some(specs);
                    self.after_pools_change(report);
                }
            }
            Trigger::Nodes => {
                let reserved = self.node_ips();
                if self.last_reserved.as_ref() != Some(&reserved) {
                    let report = self.alloc.set_reserved(reserved.clone());
                    self.last_reserved = Some(reserved);
                    self.after_pools_change(report);
                }
            }
            Trigger::Namespace(ns) => {
                for svc in self.stores.services.state() {
                    if svc.metadata.namespace.as_deref() == Some(ns.as_str()) {
                        self.enqueue(key_of(&svc));
                    }
                }
            }
        }
    }

    fn after_pools_change(&mut self, report: PoolsReport) {
        for (name, r) in &report.pools {
            if let Err(message) = r {
                tracing::warn!(pool = %name, %message, "IPPool invalid");
            }
        }
        for s in report.stranded {
            let ips = join(&s.released);
            tracing::warn!(service = %s.service, released = %ips, reason = %s.reason, "address stranded");
            if let Some(svc) = self.service(&s.service) {
                let note = Note::warning(
                    "IPStranded",
                    "Release",
                    format!("{ips} released: {}; allocating a new address", s.reason),
                );
                self.publish(&svc, note);
            }
            self.enqueue(s.service);
        }
        // A new or grown pool may serve anyone, pending or not: re-check all.
        for svc in self.stores.services.state() {
            self.enqueue(key_of(&svc));
        }
        self.schedule_pools(Duration::ZERO);
    }

    fn enqueue(&mut self, key: ServiceKey) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    /// Addresses were freed: Services waiting for one get another chance at once.
    fn freed(&mut self) {
        let pending: Vec<ServiceKey> = self.pending.iter().cloned().collect();
        for key in pending {
            self.enqueue(key);
        }
        self.schedule_pools(Duration::from_millis(300));
    }

    fn work(&mut self, batch: usize) {
        for _ in 0..batch {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            let started = Instant::now();
            self.reconcile(&key);
            self.metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
        }
    }

    // === reconcile ===

    /// Decides one Service: the allocator's answer, compared with the live status.
    fn reconcile(&mut self, key: &ServiceKey) {
        let Some(svc) = self.service(key) else {
            // Deleted: its addresses are free for anyone.
            if self.alloc.release(key).is_some() {
                self.freed();
            }
            self.pending.remove(key);
            self.last_event.remove(key);
            self.warned.remove(key);
            return;
        };
        if !self.cfg.class.serves(&svc) {
            self.not_ours(key, &svc);
            return;
        }
        let ns = self.namespace_labels(&key.namespace);
        let desired = match allocation_request(&svc, &ns) {
            Err(bad) => {
                // A garbage annotation changes nothing but says so, once.
                let text = bad.to_string();
                if self.warned.get(key) != Some(&text) {
                    self.warned.insert(key.clone(), text.clone());
                    tracing::warn!(service = %key, annotation = %bad.name, message = %bad.message, "bad annotation");
                    self.publish(
                        &svc,
                        Note::warning(
                            "InvalidAnnotation",
                            "ParseAnnotation",
                            format!("annotation {}: {}; nothing changed", bad.name, bad.message),
                        ),
                    );
                }
                match self.alloc.assignment(key) {
                    Some(held) => Desired::allocated(&held),
                    None => Desired::failed(None, REASON_INVALID_ANNOTATION, text),
                }
            }
            Ok(request) => {
                self.warned.remove(key);
                let before = self.alloc.assignment(key);
                match self.alloc.allocate(key, &request) {
                    Ok(got) => {
                        self.pending.remove(key);
                        if before.as_ref().is_some_and(|b| b.ips() != got.ips()) {
                            self.freed();
                        }
                        Desired::allocated(&got)
                    }
                    Err(e) => {
                        self.pending.insert(key.clone());
                        let held = self.alloc.assignment(key);
                        Desired::failed(held.as_ref(), e.reason(), e.to_string())
                    }
                }
            }
        };
        if up_to_date(&svc, &desired)
            || self
                .in_flight
                .get(key)
                .is_some_and(|d| d.as_ref() == Some(&desired))
        {
            return;
        }
        let note = if desired.allocated {
            Note::normal(
                "IPAllocated",
                "Allocate",
                format!("assigned {}", desired.message),
            )
        } else {
            self.metrics
                .allocation_failures
                .get_or_create(&ReasonLabels {
                    reason: desired.reason.clone(),
                })
                .inc();
            let keeping = if desired.ips.is_empty() {
                String::new()
            } else {
                format!(" (keeping {})", join(&desired.ips))
            };
            Note::warning(
                "AllocationFailed",
                "Allocate",
                format!("{}: {}{keeping}", desired.reason, desired.message),
            )
        };
        if desired.allocated {
            tracing::info!(service = %key, ips = %join(&desired.ips), "allocated");
        } else {
            tracing::warn!(service = %key, reason = %desired.reason, message = %desired.message, "allocation failed");
        }
        let body = apply_body(&svc, &desired, Time(Timestamp::now()));
        self.in_flight.insert(key.clone(), Some(desired));
        self.schedule_pools(Duration::from_millis(300));
        self.write(&svc, body, Some(note));
    }

    /// A Service that is not (or no longer) ours: release and clear what we wrote.
    fn not_ours(&mut self, key: &ServiceKey, svc: &Service) {
        self.pending.remove(key);
        self.warned.remove(key);
        let released = self.alloc.release(key);
        if released.is_some() {
            self.freed();
        }
        let ours_in_status =
            written_by_us(svc) && (!live_ips(svc).is_empty() || live_condition(svc).is_some());
        if !ours_in_status || self.in_flight.get(key).is_some_and(Option::is_none) {
            return;
        }
        let ips = released
            .map(|a| describe(&a))
            .unwrap_or_else(|| join(&live_ips(svc)));
        tracing::info!(service = %key, released = %ips, "no longer ours: released and status cleared");
        let note = Note::normal(
            "IPReleased",
            "Release",
            format!(
                "released {ips}: the Service is no longer a LoadBalancer of class {}",
                self.cfg.class.class
            ),
        );
        self.in_flight.insert(key.clone(), None);
        self.write(svc, clear_body(), Some(note));
    }

    // === writes ===

    fn write(&mut self, svc: &Service, body: Value, note: Option<Note>) {
        let key = key_of(svc);
        if let Some(n) = &note {
            self.last_event
                .insert(key.clone(), (n.reason, n.note.clone()));
        }
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let client = self.client.clone();
        let instance = self.cfg.identity.clone();
        let reference = svc.object_ref(&());
        let sem = self.sem.clone();
        let term = self.term.clone();
        let done = self.done_tx.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let ok = async {
                let _permit = sem.acquire().await.ok()?;
                if term.is_cancelled() {
                    return None;
                }
                let params = PatchParams::apply(FIELD_MANAGER_CONTROLLER).force();
                match api.patch_status(&key.name, &params, &Patch::Apply(&body)).await {
                    Ok(_) => metrics.status_writes.inc(),
                    Err(kube::Error::Api(e)) if e.code == 404 => return Some(true),
                    Err(e) => {
                        tracing::warn!(service = %key, error = %e, "status write failed; will retry");
                        return None;
                    }
                };
                if let Some(n) = note {
                    if let Err(e) = events::publish(&client, &instance, &reference, &n).await {
                        tracing::warn!(service = %key, error = %e, "publishing an Event failed");
                    }
                }
                Some(true)
            }
            .await
            .is_some();
            let _ = done.send(WriteDone { key, ok });
        });
    }

    fn write_done(&mut self, done: WriteDone) {
        self.in_flight.remove(&done.key);
        if !done.ok && self.leading && !self.term.is_cancelled() {
            // error policy: forget the event memory (it was not published) and retry.
            self.last_event.remove(&done.key);
            let tx = self.trigger_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(Trigger::Service(done.key));
            });
        }
    }

    /// Publishes `note` unless it is exactly the last Event of this Service.
    fn publish(&mut self, svc: &Service, note: Note) {
        let key = key_of(svc);
        if self
            .last_event
            .get(&key)
            .is_some_and(|(r, n)| *r == note.reason && *n == note.note)
        {
            return;
        }
        self.last_event
            .insert(key, (note.reason, note.note.clone()));
        let client = self.client.clone();
        let instance = self.cfg.identity.clone();
        let reference = svc.object_ref(&());
        let sem = self.sem.clone();
        let term = self.term.clone();
        tokio::spawn(async move {
            let Ok(_permit) = sem.acquire().await else {
                return;
            };
            if term.is_cancelled() {
                return;
            }
            if let Err(e) = events::publish(&client, &instance, &reference, &note).await {
                tracing::warn!(error = %e, "publishing an Event failed");
            }
        });
    }

    // === IPPool status and metrics ===

    fn schedule_pools(&mut self, after: Duration) {
        let at = Instant::now() + after;
        self.pools_due = Some(match self.pools_due {
            Some(due) if due <= at => due,
            _ => at,
        });
    }

    fn flush_pools(&mut self) {
        self.pools_due = None;
        if !self.leading {
            return;
        }
        let stats = self.alloc.all_pool_stats();
        self.metrics.set_pools(&stats);
        self.metrics
            .services_managed
            .set(i64::try_from(self.alloc.services().len()).unwrap_or(i64::MAX));
        let now = Time(Timestamp::now());
        for s in &stats {
            let Some(pool) = self.stores.pools.get(&ObjectRef::new(&s.name)) else {
                continue;
            };
            let status = pool_status(
                s,
                pool.status.as_ref(),
                pool.metadata.generation,
                now.clone(),
            );
            if pool.status.as_ref() == Some(&status)
                || self.pool_written.get(&s.name) == Some(&status)
            {
                continue;
            }
            self.pool_written.insert(s.name.clone(), status.clone());
            let api: Api<IPPool> = Api::all(self.client.clone());
            let name = s.name.clone();
            let term = self.term.clone();
            let tx = self.trigger_tx.clone();
            let body =
                json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "status": status});
            tokio::spawn(async move {
                if term.is_cancelled() {
                    return;
                }
                let params = PatchParams::apply(FIELD_MANAGER_CONTROLLER).force();
                if let Err(e) = api.patch_status(&name, &params, &Patch::Apply(&body)).await {
                    tracing::warn!(pool = %name, error = %e, "IPPool status write failed");
                    // Nudge a later flush.
                    let _ = tx.send(Trigger::Pools);
                }
            });
        }
    }

    // === store lookups ===

    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.stores
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn namespace_labels(&self, ns: &str) -> ironlb_ipam::Labels {
        self.stores
            .namespaces
            .get(&ObjectRef::new(ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    fn pool_specs(&self) -> Vec<PoolSpec> {
        let mut specs: Vec<PoolSpec> = self
            .stores
            .pools
            .state()
            .iter()
            .map(|p| pool_spec(p))
            .collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    fn node_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .stores
            .nodes
            .state()
            .iter()
            .flat_map(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.addresses.clone())
                    .unwrap_or_default()
            })
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .filter_map(|a| a.address.trim().parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }
}

/// A Service's allocator key.
pub fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
