//! Object storage: one collection per resource, a cluster-wide resourceVersion, a bounded
//! history of changes per collection (for watch resume) and a broadcast channel per
//! collection (for live watch fan-out).
//!
//! Every change is made under the write lock and is pushed to the history and the
//! broadcast channel before the lock is released, so a watcher that takes a snapshot and
//! subscribes under one read lock sees every later change exactly once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::registry::ResKey;
use crate::services::ServiceAllocator;

/// Kind of a change, as in watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl ChangeKind {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for deletes: the last state, with the delete's RV).
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions in watches).
    pub previous: Option<Arc<Value>>,
    /// The object's JSON, encoded once for every watcher that sends it unchanged.
    encoded: std::sync::OnceLock<bytes::Bytes>,
}

impl Change {
    /// The stored object as JSON, encoded on first use.
    pub fn object_json(&self) -> &bytes::Bytes {
        self.encoded.get_or_init(|| {
            bytes::Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default())
        })
    }
}

/// Objects keyed by (namespace, name); cluster-scoped objects use namespace "".
pub type ObjKey = (String, String);

/// One resource's objects and change log.
#[derive(Debug)]
pub struct Collection {
    /// The current objects.
    pub objects: BTreeMap<ObjKey, Arc<Value>>,
    history: VecDeque<Arc<Change>>,
    /// Watches may resume from any resourceVersion >= this.
    oldest: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Collection {
    fn new() -> Collection {
        Collection {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 0,
            tx: broadcast::channel(8192).0,
        }
    }

    /// Objects of a namespace (or all when `ns` is None), starting after `after`.
    pub fn range<'a>(
        &'a self,
        ns: Option<&'a str>,
        after: Option<ObjKey>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        let start = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |((o_ns, _), _)| ns.is_none_or(|n| n == o_ns))
    }
}

/// A watch subscription taken atomically with the state it starts from.
pub struct Subscription {
    /// Changes after the requested resourceVersion still in the history.
    pub backlog: Vec<Arc<Change>>,
    /// Live changes from now on.
    pub rx: broadcast::Receiver<Arc<Change>>,
    /// The cluster resourceVersion at subscription time.
    pub rv: u64,
}

/// The mutable state behind the lock.
#[derive(Debug)]
pub struct Inner {
    rv: u64,
    collections: HashMap<ResKey, Collection>,
    history_limit: usize,
    /// Service clusterIP and nodePort allocation state.
    pub services: ServiceAllocator,
    /// uid of every stored object.
    live_uids: HashSet<String>,
    /// owner uid → objects naming it in `metadata.ownerReferences` (garbage collection).
    dependents: HashMap<String, HashSet<Located>>,
}

/// Where an object lives: collection and (namespace, name).
pub type Located = (ResKey, String, String);

fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

impl Inner {
    /// The current cluster-wide resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// A collection, if it has ever been used.
    pub fn collection(&self, key: &ResKey) -> Option<&Collection> {
        self.collections.get(key)
    }

    fn collection_mut(&mut self, key: &ResKey) -> &mut Collection {
        self.collections
            .entry(key.clone())
            .or_insert_with(Collection::new)
    }

