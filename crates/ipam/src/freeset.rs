//! The free space of one pool and family as a sorted map of disjoint inclusive
//! intervals. Taking the lowest free address and returning an address are
//! O(log n); memory grows with the number of holes, which is at most the number
//! of addresses in use plus the pool's ranges: a /64 costs one entry, not 2^64.

use std::collections::BTreeMap;

use crate::addr::{is_buggy, Range};

/// Free intervals, keyed by their last address (end -> start, inclusive), so that
/// taking an interval's first address, the common case, edits a value in place.
/// Invariant: with `avoid_buggy`, every interval starts and ends on a non-buggy
/// address, so the first interval always holds an address that can be handed
/// out; buggy addresses inside an interval are skipped by computation.
#[derive(Clone, Debug, Default)]
pub(crate) struct FreeSet {
    intervals: BTreeMap<u128, u128>,
    avoid_buggy: bool,
}

impl FreeSet {
    /// The free space of `ranges` (sorted, disjoint, one family).
    pub fn new(ranges: &[Range], avoid_buggy: bool) -> Self {
        let mut set = FreeSet {
            intervals: BTreeMap::new(),
            avoid_buggy,
        };
        for r in ranges {
            set.put(r.start, r.end);
        }
        set
    }

    /// `[start, end]` trimmed of buggy edges, or None when only buggy addresses remain.
    fn trim(&self, start: u128, end: u128) -> Option<(u128, u128)> {
        let (mut s, mut e) = (start, end);
        if self.avoid_buggy {
            while s <= e && is_buggy(s) {
                s = s.checked_add(1)?;
            }
            while e >= s && is_buggy(e) {
                e = e.checked_sub(1)?;
            }
        }
        (s <= e).then_some((s, e))
    }

    /// Inserts `[start, end]` trimmed. Callers guarantee it is disjoint from what is there.
    fn put(&mut self, start: u128, end: u128) {
        if let Some((s, e)) = self.trim(start, end) {
            self.intervals.insert(e, s);
        }
    }

    /// The lowest address that could be taken, without taking it.
    pub fn first(&self) -> Option<u128> {
        // By the invariant the first interval starts on an allocatable address.
        self.intervals.first_key_value().map(|(_, s)| *s)
    }

    /// The interval holding `addr`, as (start, end).
    fn find(&self, addr: u128) -> Option<(u128, u128)> {
        self.intervals
            .range(addr..)
            .next()
            .filter(|(_, s)| **s <= addr)
            .map(|(e, s)| (*s, *e))
    }

    /// Whether `addr` is free.
    #[cfg(test)]
    pub fn contains(&self, addr: u128) -> bool {
        !(self.avoid_buggy && is_buggy(addr)) && self.find(addr).is_some()
    }

    /// Marks `addr` as no longer free. Returns false if it was not free.
    pub fn take(&mut self, addr: u128) -> bool {
        if self.avoid_buggy && is_buggy(addr) {
            return false;
        }
        let Some((s, e)) = self.find(addr) else {
            return false;
        };
        if s == addr && addr < e {
            // Taking the first address: move the start, in place.
            match self.trim(addr + 1, e) {
                Some((ns, ne)) if ne == e => *self.intervals.get_mut(&e).expect("found") = ns,
                trimmed => {
                    self.intervals.remove(&e);
                    if let Some((ns, ne)) = trimmed {
                        self.intervals.insert(ne, ns);
                    }
                }
            }
            return true;
        }
        self.intervals.remove(&e);
        if s < addr {
            self.put(s, addr - 1);
        }
        if addr < e {
            self.put(addr + 1, e);
        }
        true
    }

    /// Gives `addr` back. The caller guarantees it is inside the pool's ranges and
    /// was not free. Merges with neighbours separated by nothing (or by buggy
    /// addresses only, which are never free anyway) so holes do not accumulate.
    pub fn give(&mut self, addr: u128) {
        if self.avoid_buggy && is_buggy(addr) {
            return;
        }
        let (mut s, mut e) = (addr, addr);
        if let Some((&pe, &ps)) = self.intervals.range(..addr).next_back() {
            if self.adjacent(pe, addr) {
                self.intervals.remove(&pe);
                s = ps;
            }
        }
        if let Some((&ne, &ns)) = self.intervals.range(addr + 1..).next() {
            if ns > addr && self.adjacent(addr, ns) {
                self.intervals.remove(&ne);
                e = ne;
            }
        }
        self.intervals.insert(e, s);
    }

    /// Whether nothing that could be free lies strictly between `a` and `b` (a < b).
    fn adjacent(&self, a: u128, b: u128) -> bool {
        b - a == 1 || (self.avoid_buggy && b - a <= 3 && (a + 1..b).all(is_buggy))
    }

    /// Number of intervals (for tests and memory figures).
    #[cfg(test)]
    pub fn intervals(&self) -> usize {
        self.intervals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u128, u128)], avoid_buggy: bool) -> FreeSet {
        let rs: Vec<Range> = ranges
            .iter()
            .map(|&(start, end)| Range { start, end })
            .collect();
        FreeSet::new(&rs, avoid_buggy)
    }

    #[test]
    fn hands_out_lowest_first_and_takes_back_anything() {
        let mut f = set(&[(10, 12), (20, 20)], false);
        let mut got = vec![];
        while let Some(a) = f.first() {
            assert!(f.take(a));
            got.push(a);
        }
        assert_eq!(got, [10, 11, 12, 20]);
        f.give(11);
        f.give(20);
        assert_eq!(f.first(), Some(11));
        assert!(!f.contains(10));
        f.give(10);
        f.give(12);
        assert_eq!(f.intervals(), 2, "10..=12 merged again, 20 apart");
    }

    #[test]
    fn avoiding_buggy_skips_dot_zero_and_dot_255_by_computation() {
        let mut f = set(&[(0x1fe, 0x301)], true); // x.1.254 .. x.3.1
        let mut got = vec![];
        while let Some(a) = f.first() {
            assert!(f.take(a));
            got.push(a);
        }
        let expected: Vec<u128> = (0x1fe..=0x301).filter(|a| !is_buggy(*a)).collect();
        assert_eq!(got, expected);
        for a in expected.iter().rev() {
            f.give(*a);
        }
        assert_eq!(f.intervals(), 1, "holes across .255/.0 merge");
        assert!(!f.take(0x200), ".0 is never free");
    }

    #[test]
    fn a_range_of_only_buggy_addresses_is_empty() {
        let f = set(&[(0x2ff, 0x300)], true);
        assert_eq!(f.first(), None);
    }
}
