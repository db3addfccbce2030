//! Compilation: [`Inputs`] → [`RouteTable`] plus diagnostics.
//!
//! Every compilation is complete: what a [`Compiler`] returns equals what a fresh one
//! would. Between compilations it keeps two things that do not depend on the rest of the
//! snapshot: what each Ingress yields on its own ([`Parsed`]: annotations, hosts, paths,
//! TLS entries), keyed by the Ingress's `Arc`, and each host's path router, reused while
//! the host's path rules are the same. So a change to one Ingress of 1,000 re-parses one
//! Ingress and rebuilds one router; what stays per compilation is claiming paths,
//! resolving backends and laying out the routes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::annotations::{self, CanaryRule};
use crate::backend::{Resolver, Unresolved};
use crate::table::{FxMap, HostRoutes, Slot};
use crate::{
    BackendRef, Canary, Diagnostic, Error, HostRule, IngressInput, IngressRef, Inputs, PathKind,
    PathRule, Reason, Route, RouteOptions, RouteTable, SecretRef,
};

/// Compiles one snapshot. Never fails: whatever is wrong with an Ingress is skipped
/// with a [`Diagnostic`] naming it, and everything else still routes.
///
/// Conflicts (the same host+path, a TLS host with two Secrets, two default backends)
/// are won by the oldest Ingress, then by namespace, then by name; the loser gets the
/// diagnostic. Canary Ingresses (`canary: "true"`) never claim anything: their paths
/// attach to the main route with the same host and path.
///
/// A one-off compilation; the gateway keeps a [`Compiler`] to compile its updates.
pub fn compile(inputs: &Inputs) -> (RouteTable, Vec<Diagnostic>) {
    Compiler::default().compile(inputs)
}

/// Compiles snapshot after snapshot, reusing what an unchanged Ingress or host gave
/// the previous time (see the module documentation). Holds only what the last
/// compilation used.
#[derive(Default)]
pub struct Compiler {
    /// By the address of the Ingress's `Arc` (each entry holds that `Arc`, so the
    /// address cannot be reused by another Ingress while the entry lives).
    ingresses: FxMap<usize, Arc<Parsed>>,
    routers: FxMap<HostRule, CachedRouter>,
}

/// A host's router and the path rules it was built from, in route order.
struct CachedRouter {
    rules: Vec<PathRule>,
    router: Arc<matchit::Router<Slot>>,
    max_prefix_len: usize,
    /// Rules matchit refused (route index within the host, message).
    refused: Vec<(u32, String)>,
}

impl Compiler {
    /// See [`compile`].
    pub fn compile(&mut self, inputs: &Inputs) -> (RouteTable, Vec<Diagnostic>) {
        let mut previous = std::mem::take(&mut self.ingresses);
        let mut prepared: Vec<Arc<Parsed>> = inputs
            .ingresses
            .iter()
            .map(|input| {
                let key = Arc::as_ptr(input) as usize;
                let parsed = previous
                    .remove(&key)
                    .unwrap_or_else(|| Arc::new(Parsed::new(input.clone())));
                self.ingresses.insert(key, parsed.clone());
                parsed
            })
            .collect();
        prepared.sort_by(|a, b| {
            let (a, b) = (&a.input, &b.input);
            (a.creation_timestamp, &a.namespace, &a.name).cmp(&(
                b.creation_timestamp,
                &b.namespace,
                &b.name,
            ))
        });
        compile_pass(inputs, &prepared, &mut self.routers)
    }
}

/// What one Ingress yields on its own, whatever else is in the snapshot; its problems
/// are kept in the order a compilation reports them.
struct Parsed {
    input: Arc<IngressInput>,
    ingress: Arc<IngressRef>,
    options: Arc<RouteOptions>,
    canary: Option<CanaryRule>,
    annotation_problems: Vec<(Reason, String)>,
    /// Valid TLS hosts with their Secret, or the message for an invalid one.
    tls: Vec<Result<(HostRule, Option<SecretRef>), String>>,
    /// The paths in rule order.
    paths: Vec<ParsedPath>,
    /// The distinct backends of the paths and `spec.defaultBackend` (an Ingress's paths
    /// mostly share a few, which are then resolved once per compilation).
    backends: Vec<BackendRef>,
    /// `spec.defaultBackend`, as an index into `backends`.
    default_backend: Option<usize>,
    /// The hosts `spec.defaultBackend` serves: those of the rules, or every host when
    /// the rules name none.
    default_hosts: Vec<HostRule>,
}

