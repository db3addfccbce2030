//! The compiled, immutable route table and request matching.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::host::{wildcard_suffix, with_request_host};
use crate::{Backend, CanaryRule, HostRule, IngressRef, PathKind, PathRule, RouteOptions};

/// A TLS Secret named by an Ingress `tls` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// Namespace (the Ingress's).
    pub namespace: String,
    /// `secretName`.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One compiled route: an Ingress path (or `spec.defaultBackend`) with its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The Ingress that declared it (for metrics, logs and Events).
    pub ingress: Arc<IngressRef>,
    /// The host rule it was declared under.
    pub host: HostRule,
    /// The path rule; `None` for a `spec.defaultBackend`.
    pub path: Option<PathRule>,
    /// Where requests go.
    pub backend: Arc<Backend>,
    /// Options from the Ingress's annotations.
    pub options: Arc<RouteOptions>,
    /// A canary Ingress attached to this route, if any.
    pub canary: Option<Canary>,
    /// Plain-HTTP requests get a 308 to HTTPS: `force-ssl-redirect`, or `ssl-redirect`
    /// (default true) when the route's host has a `tls` entry.
    pub https_redirect: bool,
}

impl Route {
    /// Whether this is a `spec.defaultBackend` rather than a path rule.
    pub fn is_default_backend(&self) -> bool {
        self.path.is_none()
    }

    /// The upstream path after `rewrite-target`, or `None` to forward the path unchanged.
    /// For a Prefix rule the matched prefix is replaced (`/api` → `/` turns `/api/users`
    /// into `/users`); for an Exact rule or a default backend the whole path is.
    /// `request_path` is the path as matched: without the query (which the caller keeps)
    /// and after [`crate::normalize_path`].
    pub fn rewrite_path(&self, request_path: &str) -> Option<String> {
        let target = self.options.rewrite_target.as_deref()?;
        let rest = match &self.path {
            Some(rule) if rule.kind == PathKind::Prefix && &*rule.path != "/" => {
                request_path.strip_prefix(&*rule.path).unwrap_or("")
            }
            Some(rule) if rule.kind == PathKind::Prefix => request_path,
            _ => "",
        };
        let mut out = String::with_capacity(target.len() + rest.len());
        out.push_str(target);
        match (target.ends_with('/'), rest.strip_prefix('/')) {
            (true, Some(tail)) => out.push_str(tail),
            (false, None) if !rest.is_empty() => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str(rest),
        }
        Some(out)
    }
}

/// A canary backend attached to a main route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// The canary Ingress.
    pub ingress: Arc<IngressRef>,
    /// Its backend.
    pub backend: Arc<Backend>,
    /// When to use it (see [`CanaryRule::use_canary`]).
    pub rule: CanaryRule,
    /// The canary Ingress's own options (timeouts, protocol…) for requests sent to it.
    pub options: Arc<RouteOptions>,
}

/// The outcome of [`RouteTable::route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match<'t> {
    /// A path rule matched.
    Rule(&'t Route),
    /// No path matched; an Ingress `spec.defaultBackend` applies.
    DefaultBackend(&'t Route),
    /// Nothing applies: the gateway answers with its own 404 page.
    NotFound,
}

impl<'t> Match<'t> {
    /// The route, unless nothing matched.
    pub fn route(self) -> Option<&'t Route> {
        match self {
            Match::Rule(r) | Match::DefaultBackend(r) => Some(r),
            Match::NotFound => None,
        }
    }
}

/// Exact and Prefix candidates registered under one matchit route.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub(crate) exact: Option<u32>,
    pub(crate) prefix: Option<u32>,
}

/// The rules of one host (or of the host-less catch-all server).
#[derive(Debug, Default)]
pub(crate) struct HostRoutes {
    /// Slots hold indices relative to `base`: the host's path routes are contiguous in
    /// the table, so an unchanged host's router is shared by the next table.
    pub(crate) router: Arc<matchit::Router<Slot>>,
    /// Index of the host's first path route.
    pub(crate) base: u32,
    /// Index of the default-backend route for this host.
    pub(crate) default: Option<u32>,
    /// Length of the longest Prefix rule (0 = none): ancestors longer than it cannot
    /// match, which bounds the walk for long request paths.
    pub(crate) max_prefix_len: usize,
}

