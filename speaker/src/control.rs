//! The control loop: watches → [`crate::plan`] → announcers, status conditions and
//! Events. Recomputes on every object change and, at once, on every membership change
//! (that is the failover path), plus every few seconds for interface changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use ironlb_api::names::{CONDITION_ANNOUNCED, FIELD_MANAGER_SPEAKER};
use ironlb_api::{IPPool, L2Announcement};
use ironlb_l2::{AnnouncePolicy, OwnedIps};
use ironlb_runtime::Process;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch, Notify};

use crate::announcer::{local_interfaces, InterfaceAnnouncer};
use crate::membership::{self, MembershipConfig};
use crate::metrics::Metrics;
use crate::plan::{self, Policy, ServiceKey, World};
use crate::report::{self, Report};
use crate::Args;

/// Recompute at least this often (new interfaces, addresses).
const PERIODIC: Duration = Duration::from_secs(5);

/// Starts a reflector for `api` and returns its store; every event pokes `notify`.
fn reflect<K>(api: Api<K>, config: watcher::Config, notify: Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(kind = %K::kind(&K::DynamicType::default()), error = %e, "watch error");
            }
            notify.notify_one();
        }
    });
    reader
}

fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|k| K::clone(k)).collect()
}

/// Reads the heartbeat key, waiting for the Secret to exist.
async fn load_key(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut warned = false;
    loop {
        match api.get_opt(name).await {
            Ok(Some(secret)) => {
                let key = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("key"))
                    .map(|b| b.0.clone())
                    .or_else(|| {
                        secret
                            .string_data
                            .as_ref()
                            .and_then(|d| d.get("key"))
                            .map(|s| s.as_bytes().to_vec())
                    })
                    .filter(|k| !k.is_empty())
                    .with_context(|| format!("Secret {ns}/{name} has no non-empty key `key`"))?;
                return Ok(key);
            }
            Ok(None) | Err(_) if !warned => {
                warned = true;
                tracing::warn!(secret = %format!("{ns}/{name}"), "waiting for the memberlist Secret");
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One status write (and maybe an Event), done in order by the writer task.
struct Write {
    service: ServiceKey,
    report: Option<Report>,
    event: Option<Event>,
}

/// Runs the speaker until shutdown.
pub async fn run(args: Args, process: Process, metrics: Metrics) -> anyhow::Result<()> {
    let client = process.client.clone();
    let me = args.node_name.clone();
    let (secret_ns, secret_name) = args.secret()?;
    let policy = Policy {
        external_ips_enabled: args.externalips_enabled,
        external_ips_allowed: args.externalips_allowed_cidr.clone(),
    };
    let announce_policy = AnnouncePolicy {
        refresh: (!args.announce_refresh.is_zero()).then_some(args.announce_refresh),
        ..AnnouncePolicy::default()
    };

    let key = tokio::select! {
        k = load_key(&client, &secret_ns, &secret_name) => k?,
        _ = process.shutdown.cancelled() => return Ok(()),
    };

    let notify = Arc::new(Notify::new());
    let services = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        notify.clone(),
    );
    let slices = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        notify.clone(),
    );
    let nodes = reflect(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        notify.clone(),
    );
    let l2as = reflect(
        Api::<L2Announcement>::all(client.clone()),
        watcher::Config::default(),
        notify.clone(),
    );
    let pools = reflect(
        Api::<IPPool>::all(client.clone()),
        watcher::Config::default(),
        notify.clone(),
    );
    let pods = reflect(
        Api::<Pod>::namespaced(client.clone(), &args.namespace),
        watcher::Config::default().labels(&args.speaker_selector),
        notify.clone(),
    );

    // Membership runs beside the loop; it learns peers from the Pods' store.
    let (peers_tx, peers_rx) = watch::channel(BTreeMap::new());
    let (live_tx, mut live_rx) = watch::channel(BTreeSet::from([me.clone()]));
    let socket = membership::bind(args.heartbeat_port)
        .await
        .with_context(|| format!("binding the heartbeat port {}", args.heartbeat_port))?;
    // Membership stops after the announcers (see the end of this function), not with
    // the process token: peers must not take over while we still answer.
    let membership_stop = tokio_util::sync::CancellationToken::new();
    let _stop_on_exit = membership_stop.clone().drop_guard();
    let membership_task = tokio::spawn(membership::run(
        MembershipConfig {
            node: me.clone(),
            key: Arc::new(key),
            port: args.heartbeat_port,
            interval: args.heartbeat_interval,
            dead_after: args.dead_after,
        },
        socket,
        peers_rx,
        live_tx,
        metrics.clone(),
        membership_stop.clone(),
    ));

    tokio::select! {
        r = async {
            services.wait_until_ready().await?;
            slices.wait_until_ready().await?;
            nodes.wait_until_ready().await?;
            l2as.wait_until_ready().await?;
            pools.wait_until_ready().await?;
            pods.wait_until_ready().await
        } => r.context("waiting for the watches")?,
        _ = process.shutdown.cancelled() => return Ok(()),
    }
    tracing::info!(node = %me, "watches ready");
    // Hand membership the peers and let it publish its first live set before deciding
    // anything: deciding with only ourselves live would claim every IP for a moment.
    peers_tx.send_replace(plan::peers_from_pods(&owned(&pods)));
    let _ = tokio::time::timeout(args.heartbeat_interval * 3, live_rx.changed()).await;

    let (writes_tx, writes_rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(client.clone(), me.clone(), writes_rx));

    let mut state = LoopState {
        me: me.clone(),
        policy,
        announce_policy,
        // Long enough for the first heartbeats after a reconnect to correct ownership.
        link_up_hold: (args.heartbeat_interval * 3).max(Duration::from_millis(300)),
        interface_override: args.interfaces.clone(),
        announcers: BTreeMap::new(),
        open_failures: HashSet::new(),
        written: HashMap::new(),
        refused_reported: HashSet::new(),
        metrics: metrics.clone(),
        writes: writes_tx,
    };
    let mut trigger = "start";
    loop {
        let svcs = owned(&services);
        let pod_list = owned(&pods);
        let peers = plan::peers_from_pods(&pod_list);
        peers_tx.send_if_modified(|p| {
            if *p != peers {
                *p = peers.clone();
                true
            } else {
                false
            }
        });
        let live = live_rx.borrow_and_update().clone();
        let (slice_list, node_list, l2a_list, pool_list) =
            (owned(&slices), owned(&nodes), owned(&l2as), owned(&pools));
        let world = World {
            services: &svcs,
            slices: &slice_list,
            nodes: &node_list,
            announcements: &l2a_list,
            pools: &pool_list,
        };
        metrics
            .recomputes
            .get_or_create(&[("trigger", trigger)])
            .inc();
        state.apply(&world, &live);
        process.readiness.set(true);

        trigger = tokio::select! {
            _ = process.shutdown.cancelled() => break,
            changed = live_rx.changed() => {
                if changed.is_err() { break; }
                "membership"
            }
            _ = notify.notified() => {
                // Let a burst of watch events land before recomputing.
                tokio::time::sleep(Duration::from_millis(20)).await;
                "objects"
            }
            _ = tokio::time::sleep(PERIODIC) => "periodic",
        };
    }
    // Stop answering before exiting, then let membership say goodbye so the peers take
    // over at once; the new owner announces itself.
    for a in state.announcers.values() {
        a.set_owned(OwnedIps::new());
    }
    membership_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), membership_task).await;
    state.announcers.clear();
    Ok(())
}

