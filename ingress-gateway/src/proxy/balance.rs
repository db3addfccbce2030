//! Endpoint selection: power of two choices on outstanding requests (default), round
//! robin, cookie affinity. Per-endpoint state is keyed by socket address, so it
//! survives snapshot swaps (a swap makes new `Backend`s with the same endpoints).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ironlb_routes::LoadBalance;

/// Live counters of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Requests sent and not yet finished (response body done or dropped).
    pub inflight: AtomicU32,
    /// Round-robin cursor of the backend whose first endpoint this is.
    rr: AtomicUsize,
}

/// Decrements an endpoint's in-flight count when dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<EndpointStats>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shared selection state of the proxy.
#[derive(Debug, Default)]
pub struct Balancer {
    stats: RwLock<HashMap<SocketAddr, Arc<EndpointStats>>>,
}

/// A cap on remembered endpoints; past it, entries for endpoints without requests in
/// flight are dropped (they come back at zero when used again).
const MAX_TRACKED: usize = 65_536;

impl Balancer {
    /// The stats of `addr`, created on first use.
    pub fn stats(&self, addr: SocketAddr) -> Arc<EndpointStats> {
        if let Some(s) = self.stats.read().expect("balancer lock").get(&addr) {
            return s.clone();
        }
        let mut map = self.stats.write().expect("balancer lock");
        if map.len() >= MAX_TRACKED {
            map.retain(|_, s| s.inflight.load(Ordering::Relaxed) > 0);
        }
        map.entry(addr).or_default().clone()
    }

    /// Picks an endpoint index among `endpoints` not in `tried` (by index), or `None`
    /// when all were tried.
    pub fn pick(
        &self,
        endpoints: &[SocketAddr],
        policy: LoadBalance,
        tried: &[usize],
    ) -> Option<usize> {
        let n = endpoints.len();
        if tried.len() >= n {
            return None;
        }
        if n == 1 {
            return Some(0);
        }
        match policy {
            LoadBalance::RoundRobin => {
                let start = self.stats(endpoints[0]).rr.fetch_add(1, Ordering::Relaxed);
                round_robin(start, n, tried)
            }
            LoadBalance::PowerOfTwoChoices => {
                let (a, b) = two_distinct(n);
                let load = |i: usize| self.stats(endpoints[i]).inflight.load(Ordering::Relaxed);
                power_of_two(a, b, n, tried, load)
            }
        }
    }

    /// Marks a request to `addr` as started.
    pub fn start(&self, addr: SocketAddr) -> InflightGuard {
        let s = self.stats(addr);
        s.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(s)
    }
}

fn two_distinct(n: usize) -> (usize, usize) {
    let a = rand::random_range(0..n);
    let b = (a + 1 + rand::random_range(0..n - 1)) % n;
    (a, b)
}

/// The first untried index from `start` on (cyclically).
pub fn round_robin(start: usize, n: usize, tried: &[usize]) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|i| !tried.contains(i))
}

/// The less loaded of candidates `a` and `b` (ties: `a`); tried candidates are replaced
/// by the least loaded untried endpoint.
pub fn power_of_two(
    a: usize,
    b: usize,
    n: usize,
    tried: &[usize],
    load: impl Fn(usize) -> u32,
) -> Option<usize> {
    match (tried.contains(&a), tried.contains(&b)) {
        (false, false) => Some(if load(b) < load(a) { b } else { a }),
        (false, true) => Some(a),
        (true, false) => Some(b),
        (true, true) => (0..n)
            .filter(|i| !tried.contains(i))
            .min_by_key(|&i| load(i)),
    }
}

/// The affinity cookie value naming an endpoint: a stable hash of its address as text,
/// so every gateway replica agrees (FNV-1a, 16 hex digits).
pub fn affinity_value(addr: SocketAddr) -> String {
    format!("{:016x}", affinity_hash(addr))
}

/// The endpoint an affinity cookie names, if it is still among `endpoints`. Runs on every
/// request with the cookie, over all of a backend's endpoints: the cookie is parsed once
/// and each endpoint hashed without text (a formatted address per endpoint cost some
/// 170 µs a request with 1,000 endpoints, this 20 µs).
pub fn affine_endpoint(endpoints: &[SocketAddr], cookie: &str) -> Option<usize> {
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if cookie.len() != 16 || !cookie.bytes().all(is_hex) {
        return None;
    }
    let wanted = u64::from_str_radix(cookie, 16).ok()?;
    endpoints.iter().position(|&e| affinity_hash(e) == wanted)
}

