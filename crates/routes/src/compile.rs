//! Compilation: [`Inputs`] → [`RouteTable`] plus diagnostics.

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
pub fn compile(inputs: &Inputs) -> (RouteTable, Vec<Diagnostic>) {
    let mut ingresses: Vec<&IngressInput> = inputs.ingresses.iter().collect();
    ingresses.sort_by(|a, b| {
        (a.creation_timestamp, &a.namespace, &a.name).cmp(&(
            b.creation_timestamp,
            &b.namespace,
            &b.name,
        ))
    });
    let mut c = Compiler {
        diags: Vec::new(),
        resolver: Resolver::new(&inputs.services, &inputs.endpoint_slices),
        reported: BTreeSet::new(),
        routes: Vec::new(),
    };

    let prepared: Vec<Prepared> = ingresses.iter().map(|ing| c.prepare(ing)).collect();
    let tls = c.tls(&prepared);

    // Main routes, oldest Ingress first so that it wins conflicts.
    let mut claims: FxMap<(HostRule, PathRule), u32> = FxMap::default();
    for p in prepared.iter().filter(|p| p.canary.is_none()) {
        for (host, rule, backend) in c.paths(p) {
            if let Some(&winner) = claims.get(&(host.clone(), rule.clone())) {
                let owner = &c.routes[winner as usize].ingress;
                let message = if **owner == *p.ingress {
                    format!("{host} {rule} is listed twice; the first one is used")
                } else {
                    format!("{host} {rule} is already served by the older Ingress {owner}; this path is ignored")
                };
                c.diag(&p.ingress, Reason::PathConflict, message);
                continue;
            }
            let idx = c.push_route(p, &tls, host.clone(), Some(rule.clone()), backend);
            claims.insert((host, rule), idx);
        }
    }

    // Default backends: per host (oldest Ingress with rules for that host wins) and the
    // catch-all one (oldest Ingress whose rules are all host-less).
    let mut defaults: BTreeMap<HostRule, u32> = BTreeMap::new();
    for p in prepared.iter().filter(|p| p.canary.is_none()) {
        let Some(backend) = &p.input.default_backend else {
            continue;
        };
        let mut hosts: BTreeSet<HostRule> = p
            .input
            .rules
            .iter()
            .filter_map(|r| HostRule::parse(r.host.as_deref().unwrap_or("")).ok())
            .filter(|h| *h != HostRule::Any)
            .collect();
        if hosts.is_empty() {
            hosts.insert(HostRule::Any);
        }
        let mut lost = Vec::new();
        for host in hosts {
            if let Some(&winner) = defaults.get(&host) {
                lost.push(format!(
                    "{host} (kept: {})",
                    c.routes[winner as usize].ingress
                ));
                continue;
            }
            let idx = c.push_route(p, &tls, host.clone(), None, backend);
            defaults.insert(host, idx);
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
    for p in &prepared {
        let Some(rule) = &p.canary else { continue };
        for (host, path, backend) in c.paths(p) {
            let Some(&idx) = claims.get(&(host.clone(), path.clone())) else {
                c.diag(
                    &p.ingress,
                    Reason::CanaryWithoutMainRoute,
                    format!("canary path {host} {path} has no main Ingress with the same host and path; ignored"),
                );
                continue;
            };
            if let Some(existing) = &c.routes[idx as usize].canary {
                let message = format!(
                    "{host} {path} already has the older canary {}; ignored",
                    existing.ingress
                );
                c.diag(&p.ingress, Reason::CanaryConflict, message);
                continue;
            }
            let backend = c.resolve(p, backend);
            let main = &mut c.routes[idx as usize];
            main.canary = Some(Canary {
                ingress: p.ingress.clone(),
                backend,
                rule: rule.clone(),
                options: p.options.clone(),
            });
        }
    }

    c.build(tls, defaults)
}

/// An Ingress with its parsed annotations.
struct Prepared<'a> {
    input: &'a IngressInput,
    ingress: Arc<IngressRef>,
    options: Arc<RouteOptions>,
    canary: Option<CanaryRule>,
}

/// TLS claims: host → (secret, claiming Ingress).
type TlsClaims = BTreeMap<HostRule, (Option<SecretRef>, Arc<IngressRef>)>;

struct Compiler<'a> {
    diags: Vec<Diagnostic>,
    resolver: Resolver<'a>,
    /// (Ingress, backend) pairs whose resolution problem was already reported.
    reported: BTreeSet<(Arc<IngressRef>, BackendRef)>,
    routes: Vec<Route>,
}

