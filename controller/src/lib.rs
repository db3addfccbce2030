//! ironlb-controller assigns external IPs from IPPools to LoadBalancer Services.
//!
//! Thin glue: the decisions live in the pure crates under `crates/` (the allocator in
//! `ironlb_ipam`, conversions in `ironlb_api::convert`) and in the pure modules
//! [`request`] (Service → allocation request) and [`status`] (what we own in a
//! Service's status). [`engine`] is the reconcile loop; this file wires reflectors,
//! leader election, metrics and the process together.
//!
//! RequireDualStack when only one family is available is an error, never half a
//! result. A Service that already holds one family and then asks for
//! RequireDualStack keeps the address it holds (an error never takes an address
//! away: that is the allocator's contract and what MetalLB users expect) and its
//! `ironlb.io/ip-allocated` condition turns False with reason `DualStackUnavailable`,
//! with a Warning Event saying so.

pub mod engine;
pub mod events;
pub mod metrics;
pub mod request;
pub mod status;

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use ironlb_api::IPPool;
use ironlb_runtime::health::Readiness;
use ironlb_runtime::leader_election::{self, LeaseConfig};
use ironlb_runtime::{CommonArgs, Process};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::{key_of, Engine, EngineConfig, Stores, Trigger};
use crate::metrics::Metrics;
use crate::request::ClassPolicy;

/// Command-line options of `ironlb-controller`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ironlb-controller",
    version,
    about = "IronLB: assigns external IPs from IPPools to LoadBalancer Services"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Namespace of the leader-election Lease (the controller's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ironlb-system")]
    pub namespace: String,

    /// Elect a leader among replicas through a Lease; only the leader writes.
    #[arg(long, env = "IRONLB_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ironlb-controller")]
    pub lease_name: String,

    /// Seconds a Lease stays valid without renewal (a dead leader's successor waits this long).
    #[arg(long, default_value_t = 15)]
    pub lease_duration_secs: u64,

    /// This replica's identity in the Lease and in Events (default: hostname-pid).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// The loadBalancerClass served.
    #[arg(long, default_value = ironlb_api::names::LOAD_BALANCER_CLASS)]
    pub class: String,

    /// Serve only Services naming the class explicitly, not those without a class.
    #[arg(long)]
    pub only_explicit_class: bool,

    /// API writes (status applies, Events) in flight at most.
    #[arg(long, default_value_t = 32)]
    pub write_concurrency: usize,
}

/// What [`run_with`] needs besides a client: the parsed flags, minus process concerns.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which Services are ours.
    pub class: ClassPolicy,
    /// Identity in the Lease and Events.
    pub identity: String,
    /// The Lease, or `None` to lead unconditionally (a single replica).
    pub lease: Option<LeaseConfig>,
    /// API writes in flight at most.
    pub write_concurrency: usize,
}