struct LoopState {
    me: String,
    policy: Policy,
    announce_policy: AnnouncePolicy,
    link_up_hold: Duration,
    interface_override: Vec<String>,
    announcers: BTreeMap<String, InterfaceAnnouncer>,
    open_failures: HashSet<String>,
    /// What this speaker last wrote per Service, with the condition the store showed
    /// then: an unchanged report is not rewritten while the store has not caught up,
    /// but is rewritten if someone else's write replaced it since.
    written: HashMap<Instance, (Condition, Option<Condition>)>,
    /// The refused external IPs (Service, "ip why") of the last plan this speaker
    /// reported for: an Event goes out for each new one, and one that went away and came
    /// back, or whose Service was created again, gets one again.
    refused_reported: HashSet<(Instance, String)>,
    metrics: Metrics,
    writes: mpsc::UnboundedSender<Write>,
}

impl LoopState {
    fn apply(&mut self, world: &World<'_>, live: &BTreeSet<String>) {
        let the_plan = plan::plan(world, &self.policy, |n| live.contains(n));
        let local = local_interfaces();
        let (per_iface, stranded) =
            plan::owned_per_interface(&the_plan, &self.me, world, &local, &self.interface_override);

        // Announcers first: this is the failover path.
        self.announcers.retain(|name, a| {
            let keep = a.is_alive() && local.iter().any(|i| &i.name == name);
            if !keep {
                tracing::warn!(iface = %name, "announcer gone; will reopen if needed");
            }
            keep
        });
        for (name, ips) in &per_iface {
            if !self.announcers.contains_key(name) {
                match InterfaceAnnouncer::open(
                    name,
                    self.announce_policy.clone(),
                    self.link_up_hold,
                    self.metrics.clone(),
                ) {
                    Ok(a) => {
                        self.open_failures.remove(name);
                        self.announcers.insert(name.clone(), a);
                    }
                    Err(e) => {
                        if self.open_failures.insert(name.clone()) {
                            tracing::error!(error = %e, "cannot announce");
                        }
                        continue;
                    }
                }
            }
            let a = &self.announcers[name];
            if a.owned() != *ips {
                tracing::info!(iface = %name, ips = ?ips.iter().collect::<Vec<_>>(), "announcing");
            }
            a.set_owned(ips.clone());
        }
        for (name, a) in &self.announcers {
            if !per_iface.contains_key(name) && !a.owned().is_empty() {
                tracing::info!(iface = %name, "no longer announcing anything");
                a.set_owned(OwnedIps::new());
            }
        }
        let announced: BTreeSet<IpAddr> = per_iface.values().flat_map(|o| o.iter()).collect();
        self.metrics.ips_announced.set(announced.len() as i64);
        self.metrics.ips_stranded.set(stranded.len() as i64);

        // Then what people see.
        let mut my_ifaces: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for ip in the_plan.owned_by(&self.me) {
            my_ifaces.insert(ip, Vec::new());
        }
        for (name, ips) in &per_iface {
            for ip in ips.iter() {
                my_ifaces.entry(ip).or_default().push(name.clone());
            }
        }
        let reporter = plan::reporter(live.iter().map(String::as_str));
        let by_key: HashMap<ServiceKey, &Service> = world
            .services
            .iter()
            .map(|s| (ServiceKey::of(s), s))
            .collect();
        let instance = |key: &ServiceKey| {
            let uid = by_key.get(key).and_then(|s| s.metadata.uid.clone());
            (key.clone(), uid)
        };
        for r in report::reports(&the_plan, &self.me, reporter, &my_ifaces) {
            let current = by_key.get(&r.service).and_then(|s| current_condition(s));
            let want = (r.announced, r.reason.clone(), r.message.clone());
            let service = instance(&r.service);
            if current.as_ref() == Some(&want)
                || self.written.get(&service) == Some(&(want.clone(), current.clone()))
            {
                continue;
            }
            self.written.insert(service, (want, current));
            let event = Event {
                type_: if r.announced {
                    EventType::Normal
                } else {
                    EventType::Warning
                },
                reason: if r.announced {
                    "Announced".into()
                } else {
                    "NotAnnounced".into()
                },
                note: Some(r.message.clone()),
                action: "Announce".into(),
                secondary: None,
            };
            let _ = self.writes.send(Write {
                service: r.service.clone(),
                report: Some(r),
                event: Some(event),
            });
        }
        // Only Services that still exist are remembered: entries for deleted ones would
        // pile up for the speaker's lifetime.
        self.written
            .retain(|(key, uid), _| by_key.get(key).is_some_and(|s| s.metadata.uid == *uid));
        let reported = std::mem::take(&mut self.refused_reported);
        if reporter == Some(self.me.as_str()) {
            for refused in &the_plan.refused {
                let key = (
                    instance(&refused.service),
                    format!("{} {}", refused.ip, refused.why),
                );
                let new = !reported.contains(&key);
                self.refused_reported.insert(key);
                if new {
                    let _ = self.writes.send(Write {
                        service: refused.service.clone(),
                        report: None,
                        event: Some(Event {
                            type_: EventType::Warning,
                            reason: "ExternalIPRefused".into(),
                            note: Some(format!(
                                "externalIP {} not announced: {}",
                                refused.ip, refused.why
                            )),
                            action: "Announce".into(),
                            secondary: None,
                        }),
                    });
                }
            }
        }
    }
}