/// FNV-1a over `addr` as `Display` writes it (`192.0.2.1:8080`, `[2001:db8::1]:443`).
/// IPv4, the usual pod address, is fed digit by digit; IPv6 goes through `Display`.
fn affinity_hash(addr: SocketAddr) -> u64 {
    let mut h = Fnv1a::default();
    match addr {
        SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    h.byte(b'.');
                }
                h.decimal(u16::from(octet));
            }
            h.byte(b':');
            h.decimal(a.port());
        }
        SocketAddr::V6(_) => {
            // Writing to the hasher cannot fail.
            let _ = write!(h, "{addr}");
        }
    }
    h.0
}

/// A 64-bit FNV-1a hash, fed bytes.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    /// `n` in decimal, as `Display` writes it.
    fn decimal(&mut self, n: u16) {
        let mut digits = [0u8; 5];
        let mut start = digits.len();
        let mut rest = n;
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        digits[start..].iter().for_each(|&d| self.byte(d));
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        s.bytes().for_each(|b| self.byte(b));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([192, 0, 2, i], 8080)))
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_skips_tried_endpoints() {
        assert_eq!(round_robin(0, 3, &[]), Some(0));
        assert_eq!(round_robin(4, 3, &[]), Some(1));
        assert_eq!(round_robin(1, 3, &[1]), Some(2));
        assert_eq!(round_robin(1, 3, &[0, 1, 2]), None);
    }

    #[test]
    fn power_of_two_takes_the_less_loaded_candidate() {
        let loads = [5, 1, 3];
        assert_eq!(power_of_two(0, 1, 3, &[], |i| loads[i]), Some(1));
        assert_eq!(power_of_two(2, 0, 3, &[], |i| loads[i]), Some(2));
        assert_eq!(power_of_two(0, 1, 3, &[1], |i| loads[i]), Some(0));
        assert_eq!(power_of_two(0, 1, 3, &[0, 1], |i| loads[i]), Some(2));
        assert_eq!(power_of_two(0, 1, 2, &[0, 1], |i| loads[i]), None);
    }

    #[test]
    fn the_balancer_round_robins_a_backend() {
        let b = Balancer::default();
        let eps = addrs(3);
        let picks: Vec<_> = (0..6)
            .map(|_| b.pick(&eps, LoadBalance::RoundRobin, &[]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn the_balancer_avoids_a_busy_endpoint() {
        let b = Balancer::default();
        let eps = addrs(2);
        let _busy: Vec<_> = (0..10).map(|_| b.start(eps[0])).collect();
        for _ in 0..20 {
            assert_eq!(b.pick(&eps, LoadBalance::PowerOfTwoChoices, &[]), Some(1));
        }
        drop(_busy);
        assert_eq!(b.stats(eps[0]).inflight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_affinity_cookie_finds_its_endpoint_while_it_exists() {
        let eps = addrs(3);
        let cookie = affinity_value(eps[2]);
        assert_eq!(affine_endpoint(&eps, &cookie), Some(2));
        assert_eq!(affine_endpoint(&eps[..2], &cookie), None);
        assert_eq!(affinity_value(eps[2]), cookie, "stable");
        for garbage in [
            "",
            "zz",
            &cookie.to_uppercase(),
            &format!("{cookie}0"),
            "+1234567890abcde",
        ] {
            assert_eq!(affine_endpoint(&eps, garbage), None, "{garbage:?}");
        }
    }

    /// The values gateways have set in cookies so far: the hash of the address as text.
    fn fnv1a_of_text(addr: SocketAddr) -> u64 {
        addr.to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }

    #[test]
    fn cookie_values_stay_those_already_handed_out() {
        let v4: SocketAddr = "192.0.2.10:8080".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:443".parse().unwrap();
        assert_eq!(affinity_value(v4), "b9da7a52f92ed2e6");
        assert_eq!(affinity_value(v6), "e4faa9ad398297ac");
    }

    proptest::proptest! {
        #[test]
        fn the_hash_is_that_of_the_address_as_text(octets: [u8; 4], port: u16, v6: [u16; 8]) {
            let v4 = SocketAddr::from((octets, port));
            proptest::prop_assert_eq!(affinity_hash(v4), fnv1a_of_text(v4));
            let v6 = SocketAddr::from((std::net::Ipv6Addr::from(v6), port));
            proptest::prop_assert_eq!(affinity_hash(v6), fnv1a_of_text(v6));
        }
    }
}
