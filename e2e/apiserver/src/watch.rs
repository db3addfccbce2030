//! Watch streams: initial state or history replay, live changes filtered by namespace and
//! selectors (objects moving in/out of a selector become ADDED/DELETED), BOOKMARKs,
//! `sendInitialEvents` with the `k8s.io/initial-events-end` bookmark, timeouts, and the
//! ERROR event with a 410 Status for a too-old resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::convert;
use crate::error::ApiError;
use crate::ops::{Cluster, ListOpts};
use crate::registry::ResourceInfo;
use crate::store::{Change, ChangeKind};

/// Parameters of one watch request.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    /// Namespace filter (None: all namespaces).
    pub namespace: Option<String>,
    /// Selectors.
    pub query: ListOpts,
    /// `resourceVersion` as sent.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// The client asked for Table objects (`kubectl get -w`).
    pub table: bool,
    /// The client asked for PartialObjectMetadata (kube-rs `metadata_watcher`).
    pub metadata_only: bool,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    object: &'a Value,
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&Event { ty, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct Filter {
    table: bool,
    metadata_only: bool,
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    query: ListOpts,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str()) {
                return false;
            }
        }
        self.query.labels.matches_object(obj) && self.query.fields.matches(obj)
    }

    /// The event (if any) this watcher sees for a change.
    fn event(&self, change: &Change) -> Option<Bytes> {
        let now = convert::from_storage(&self.info, &change.object);
        let now_matches = self.matches(&now);
        let before_matches = change
            .previous
            .as_ref()
            .map(|p| self.matches(&convert::from_storage(&self.info, p)))
            .unwrap_or(false);
        let ty = match change.kind {
            ChangeKind::Added if now_matches => "ADDED",
            ChangeKind::Modified => match (before_matches, now_matches) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
            ChangeKind::Deleted if before_matches || now_matches => "DELETED",
            _ => return None,
        };
        if !self.table && !self.metadata_only && matches!(now, std::borrow::Cow::Borrowed(_)) {
            // The common case: many watchers, one encoding.
            let encoded = change.object_json();
            let mut out = Vec::with_capacity(encoded.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(ty.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(encoded);
            out.extend_from_slice(b"}\n");
            return Some(Bytes::from(out));
        }
        Some(self.line(ty, &now))
    }

    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        if self.table {
            line(
                ty,
                &crate::table::table(&self.info, std::slice::from_ref(obj), None, None),
            )
        } else if self.metadata_only {
            line(ty, &crate::table::partial_metadata(obj))
        } else {
            line(ty, obj)
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": md}),
        )
    }
}

/// Start a watch. Returns a channel of already-encoded event lines; the producing task
/// ends when the client goes away, the timeout passes, the server shuts down, the
/// resource stops being served, or the watcher falls too far behind (the client then
/// resumes from its last resourceVersion, as with a real server).
pub fn start(
    cluster: Arc<Cluster>,
    info: Arc<ResourceInfo>,
    params: WatchParams,
    bookmark_every: Duration,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let filter = Filter {
        table: params.table,
        metadata_only: params.metadata_only,
        info: info.clone(),
        namespace: params.namespace.clone(),
        query: params.query.clone(),
    };
    let rv_param = params.resource_version.clone().unwrap_or_default();
    let since = match rv_param.as_str() {
        "" | "0" => None,
        n => match n.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                let err = ApiError::BadRequest(format!("invalid resource version {n:?}"));
                let _ = tx.try_send(line("ERROR", &err.to_status()));
                return rx;
            }
        },
    };
    let initial = since.is_none() || params.send_initial_events;
    let key = Cluster::key_of(&info);
    // Snapshot and subscription under one lock: nothing is missed or seen twice.
    let (snapshot, sub) = {
        let mut w = cluster.store.write();
        let snapshot: Vec<Arc<Value>> = if initial {
            w.collection(&key)
                .map(|c| {
                    c.range(params.namespace.as_deref(), None)
                        .map(|(_, o)| o.clone())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let sub = w.subscribe(&key, if initial { None } else { since });
        (snapshot, sub)
    };
    let mut sub = match sub {
        Ok(s) => s,
        Err(oldest) => {
            let err = ApiError::Gone {
                requested: since.unwrap_or(0),
                oldest,
            };
            let _ = tx.try_send(line("ERROR", &err.to_status()));
            return rx;
        }
    };
    tokio::spawn(async move {
        let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
        for obj in &snapshot {
            let view = convert::from_storage(&filter.info, obj);
            if filter.matches(&view) && tx.send(filter.line("ADDED", &view)).await.is_err() {
                return;
            }
        }
        drop(snapshot);
        if params.send_initial_events
            && params.bookmarks
            && tx.send(filter.bookmark(sub.rv, true)).await.is_err()
        {
            return;
        }
        for change in std::mem::take(&mut sub.backlog) {
            if let Some(ev) = filter.event(&change) {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = timeout => return,
                change = sub.rx.recv() => match change {
                    Ok(change) => {
                        if let Some(ev) = filter.event(&change) {
                            if tx.send(ev).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "watcher fell behind; closing its stream");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if params.bookmarks => {
                    // Everything up to `rv` is already in the channel: drain, then mark.
                    let rv = cluster.store.read().rv();
                    loop {
                        match sub.rx.try_recv() {
                            Ok(change) => {
                                if let Some(ev) = filter.event(&change) {
                                    if tx.send(ev).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    if tx.send(filter.bookmark(rv, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