/// (status, reason, message) of a condition.
type Condition = (bool, String, String);

/// A Service as one object: its name and UID (one created again under the same name is
/// another, and gets its condition and Events afresh).
type Instance = (ServiceKey, Option<String>);

fn current_condition(svc: &Service) -> Option<Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_ANNOUNCED)
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
}

/// Writes conditions (server-side apply, field manager `ironlb-speaker`: the
/// controller's own fields under its manager are untouched) and Events, in order.
async fn writer(client: kube::Client, me: String, mut rx: mpsc::UnboundedReceiver<Write>) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER_SPEAKER.into(),
            instance: Some(me),
        },
    );
    while let Some(w) = rx.recv().await {
        let api: Api<Service> = Api::namespaced(client.clone(), &w.service.namespace);
        let svc = match api.get_opt(&w.service.name).await {
            Ok(Some(svc)) => svc,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(service = %w.service, error = %e, "reading the Service");
                continue;
            }
        };
        if let Some(r) = &w.report {
            let status = if r.announced { "True" } else { "False" };
            let previous = svc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION_ANNOUNCED));
            let since = previous
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )
                });
            let patch = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": w.service.name, "namespace": w.service.namespace},
                "status": {"conditions": [{
                    "type": CONDITION_ANNOUNCED,
                    "status": status,
                    "reason": r.reason,
                    "message": r.message,
                    "lastTransitionTime": since,
                    "observedGeneration": svc.metadata.generation,
                }]},
            });
            let params = PatchParams::apply(FIELD_MANAGER_SPEAKER).force();
            if let Err(e) = api
                .patch_status(&w.service.name, &params, &Patch::Apply(&patch))
                .await
            {
                tracing::warn!(service = %w.service, error = %e, "writing the announced condition");
            }
        }
        if let Some(ev) = &w.event {
            if let Err(e) = recorder.publish(ev, &svc.object_ref(&())).await {
                tracing::debug!(service = %w.service, error = %e, "publishing an Event");
            }
        }
    }
}