impl HostRoutes {
    /// Best rule for `path`: an Exact rule on the path itself, else the Prefix rule on
    /// the longest element-wise ancestor (`/a/b/c` → `/a/b/c`, `/a/b`, `/a`, `/`).
    ///
    /// Every key is a static matchit route. Registering Prefix rules as `{*rest}`
    /// catch-alls gives one lookup instead of one per ancestor (about 40 ns instead of
    /// 53 ns per lookup measured on 10 rules), but matchit 0.9 then heap-allocates its
    /// backtracking stack on nearly every request (any walk through a node with both
    /// static and wildcard children, i.e. every host with a `/` rule). The walk keeps
    /// lookups allocation-free.
    #[inline]
    fn lookup(&self, path: &str) -> Option<u32> {
        if let Ok(hit) = self.router.at(path) {
            // The request path equals the key: an Exact rule applies and beats Prefix.
            if let Some(i) = hit.value.exact.or(hit.value.prefix) {
                return Some(self.base + i);
            }
        }
        if self.max_prefix_len == 0 {
            return None;
        }
        // Only ancestors no longer than the longest Prefix rule can match. Searching
        // bytes keeps this safe for any UTF-8: every cut is at an ASCII '/'.
        let mut end = path.len().min(self.max_prefix_len + 1);
        while let Some(slash) = path.as_bytes()[..end].iter().rposition(|&b| b == b'/') {
            let ancestor = if slash == 0 { "/" } else { &path[..slash] };
            if let Ok(hit) = self.router.at(ancestor) {
                if let Some(i) = hit.value.prefix {
                    return Some(self.base + i);
                }
            }
            if slash == 0 {
                break;
            }
            end = slash;
        }
        None
    }
}

/// Host-keyed maps use an Fx-style hash: host lookups are on the hot path and SipHash
/// was a measurable part of them. Keys come from Ingress objects, not from requests,
/// and the seed is random per table, so a client cannot aim at collisions.
pub(crate) type HostMap<V> = HashMap<Arc<str>, V, FxBuild>;

/// The same hash for the compiler's working maps (SipHash was ~15 % of a compile).
pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct FxBuild(u64);

impl Default for FxBuild {
    fn default() -> Self {
        Self(std::collections::hash_map::RandomState::new().hash_one(0x1b1b_u64))
    }
}

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(self.0)
    }
}

pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply mixes upwards; hashbrown picks buckets from the low bits, so
        // bring the well-mixed high bits down (as rustc-hash 2 does).
        self.0.rotate_left(26)
    }
}

/// The immutable result of [`crate::compile`]: routes, endpoints and TLS secret names.
/// `Send + Sync`: the glue shares one behind an `Arc` (e.g. in an `ArcSwap`) with every
/// worker and swaps in a new one per change.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub(crate) routes: Vec<Route>,
    pub(crate) exact: HostMap<HostRoutes>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard: HostMap<HostRoutes>,
    /// Host-less rules; its `default` is the catch-all default backend.
    pub(crate) any: HostRoutes,
    pub(crate) tls_exact: HostMap<Option<SecretRef>>,
    pub(crate) tls_wildcard: HostMap<Option<SecretRef>>,
}

impl RouteTable {
    /// A table without routes: every request is [`Match::NotFound`].
    pub fn empty() -> Self {
        Self::default()
    }