/// A valid (host, path, index into [`Parsed::backends`]), or the problem of a skipped
/// rule or path, in its place.
type ParsedPath = Result<(HostRule, PathRule, usize), (Reason, String)>;

impl Parsed {
    fn new(input: Arc<IngressInput>) -> Parsed {
        let parsed = annotations::parse(&input.annotations);
        let tls = input
            .tls
            .iter()
            .flat_map(|entry| {
                let secret = entry.secret_name.as_ref().map(|name| SecretRef {
                    namespace: input.namespace.clone(),
                    name: name.clone(),
                });
                entry
                    .hosts
                    .iter()
                    .filter_map(move |raw| match HostRule::parse(raw) {
                        Ok(HostRule::Any) => None,
                        Ok(host) => Some(Ok((host, secret.clone()))),
                        Err(e) => Some(Err(format!("tls: {e}"))),
                    })
            })
            .collect();
        let mut backends: Vec<BackendRef> = Vec::new();
        let mut backend_index = |b: &BackendRef| match backends.iter().position(|x| x == b) {
            Some(i) => i,
            None => {
                backends.push(b.clone());
                backends.len() - 1
            }
        };
        let mut paths = Vec::new();
        for rule in &input.rules {
            let host = match HostRule::parse(rule.host.as_deref().unwrap_or("")) {
                Ok(host) => host,
                Err(e) => {
                    paths.push(Err((Reason::InvalidHost, format!("{e}; rule skipped"))));
                    continue;
                }
            };
            for path in &rule.paths {
                paths.push(match PathRule::parse(&path.path, path.path_type) {
                    Ok(rule) => Ok((host.clone(), rule, backend_index(&path.backend))),
                    Err(e @ Error::RegexPath { .. }) => {
                        Err((Reason::RegexPathUnsupported, format!("{e}; skipped")))
                    }
                    Err(e) => Err((Reason::InvalidPath, format!("{e}; skipped"))),
                });
            }
        }
        let default_backend = input.default_backend.as_ref().map(&mut backend_index);
        let mut default_hosts: BTreeSet<HostRule> = input
            .rules
            .iter()
            .filter_map(|r| HostRule::parse(r.host.as_deref().unwrap_or("")).ok())
            .filter(|h| *h != HostRule::Any)
            .collect();
        if default_hosts.is_empty() {
            default_hosts.insert(HostRule::Any);
        }
        Parsed {
            ingress: Arc::new(input.key()),
            options: Arc::new(parsed.options),
            canary: parsed.canary,
            annotation_problems: parsed.problems,
            tls,
            paths,
            backends,
            default_backend,
            default_hosts: default_hosts.into_iter().collect(),
            input,
        }
    }
}