impl<'a> Compiler<'a> {
    fn diag(&mut self, ingress: &IngressRef, reason: Reason, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(ingress, reason, message));
    }

    fn prepare<'i>(&mut self, input: &'i IngressInput) -> Prepared<'i> {
        let ingress = Arc::new(input.key());
        let parsed = annotations::parse(&input.annotations);
        for (reason, message) in parsed.problems {
            self.diag(&ingress, reason, message);
        }
        Prepared {
            input,
            ingress,
            options: Arc::new(parsed.options),
            canary: parsed.canary,
        }
    }

    fn tls(&mut self, prepared: &[Prepared]) -> TlsClaims {
        let mut claims = TlsClaims::new();
        for p in prepared.iter().filter(|p| p.canary.is_none()) {
            for entry in &p.input.tls {
                let secret = entry.secret_name.as_ref().map(|name| SecretRef {
                    namespace: p.input.namespace.clone(),
                    name: name.clone(),
                });
                for raw in &entry.hosts {
                    let host = match HostRule::parse(raw) {
                        Ok(HostRule::Any) => continue,
                        Ok(host) => host,
                        Err(e) => {
                            self.diag(&p.ingress, Reason::InvalidHost, format!("tls: {e}"));
                            continue;
                        }
                    };
                    match claims.get(&host) {
                        Some((existing, _)) if *existing == secret => {}
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
        }
        claims
    }

    /// The valid (host, path, backend) triples of an Ingress; invalid ones are reported.
    fn paths<'p>(&mut self, p: &'p Prepared) -> Vec<(HostRule, PathRule, &'p BackendRef)> {
        let mut out = Vec::new();
        for rule in &p.input.rules {
            let host = match HostRule::parse(rule.host.as_deref().unwrap_or("")) {
                Ok(host) => host,
                Err(e) => {
                    self.diag(
                        &p.ingress,
                        Reason::InvalidHost,
                        format!("{e}; rule skipped"),
                    );
                    continue;
                }
            };
            for path in &rule.paths {
                match PathRule::parse(&path.path, path.path_type) {
                    Ok(rule) => out.push((host.clone(), rule, &path.backend)),
                    Err(e @ Error::RegexPath { .. }) => self.diag(
                        &p.ingress,
                        Reason::RegexPathUnsupported,
                        format!("{e}; skipped"),
                    ),
                    Err(e) => self.diag(&p.ingress, Reason::InvalidPath, format!("{e}; skipped")),
                }
            }
        }
        out
    }

    /// Resolves a backend, reporting a problem once per (Ingress, backend).
    fn resolve(&mut self, p: &Prepared, backend: &BackendRef) -> Arc<crate::Backend> {
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

    fn push_route(
        &mut self,
        p: &Prepared,
        tls: &TlsClaims,
        host: HostRule,
        path: Option<PathRule>,
        backend: &BackendRef,
    ) -> u32 {
        let resolved = self.resolve(p, backend);
        let https_redirect = p.options.force_ssl_redirect
            || (p.options.ssl_redirect.unwrap_or(true) && host_has_tls(tls, &host));
        let idx = u32::try_from(self.routes.len()).expect("fewer than 2^32 routes");
        self.routes.push(Route {
            ingress: p.ingress.clone(),
            host,
            path,
            backend: resolved,
            options: p.options.clone(),
            canary: None,
            https_redirect,
        });
        idx
    }

    fn build(
        self,
        tls: TlsClaims,
        defaults: BTreeMap<HostRule, u32>,
    ) -> (RouteTable, Vec<Diagnostic>) {
        let mut staged: FxMap<&HostRule, BTreeMap<String, Slot>> = FxMap::default();
        let mut max_prefix: FxMap<&HostRule, usize> = FxMap::default();
        for (idx, route) in self.routes.iter().enumerate() {
            let Some(rule) = &route.path else { continue };
            let slots = staged.entry(&route.host).or_default();
            let idx = idx as u32;
            if rule.kind == PathKind::Prefix {
                let max = max_prefix.entry(&route.host).or_default();
                *max = (*max).max(rule.path.len());
            }
            let slot = slots.entry(rule.matchit_key()).or_default();
            match rule.kind {
                PathKind::Exact => slot.exact = Some(idx),
                PathKind::Prefix => slot.prefix = Some(idx),
            }
        }
        let mut table = RouteTable::default();
        let mut diags = self.diags;
        for (host, slots) in staged {
            let mut routes = HostRoutes::default();
            for (key, slot) in slots {
                if let Err(e) = routes.router.insert(key.as_str(), slot) {
                    // Cannot happen with escaped static keys; if it ever does, only this
                    // path is lost, never the compilation.
                    let any = slot.exact.or(slot.prefix).unwrap_or(0) as usize;
                    diags.push(Diagnostic::new(
                        &self.routes[any].ingress,
                        Reason::InvalidPath,
                        format!("{host} {key}: cannot be registered ({e}); skipped"),
                    ));
                }
            }
            let entry = table_host(&mut table, host);
            entry.router = routes.router;
            entry.max_prefix_len = max_prefix.get(host).copied().unwrap_or(0);
        }
        for (host, idx) in defaults {
            table_host(&mut table, &host).default = Some(idx);
        }
        for (host, (secret, _)) in tls {
            match host {
                HostRule::Exact(h) => table.tls_exact.insert(h, secret),
                HostRule::Wildcard(s) => table.tls_wildcard.insert(s, secret),
                HostRule::Any => None,
            };
        }
        table.routes = self.routes;
        (table, diags)
    }
}

fn table_host<'t>(table: &'t mut RouteTable, host: &HostRule) -> &'t mut HostRoutes {
    match host {
        HostRule::Any => &mut table.any,
        HostRule::Exact(h) => table.exact.entry(h.clone()).or_default(),
        HostRule::Wildcard(s) => table.wildcard.entry(s.clone()).or_default(),
    }
}

/// Whether requests for a rule host arrive with TLS configured: the host itself is in a
/// `tls` entry, or (for an exact host) a wildcard `tls` entry covers it.
fn host_has_tls(tls: &TlsClaims, host: &HostRule) -> bool {
    match host {
        HostRule::Any => false,
        HostRule::Wildcard(_) => tls.contains_key(host),
        HostRule::Exact(h) => {
            tls.contains_key(host)
                || crate::host::wildcard_suffix(h)
                    .is_some_and(|s| tls.contains_key(&HostRule::Wildcard(s.into())))
        }
    }
}

#[cfg(test)]
mod tests;