    /// Matches a request. `host` is the Host header or `:authority` (port, case and a
    /// trailing dot are ignored); `path` is the request path (anything from `?` on is
    /// ignored; an empty path is `/`), matched after [`crate::normalize_path`]. Does not
    /// allocate unless the path needs normalising (`%`, `//`, dot segments).
    ///
    /// Order: exact host rules, wildcard host rules, host-less rules (first with a
    /// matching path wins; within one host Exact beats Prefix and the longest Prefix
    /// wins), then the default backend of the exact host, of the wildcard host, the
    /// catch-all default backend, then [`Match::NotFound`].
    pub fn route(&self, host: &str, path: &str) -> Match<'_> {
        // One pass over the bytes: cut the query and spot what may need normalising.
        let b = path.as_bytes();
        let mut end = b.len();
        let mut special = false;
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'?' => {
                    end = i;
                    break;
                }
                b'%' => special = true,
                b'/' if matches!(b.get(i + 1), Some(b'/' | b'.')) => special = true,
                _ => {}
            }
        }
        let path = match &path[..end] {
            "" => "/",
            p => p,
        };
        if special {
            let normalized = crate::path::normalize_path(path);
            with_request_host(host, |host| self.route_normalized(host, &normalized))
        } else {
            with_request_host(host, |host| self.route_normalized(host, path))
        }
    }

    #[inline]
    fn route_normalized(&self, host: Option<&str>, path: &str) -> Match<'_> {
        let exact = host.and_then(|h| self.exact.get(h));
        if let Some(i) = exact.and_then(|set| set.lookup(path)) {
            return Match::Rule(&self.routes[i as usize]);
        }
        let wildcard = match (host, self.wildcard.is_empty()) {
            (Some(h), false) => wildcard_suffix(h).and_then(|suffix| self.wildcard.get(suffix)),
            _ => None,
        };
        let found = wildcard
            .and_then(|set| set.lookup(path))
            .or_else(|| self.any.lookup(path));
        if let Some(i) = found {
            return Match::Rule(&self.routes[i as usize]);
        }
        match [exact, wildcard, Some(&self.any)]
            .into_iter()
            .flatten()
            .find_map(|set| set.default)
        {
            Some(i) => Match::DefaultBackend(&self.routes[i as usize]),
            None => Match::NotFound,
        }
    }

    /// The Secret holding the certificate for a TLS SNI name (exact name first, then a
    /// single-label wildcard entry). `None` means "use the default certificate", either
    /// because no Ingress lists the name or because its `tls` entry has no `secretName`.
    pub fn tls_secret_for(&self, sni: &str) -> Option<&SecretRef> {
        self.tls_entry(sni)?.as_ref()
    }

    /// Whether a plain-HTTP request for `host` that matched `route` gets a 308 to HTTPS:
    /// [`Route::https_redirect`] (computed from the rule's own host), or `ssl-redirect`
    /// (default on) when the request's host has a `tls` entry — which also covers
    /// host-less and wildcard rules serving a host with TLS. What the glue should call.
    pub fn https_redirect(&self, route: &Route, host: &str) -> bool {
        route.https_redirect || (route.options.ssl_redirect.unwrap_or(true) && self.has_tls(host))
    }

    /// Whether some Ingress lists `host` in a `tls` entry (with or without Secret).
    pub fn has_tls(&self, host: &str) -> bool {
        self.tls_entry(host).is_some()
    }

    fn tls_entry(&self, name: &str) -> Option<&Option<SecretRef>> {
        with_request_host(name, |name| {
            let name = name?;
            self.tls_exact
                .get(name)
                .or_else(|| wildcard_suffix(name).and_then(|suffix| self.tls_wildcard.get(suffix)))
        })
    }

    /// Every compiled route: the path rules host by host, then the default backends.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Number of compiled routes (the route-count metric).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every distinct backend (canaries included), e.g. to size connection pools or
    /// drop the pools of backends that disappeared.
    pub fn backends(&self) -> Vec<&Arc<Backend>> {
        let mut all: Vec<&Arc<Backend>> = self
            .routes
            .iter()
            .flat_map(|r| std::iter::once(&r.backend).chain(r.canary.as_ref().map(|c| &c.backend)))
            .collect();
        all.sort_by_key(|b| Arc::as_ptr(b));
        all.dedup_by_key(|b| Arc::as_ptr(b));
        all
    }

    /// Every Secret some TLS host uses: what the glue must load and watch.
    pub fn tls_secrets(&self) -> impl Iterator<Item = &SecretRef> {
        let mut all: Vec<&SecretRef> = self
            .tls_exact
            .values()
            .chain(self.tls_wildcard.values())
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        all.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<RouteTable>();
        shareable::<Arc<RouteTable>>();
    }

    #[test]
    fn an_empty_table_answers_not_found() {
        let table = RouteTable::empty();
        assert_eq!(table.route("example.com", "/"), Match::NotFound);
        assert!(table.is_empty());
        assert_eq!(table.tls_secret_for("example.com"), None);
    }
}