/// One compilation over the prepared Ingresses (oldest first).
fn compile_pass(
    inputs: &Inputs,
    prepared: &[Arc<Parsed>],
    routers: &mut FxMap<HostRule, CachedRouter>,
) -> (RouteTable, Vec<Diagnostic>) {
    let mut c = Pass {
        diags: Vec::new(),
        resolver: Resolver::new(&inputs.services, &inputs.endpoint_slices),
        reported: BTreeSet::new(),
        groups: Vec::new(),
        group_of: FxMap::default(),
        defaults: Vec::new(),
    };
    for p in prepared {
        for (reason, message) in &p.annotation_problems {
            c.diag(&p.ingress, *reason, message.clone());
        }
    }
    let tls = c.tls(prepared);

    // Main routes, oldest Ingress first so that it wins conflicts.
    for p in prepared.iter().filter(|p| p.canary.is_none()) {
        let mut resolved = vec![None; p.backends.len()];
        // An Ingress's paths mostly share a host: look its group up once per run.
        let mut last: Option<(&HostRule, usize)> = None;
        for path in &p.paths {
            let Some((host, rule, backend)) = c.valid(p, path) else {
                continue;
            };
            let g = match last {
                Some((h, g)) if h == host => g,
                _ => c.group(host),
            };
            last = Some((host, g));
            if let Some(&winner) = c.groups[g].paths.get(rule) {
                let owner = &c.groups[g].routes[winner as usize].ingress;
                let message = if **owner == *p.ingress {
                    format!("{host} {rule} is listed twice; the first one is used")
                } else {
                    format!("{host} {rule} is already served by the older Ingress {owner}; this path is ignored")
                };
                c.diag(&p.ingress, Reason::PathConflict, message);
                continue;
            }
            let backend = c.backend(p, backend, &mut resolved);
            let route = route(p, &tls, host, Some(rule), backend);
            let group = &mut c.groups[g];
            let idx = u32::try_from(group.routes.len()).expect("fewer than 2^32 routes");
            group.routes.push(route);
            group.paths.insert(rule, idx);
        }
    }

    // Default backends: per host (oldest Ingress with rules for that host wins) and the
    // catch-all one (oldest Ingress whose rules are all host-less).
    let mut defaults: BTreeMap<&HostRule, usize> = BTreeMap::new();
    for p in prepared.iter().filter(|p| p.canary.is_none()) {
        let Some(backend) = p.default_backend else {
            continue;
        };
        let mut resolved = vec![None; p.backends.len()];
        let mut lost = Vec::new();
        for host in &p.default_hosts {
            if let Some(&winner) = defaults.get(host) {
                lost.push(format!("{host} (kept: {})", c.defaults[winner].ingress));
                continue;
            }
            let backend = c.backend(p, backend, &mut resolved);
            c.defaults.push(route(p, &tls, host, None, backend));
            defaults.insert(host, c.defaults.len() - 1);
        }
        if !lost.is_empty() {
            c.diag(
                &p.ingress,
                Reason::DefaultBackendConflict,
                format!(
                    "spec.defaultBackend is ignored for {}, where an older Ingress already sets one",
                    lost.join(", ")
                ),
            );
        }
    }

    // Canaries attach to the main route with the same host and path.
    for p in prepared {
        let Some(rule) = &p.canary else { continue };
        let mut resolved = vec![None; p.backends.len()];
        for path in &p.paths {
            let Some((host, path, backend)) = c.valid(p, path) else {
                continue;
            };
            let main = c
                .group_of
                .get(host)
                .and_then(|&g| Some((g, *c.groups[g].paths.get(path)?)));
            let Some((g, idx)) = main else {
                c.diag(
                    &p.ingress,
                    Reason::CanaryWithoutMainRoute,
                    format!("canary path {host} {path} has no main Ingress with the same host and path; ignored"),
                );
                continue;
            };
            if let Some(existing) = &c.groups[g].routes[idx as usize].canary {
                let message = format!(
                    "{host} {path} already has the older canary {}; ignored",
                    existing.ingress
                );
                c.diag(&p.ingress, Reason::CanaryConflict, message);
                continue;
            }
            let backend = c.backend(p, backend, &mut resolved);
            c.groups[g].routes[idx as usize].canary = Some(Canary {
                ingress: p.ingress.clone(),
                backend,
                rule: rule.clone(),
                options: p.options.clone(),
            });
        }
    }

    c.build(tls, defaults, routers)
}

/// TLS claims: host → (secret, claiming Ingress).
#[derive(Default)]
struct TlsClaims {
    exact: BTreeMap<Arc<str>, TlsClaim>,
    /// Keyed by the suffix after `*.`.
    wildcard: BTreeMap<Arc<str>, TlsClaim>,
}

type TlsClaim = (Option<SecretRef>, Arc<IngressRef>);

impl TlsClaims {
    fn get(&self, host: &HostRule) -> Option<&TlsClaim> {
        match host {
            HostRule::Any => None,
            HostRule::Exact(h) => self.exact.get(h),
            HostRule::Wildcard(s) => self.wildcard.get(s),
        }
    }

    fn insert(&mut self, host: &HostRule, claim: TlsClaim) {
        match host {
            HostRule::Any => {}
            HostRule::Exact(h) => drop(self.exact.insert(h.clone(), claim)),
            HostRule::Wildcard(s) => drop(self.wildcard.insert(s.clone(), claim)),
        }
    }

    /// Whether requests for a rule host arrive with TLS configured: the host itself is
    /// in a `tls` entry, or (for an exact host) a wildcard `tls` entry covers it.
    fn covers(&self, host: &HostRule) -> bool {
        match host {
            HostRule::Any => false,
            HostRule::Wildcard(s) => self.wildcard.contains_key(s),
            HostRule::Exact(h) => {
                self.exact.contains_key(h)
                    || crate::host::wildcard_suffix(h)
                        .is_some_and(|s| self.wildcard.contains_key(s))
            }
        }
    }
}

