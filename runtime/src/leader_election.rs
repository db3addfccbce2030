//! Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection.
//!
//! Only the leader writes; standbys keep their caches warm so a takeover is immediate.
//! The holder renews every `renew_interval`; a standby takes the Lease over once
//! `renewTime + leaseDurationSeconds` has passed. Conflicts on the Lease's
//! resourceVersion decide races, so at most one candidate holds it at any time.
//! On shutdown the holder releases the Lease so the standby does not wait it out.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the Lease lives and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity, usually the pod name.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
}

impl LeaseConfig {
    /// client-go's defaults scaled down: 15 s lease, renew every 2 s.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(2),
        }
    }
}

/// Runs the election until `shutdown`; `leading` is true while this candidate holds the
/// Lease. A holder that cannot renew for a whole lease duration steps down by itself.
pub async fn run(
    client: kube::Client,
    cfg: LeaseConfig,
    leading: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renew: Option<std::time::Instant> = None;
    loop {
        let now_leading = match try_acquire_or_renew(&api, &cfg).await {
            Ok(held) => {
                if held {
                    last_renew = Some(std::time::Instant::now());
                }
                held
            }
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "leader election: lease update failed");
                // Keep leading only while the lease we last renewed cannot have expired.
                last_renew.is_some_and(|t| t.elapsed() < cfg.lease_duration)
            }
        };
        if now_leading != *leading.borrow() {
            tracing::info!(lease = %cfg.name, identity = %cfg.identity, leading = now_leading, "leadership changed");
            leading.send_replace(now_leading);
        }
        if !now_leading {
            last_renew = None;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(cfg.renew_interval) => {}
        }
    }
    if *leading.borrow() {
        if let Err(e) = release(&api, &cfg).await {
            tracing::warn!(lease = %cfg.name, error = %e, "releasing the lease on shutdown failed");
        }
        leading.send_replace(false);
    }
}

/// One election round: returns whether this candidate holds the Lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(held_spec(cfg, now, 0, now)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let new_spec = if holder == cfg.identity {
        let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
        held_spec(cfg, acquired, transitions, now)
    } else if holder.is_empty() || expired(&spec, now) {
        held_spec(cfg, now, transitions + 1, now)
    } else {
        return Ok(false);
    };
    lease.spec = Some(new_spec);
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn held_spec(
    cfg: &LeaseConfig,
    acquired: Timestamp,
    transitions: i32,
    now: Timestamp,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.lease_duration.as_secs().max(1) as i32),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
    renewed
        .checked_add(duration)
        .map(|deadline| deadline < now)
        .unwrap_or(true)
}

async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let mut lease = api.get(&cfg.name).await?;
    if let Some(spec) = lease.spec.as_mut() {
        if spec.holder_identity.as_deref() == Some(&cfg.identity) {
            spec.holder_identity = None;
            spec.renew_time = None;
            api.replace(&cfg.name, &PostParams::default(), &lease)
                .await?;
        }
    }
    Ok(())
}