impl Settings {
    /// Settings from the command line.
    pub fn from_args(args: &Args) -> Settings {
        let identity = args.pod_name.clone().unwrap_or_else(default_identity);
        let lease = args.leader_elect.then(|| {
            let mut cfg = LeaseConfig::new(&args.namespace, &args.lease_name, &identity);
            cfg.lease_duration = Duration::from_secs(args.lease_duration_secs.max(1));
            cfg.renew_interval =
                (cfg.lease_duration / 5).clamp(Duration::from_millis(200), Duration::from_secs(2));
            cfg
        });
        Settings {
            class: ClassPolicy {
                class: args.class.clone(),
                only_explicit: args.only_explicit_class,
            },
            identity,
            lease,
            write_concurrency: args.write_concurrency,
        }
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "ironlb-controller".into());
    format!("{host}-{}", std::process::id())
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("ironlb");
    let metrics = Metrics::register(&mut registry);
    let process = Process::start("ironlb-controller", &args.common, registry).await?;
    let settings = Settings::from_args(&args);
    tracing::info!(identity = %settings.identity, leader_elect = settings.lease.is_some(), class = %settings.class.class, only_explicit = settings.class.only_explicit, "controller settings");
    run_with(
        process.client,
        settings,
        process.readiness,
        process.shutdown,
        metrics,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// The controller itself, for the binary and for in-process tests: reflectors,
/// leader election and the reconcile loop, until `shutdown` is cancelled.
pub async fn run_with(
    client: kube::Client,
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
    metrics: Metrics,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (pool_store, pool_writer) = reflector::store::<IPPool>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let (node_store, node_writer) = reflector::store::<Node>();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(reflect(
        Api::<Service>::all(client.clone()),
        svc_writer,
        status::slim,
        |ev| match ev {
            watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
                Some(Trigger::Service(key_of(s)))
            }
            watcher::Event::InitDone => Some(Trigger::ServicesRelisted),
            _ => None,
        },
        tx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(reflect(
        Api::<IPPool>::all(client.clone()),
        pool_writer,
        |p| p.metadata.managed_fields = None,
        |ev| match ev {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
                Some(Trigger::Pools)
            }
            _ => None,
        },
        tx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(reflect(
        Api::<Namespace>::all(client.clone()),
        ns_writer,
        |n| {
            n.metadata.managed_fields = None;
            n.metadata.annotations = None;
        },
        |ev| match ev {
            watcher::Event::Apply(n) | watcher::Event::Delete(n) => {
                n.metadata.name.clone().map(Trigger::Namespace)
            }
            watcher::Event::InitDone => Some(Trigger::ServicesRelisted),
            _ => None,
        },
        tx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(reflect(
        Api::<Node>::all(client.clone()),
        node_writer,
        |n| {
            // Only addresses matter here; images and conditions are big.
            n.metadata.managed_fields = None;
            n.metadata.annotations = None;
            if let Some(s) = n.status.as_mut() {
                s.images = None;
                s.conditions = None;
                s.node_info = None;
                s.capacity = None;
                s.allocatable = None;
            }
        },
        |ev| match ev {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
                Some(Trigger::Nodes)
            }
            _ => None,
        },
        tx.clone(),
        shutdown.clone(),
    ));

    let (lead_tx, lead_rx) = watch::channel(settings.lease.is_none());
    if let Some(lease) = settings.lease.clone() {
        tasks.spawn(leader_election::run(
            client.clone(),
            lease,
            lead_tx,
            shutdown.clone(),
        ));
    } else {
        // Keep the sender alive: a closed channel means "election over".
        let keep = shutdown.clone();
        tasks.spawn(async move {
            keep.cancelled().await;
            drop(lead_tx);
        });
    }
    let cfg = EngineConfig {
        class: settings.class.clone(),
        identity: settings.identity.clone(),
        write_concurrency: settings.write_concurrency,
    };
    let stores = Stores {
        services: svc_store,
        pools: pool_store,
        namespaces: ns_store,
        nodes: node_store,
    };
    Engine::run(
        client,
        cfg,
        stores,
        metrics,
        readiness.clone(),
        rx,
        tx,
        lead_rx,
        shutdown.clone(),
    )
    .await;
    readiness.set(false);
    // The election task releases the Lease on shutdown; give it the chance.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// Drives one reflector until `shutdown`, turning its events into [`Trigger`]s.
async fn reflect<K>(
    api: Api<K>,
    writer: Writer<K>,
    slim: fn(&mut K),
    trigger: fn(&watcher::Event<K>) -> Option<Trigger>,
    tx: mpsc::UnboundedSender<Trigger>,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(slim)
        .reflect(writer);
    futures::pin_mut!(stream);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = stream.next() => match ev {
                Some(Ok(ev)) => {
                    if let Some(t) = trigger(&ev) {
                        let _ = tx.send(t);
                    }
                }
                Some(Err(e)) => tracing::warn!(kind = %K::kind(&Default::default()), error = %e, "watch failed; retrying"),
                None => break,
            }
        }
    }
}