/// The working state of one compilation; `'p` is the prepared Ingresses'.
struct Pass<'p> {
    diags: Vec<Diagnostic>,
    resolver: Resolver<'p>,
    /// (Ingress, backend) pairs whose resolution problem was already reported.
    reported: BTreeSet<(Arc<IngressRef>, BackendRef)>,
    /// The path routes host by host, hosts in order of first claim.
    groups: Vec<HostGroup<'p>>,
    group_of: FxMap<&'p HostRule, usize>,
    /// The default-backend routes.
    defaults: Vec<Route>,
}

/// One host's path routes and the paths they claim.
struct HostGroup<'p> {
    paths: FxMap<&'p PathRule, u32>,
    routes: Vec<Route>,
}

impl<'p> Pass<'p> {
    fn diag(&mut self, ingress: &IngressRef, reason: Reason, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(ingress, reason, message));
    }

    /// A path's valid (host, path, backend index), or `None` once its problem is
    /// reported.
    fn valid<'x>(
        &mut self,
        p: &Parsed,
        path: &'x ParsedPath,
    ) -> Option<(&'x HostRule, &'x PathRule, usize)> {
        match path {
            Ok((host, rule, backend)) => Some((host, rule, *backend)),
            Err((reason, message)) => {
                self.diag(&p.ingress, *reason, message.clone());
                None
            }
        }
    }

    /// The group of `host`, created on its first claim.
    fn group(&mut self, host: &'p HostRule) -> usize {
        let groups = &mut self.groups;
        *self.group_of.entry(host).or_insert_with(|| {
            groups.push(HostGroup {
                paths: FxMap::default(),
                routes: Vec::new(),
            });
            groups.len() - 1
        })
    }

    fn tls(&mut self, prepared: &[Arc<Parsed>]) -> TlsClaims {
        let mut claims = TlsClaims::default();
        for p in prepared.iter().filter(|p| p.canary.is_none()) {
            for entry in &p.tls {
                let (host, secret) = match entry {
                    Ok(entry) => entry,
                    Err(message) => {
                        self.diag(&p.ingress, Reason::InvalidHost, message.clone());
                        continue;
                    }
                };
                match claims.get(host) {
                    Some((existing, _)) if existing == secret => {}
                    Some((existing, owner)) => {
                        let existing = existing
                            .as_ref()
                            .map_or("the default certificate".to_string(), |s| {
                                format!("Secret {s}")
                            });
                        let message = format!(
                            "tls host {host} already uses {existing} from Ingress {owner}; this entry is ignored"
                        );
                        self.diag(&p.ingress, Reason::TlsHostConflict, message);
                    }
                    None => {
                        claims.insert(host, (secret.clone(), p.ingress.clone()));
                    }
                }
            }
        }
        claims
    }

    /// Backend `i` of `p`, resolved once per Ingress and compilation (`resolved` is the
    /// Ingress's memo).
    fn backend(
        &mut self,
        p: &'p Parsed,
        i: usize,
        resolved: &mut [Option<Arc<crate::Backend>>],
    ) -> Arc<crate::Backend> {
        resolved[i]
            .get_or_insert_with(|| self.resolve(p, &p.backends[i]))
            .clone()
    }

    /// Resolves a backend, reporting a problem once per (Ingress, backend).
    fn resolve(&mut self, p: &'p Parsed, backend: &'p BackendRef) -> Arc<crate::Backend> {
        let (resolved, problem) = self.resolver.resolve(&p.ingress.namespace, backend);
        let Some(problem) = problem else {
            return resolved;
        };
        if !self.reported.insert((p.ingress.clone(), backend.clone())) {
            return resolved;
        }
        let svc = format!("{}/{}", p.ingress.namespace, backend.service);
        let (reason, message) = match problem {
            Unresolved::UnknownService => (
                Reason::UnknownService,
                format!("Service {svc} does not exist; requests get 503"),
            ),
            Unresolved::UnknownPort => (
                Reason::UnknownServicePort,
                format!(
                    "Service {svc} has no TCP port {}; requests get 503",
                    backend.port
                ),
            ),
            Unresolved::NoEndpoints => (
                Reason::NoEndpoints,
                format!(
                    "Service {svc} port {} has no ready endpoint; requests get 503",
                    backend.port
                ),
            ),
        };
        self.diag(&p.ingress, reason, message);
        resolved
    }

    /// Lays the routes out host by host, then the default backends; builds or reuses
    /// each host's router (whose indices are relative to the host's first route, so an
    /// unchanged host's router serves the next table too).
    fn build(
        self,
        tls: TlsClaims,
        defaults: BTreeMap<&HostRule, usize>,
        routers: &mut FxMap<HostRule, CachedRouter>,
    ) -> (RouteTable, Vec<Diagnostic>) {
        let total = self.groups.iter().map(|g| g.routes.len()).sum::<usize>() + self.defaults.len();
        let mut routes: Vec<Route> = Vec::with_capacity(total);
        let mut table = RouteTable::default();
        let mut diags = self.diags;
        let mut previous = std::mem::take(routers);
        for group in self.groups {
            let host = group.routes[0].host.clone();
            let cached = match previous.remove(&host) {
                Some(cached)
                    if cached.rules.len() == group.routes.len()
                        && cached
                            .rules
                            .iter()
                            .zip(&group.routes)
                            .all(|(rule, route)| route.path.as_ref() == Some(rule)) =>
                {
                    cached
                }
                _ => build_router(&group.routes),
            };
            for (local, message) in &cached.refused {
                let route = &group.routes[*local as usize];
                diags.push(Diagnostic::new(
                    &route.ingress,
                    Reason::InvalidPath,
                    message,
                ));
            }
            let entry = table_host(&mut table, &host);
            entry.router = cached.router.clone();
            entry.base = u32::try_from(routes.len()).expect("fewer than 2^32 routes");
            entry.max_prefix_len = cached.max_prefix_len;
            routers.insert(host, cached);
            routes.extend(group.routes);
        }
        let first_default = routes.len();
        for (host, i) in defaults {
            let idx = u32::try_from(first_default + i).expect("fewer than 2^32 routes");
            table_host(&mut table, host).default = Some(idx);
        }
        routes.extend(self.defaults);
        table.tls_exact = tls.exact.into_iter().map(|(h, (s, _))| (h, s)).collect();
        table.tls_wildcard = tls.wildcard.into_iter().map(|(h, (s, _))| (h, s)).collect();
        table.routes = routes;
        (table, diags)
    }
}

