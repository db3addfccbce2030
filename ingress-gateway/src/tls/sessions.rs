//! The TLS session cache: sessions kept for resumption, by session id or ticket.
//!
//! rustls's `ServerSessionMemoryCache` finds a taken session's place in its insertion
//! order by searching it from the front. Every TLS 1.3 resumption takes its session, so
//! with the tens of thousands of sessions the gateway keeps, that search became most of
//! a handshake's cost (36 % of the gateway's CPU in `memcmp` under wrk with a new,
//! resumed connection per request). Here a take is one hash lookup: the insertion order
//! keeps a taken key until the key reaches the front or the order is compacted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustls::server::StoresServerSessions;

/// At most `max` sessions; putting one more drops the one put longest ago.
#[derive(Debug)]
pub struct Sessions {
    max: usize,
    /// Each session by key, with the number of the put that stored it.
    by_key: HashMap<Arc<[u8]>, (u64, Vec<u8>)>,
    /// Keys in the order they were put (the same allocation as in `by_key`), with that
    /// put's number. An entry whose number is not its key's in `by_key` (taken, or put
    /// again since) is stale and skipped.
    order: VecDeque<(u64, Arc<[u8]>)>,
    puts: u64,
}

impl Sessions {
    /// An empty cache for at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            by_key: HashMap::new(),
            order: VecDeque::new(),
            puts: 0,
        }
    }

    /// Stores `value` under `key` (replacing and renewing what the key held), then drops
    /// the oldest sessions beyond `max`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts += 1;
        let key: Arc<[u8]> = key.into();
        self.order.push_back((self.puts, key.clone()));
        self.by_key.insert(key, (self.puts, value));
        while self.by_key.len() > self.max {
            let Some((put, key)) = self.order.pop_front() else {
                break;
            };
            if self.is_current(put, &key) {
                self.by_key.remove(&key);
            }
        }
        // Stale entries go in one pass once they could be half the order: the order
        // stays within twice `max`, and each put pays for the pass O(1) on average.
        if self.order.len() > 2 * self.max.max(1) {
            let by_key = &self.by_key;
            self.order
                .retain(|(put, key)| by_key.get(&**key).is_some_and(|(p, _)| p == put));
        }
    }

    /// The session under `key`, left in place (TLS 1.2 resumption by session id).
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.by_key.get(key).map(|(_, value)| value.clone())
    }

    /// The session under `key`, removed (TLS 1.3: a ticket is used once).
    pub fn take(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.by_key.remove(key).map(|(_, value)| value)
    }

    fn is_current(&self, put: u64, key: &[u8]) -> bool {
        self.by_key.get(key).is_some_and(|(p, _)| *p == put)
    }
}

/// [`Sessions`] shared by all handshakes, as rustls's `session_storage`.
#[derive(Debug)]
pub struct SessionCache(Mutex<Sessions>);

impl SessionCache {
    /// A cache for at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self(Mutex::new(Sessions::new(max)))
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        // Every method leaves `Sessions` whole before anything that could panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.sessions().put(key, value);
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    #[test]
    fn the_session_put_longest_ago_goes_first() {
        let mut s = Sessions::new(3);
        for n in 0..5 {
            s.put(key(n), vec![n as u8]);
        }
        assert_eq!(s.by_key.len(), 3);
        assert_eq!((s.get(&key(0)), s.get(&key(1))), (None, None));
        assert_eq!(s.get(&key(4)), Some(vec![4]));
    }

    #[test]
    fn a_taken_session_is_gone_and_the_oldest_left_goes_first() {
        let mut s = Sessions::new(3);
        for n in 0..3 {
            s.put(key(n), vec![n as u8]);
        }
        assert_eq!(s.take(&key(0)), Some(vec![0]));
        assert_eq!((s.take(&key(0)), s.get(&key(0))), (None, None));
        s.put(key(3), vec![3]);
        s.put(key(4), vec![4]);
        // 0's stale place at the front was skipped: 1 went, 2, 3 and 4 stay.
        assert_eq!(s.get(&key(1)), None);
        assert_eq!(
            [2, 3, 4].map(|n| s.get(&key(n))),
            [Some(vec![2]), Some(vec![3]), Some(vec![4])]
        );
    }

    #[test]
    fn a_session_put_again_is_renewed() {
        let mut s = Sessions::new(2);
        s.put(key(0), vec![0]);
        s.put(key(1), vec![1]);
        s.put(key(0), vec![9]);
        s.put(key(2), vec![2]);
        assert_eq!(s.get(&key(1)), None);
        assert_eq!(s.get(&key(0)), Some(vec![9]));
    }

    #[test]
    fn the_order_stays_bounded_when_every_session_is_taken() {
        // TLS 1.3 resumptions: each put session is taken, the cache never fills, and
        // without compaction the order would grow by one key per handshake for ever.
        let mut s = Sessions::new(10);
        for n in 0..100_000 {
            s.put(key(n), vec![1]);
            s.take(&key(n));
            assert!(s.order.len() <= 20, "{} keys in the order", s.order.len());
        }
        assert!(s.by_key.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Take(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u8..16).prop_map(Op::Take),
        ]
    }

    proptest! {
        /// Against a plain list of live sessions in put order.
        #[test]
        fn behaves_as_a_list_in_put_order(max in 0usize..6, ops in prop::collection::vec(op(), 0..200)) {
            let mut s = Sessions::new(max);
            let mut model: Vec<(u8, u8)> = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        s.put(vec![k], vec![v]);
                        model.retain(|(mk, _)| *mk != k);
                        model.push((k, v));
                        if model.len() > max {
                            model.remove(0);
                        }
                    }
                    Op::Take(k) => {
                        let expected = model.iter().position(|(mk, _)| *mk == k).map(|i| model.remove(i).1);
                        prop_assert_eq!(s.take(&[k]), expected.map(|v| vec![v]));
                    }
                }
                prop_assert_eq!(s.by_key.len(), model.len());
                for k in 0u8..16 {
                    let expected = model.iter().find(|(mk, _)| *mk == k).map(|(_, v)| vec![*v]);
                    prop_assert_eq!(s.get(&[k]), expected);
                }
                prop_assert!(s.order.len() <= 2 * max.max(1));
            }
        }
    }
}