    /// One object.
    pub fn get(&self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.collections
            .get(key)?
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    fn record(&mut self, key: &ResKey, change: Change) {
        let limit = self.history_limit;
        let coll = self.collection_mut(key);
        let change = Arc::new(change);
        coll.history.push_back(change.clone());
        while coll.history.len() > limit {
            if let Some(old) = coll.history.pop_front() {
                coll.oldest = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = coll.tx.send(change);
    }

    /// Store an object (create or replace), giving it the next resourceVersion.
    pub fn put(&mut self, key: &ResKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let obj = Arc::new(obj);
        let previous = self
            .collection_mut(key)
            .objects
            .insert((ns.clone(), name.clone()), obj.clone());
        let here: Located = (key.clone(), ns, name);
        if let Some(prev) = &previous {
            self.unindex(prev, &here);
        }
        self.index(&obj, here);
        let kind = if previous.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(
            key,
            Change {
                rv,
                kind,
                object: obj.clone(),
                previous,
                encoded: Default::default(),
            },
        );
        obj
    }

    /// Remove an object; the DELETED event carries a new resourceVersion.
    pub fn remove(&mut self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .collection_mut(key)
            .objects
            .remove(&(ns.to_string(), name.to_string()))?;
        self.unindex(&old, &(key.clone(), ns.to_string(), name.to_string()));
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let last = Arc::new(last);
        self.record(
            key,
            Change {
                rv,
                kind: ChangeKind::Deleted,
                object: last.clone(),
                previous: Some(old),
                encoded: Default::default(),
            },
        );
        Some(last)
    }

    fn index(&mut self, obj: &Value, here: Located) {
        if let Some(uid) = uid_of(obj) {
            self.live_uids.insert(uid.to_string());
        }
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(here.clone());
        }
    }

    fn unindex(&mut self, obj: &Value, here: &Located) {
        if let Some(uid) = uid_of(obj) {
            self.live_uids.remove(uid);
        }
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(here);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
    }

    /// Whether an object with this uid is stored.
    pub fn is_live(&self, uid: &str) -> bool {
        self.live_uids.contains(uid)
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<Located> {
        self.dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether every owner of `obj` is gone (it has owners, none stored).
    pub fn orphaned(&self, obj: &Value) -> bool {
        let mut owners = owner_uids(obj).peekable();
        owners.peek().is_some() && owners.all(|u| !self.is_live(u))
    }

    /// Drop a whole collection (a CRD went away); its watchers see their stream end.
    pub fn drop_collection(&mut self, key: &ResKey) {
        let gone: Vec<(ObjKey, Arc<Value>)> = self
            .collections
            .remove(key)
            .map(|c| c.objects.into_iter().collect())
            .unwrap_or_default();
        for ((ns, name), obj) in gone {
            self.unindex(&obj, &(key.clone(), ns, name));
        }
    }

    /// Subscribe to a collection's changes after `since` (None: from now).
    /// Err(oldest) when `since` is older than the history holds.
    pub fn subscribe(&mut self, key: &ResKey, since: Option<u64>) -> Result<Subscription, u64> {
        let rv = self.rv;
        let coll = self.collection_mut(key);
        let backlog = match since {
            None => Vec::new(),
            Some(n) if n < coll.oldest => return Err(coll.oldest),
            Some(n) => coll.history.iter().filter(|c| c.rv > n).cloned().collect(),
        };
        Ok(Subscription {
            backlog,
            rx: coll.tx.subscribe(),
            rv,
        })
    }
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    inner: RwLock<Inner>,
}

impl Store {
    /// An empty store; `history_limit` changes per collection are kept for watch resume.
    pub fn new(services: ServiceAllocator, history_limit: usize) -> Store {
        Store {
            inner: RwLock::new(Inner {
                rv: 1,
                collections: HashMap::new(),
                history_limit,
                services,
                live_uids: HashSet::new(),
                dependents: HashMap::new(),
            }),
        }
    }

    /// Shared access.
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive access; every multi-step write (read-check-write) happens under one guard.
    pub fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every object of a resource (for tests).
    pub fn objects(&self, key: &ResKey) -> Vec<Arc<Value>> {
        self.read()
            .collection(key)
            .map(|c| c.objects.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limit: usize) -> Store {
        Store::new(
            ServiceAllocator::new(
                "198.18.0.0/16".parse().unwrap(),
                "2001:db8:ffff::/112".parse().unwrap(),
            ),
            limit,
        )
    }

    fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    fn key() -> ResKey {
        ResKey {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn resource_versions_increase_across_puts_and_deletes() {
        let s = store(10);
        let mut w = s.write();
        let a = w.put(&key(), cm("a", "x"));
        let b = w.put(&key(), cm("a", "x"));
        let gone = w.remove(&key(), "a", "x").unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(b["metadata"]["resourceVersion"], "3");
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
        assert!(w.remove(&key(), "a", "x").is_none());
    }

    #[test]
    fn range_walks_one_namespace_in_name_order() {
        let s = store(10);
        let mut w = s.write();
        for (ns, n) in [("b", "2"), ("a", "9"), ("b", "1"), ("c", "1")] {
            w.put(&key(), cm(ns, n));
        }
        let coll = w.collection(&key()).unwrap();
        let names: Vec<_> = coll
            .range(Some("b"), None)
            .map(|(k, _)| k.1.clone())
            .collect();
        assert_eq!(names, ["1", "2"]);
        let after: Vec<_> = coll
            .range(None, Some(("a".into(), "9".into())))
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(after.len(), 3);
    }

    #[test]
    fn subscribe_replays_history_and_reports_gone_when_compacted() {
        let s = store(2);
        let mut w = s.write();
        for i in 0..4 {
            w.put(&key(), cm("a", &i.to_string()));
        }
        // RVs 2..=5; only 4 and 5 kept; oldest resumable is 3.
        let sub = w.subscribe(&key(), Some(3)).ok().unwrap();
        assert_eq!(sub.backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(w.subscribe(&key(), Some(1)).err(), Some(3));
        let mut rx = w.subscribe(&key(), None).ok().unwrap().rx;
        w.put(&key(), cm("a", "z"));
        assert_eq!(rx.try_recv().unwrap().rv, 6);
    }
}