/// A route of `p` under `host`: a path rule, or its default backend when `path` is
/// `None`.
fn route(
    p: &Parsed,
    tls: &TlsClaims,
    host: &HostRule,
    path: Option<&PathRule>,
    backend: Arc<crate::Backend>,
) -> Route {
    let https_redirect = p.options.force_ssl_redirect
        || (p.options.ssl_redirect.unwrap_or(true) && tls.covers(host));
    Route {
        ingress: p.ingress.clone(),
        host: host.clone(),
        path: path.cloned(),
        backend,
        options: p.options.clone(),
        canary: None,
        https_redirect,
    }
}

/// The router of one host's path routes (indices relative to the first of them).
fn build_router(host_routes: &[Route]) -> CachedRouter {
    let mut staged: BTreeMap<String, Slot> = BTreeMap::new();
    let mut max_prefix_len = 0;
    let mut rules = Vec::with_capacity(host_routes.len());
    for (local, route) in host_routes.iter().enumerate() {
        let rule = route.path.as_ref().expect("path routes only");
        if rule.kind == PathKind::Prefix {
            max_prefix_len = max_prefix_len.max(rule.path.len());
        }
        let slot = staged.entry(rule.matchit_key()).or_default();
        match rule.kind {
            PathKind::Exact => slot.exact = Some(local as u32),
            PathKind::Prefix => slot.prefix = Some(local as u32),
        }
        rules.push(rule.clone());
    }
    let mut router = matchit::Router::new();
    let mut refused = Vec::new();
    for (key, slot) in staged {
        if let Err(e) = router.insert(key.as_str(), slot) {
            // Cannot happen with escaped static keys; if it ever does, only this path is
            // lost, never the compilation.
            let any = slot.exact.or(slot.prefix).unwrap_or(0);
            let host = &host_routes[0].host;
            refused.push((
                any,
                format!("{host} {key}: cannot be registered ({e}); skipped"),
            ));
        }
    }
    CachedRouter {
        rules,
        router: Arc::new(router),
        max_prefix_len,
        refused,
    }
}

fn table_host<'t>(table: &'t mut RouteTable, host: &HostRule) -> &'t mut HostRoutes {
    match host {
        HostRule::Any => &mut table.any,
        HostRule::Exact(h) => table.exact.entry(h.clone()).or_default(),
        HostRule::Wildcard(s) => table.wildcard.entry(s.clone()).or_default(),
    }
}

#[cfg(test)]
mod tests;
