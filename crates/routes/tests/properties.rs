//! Property tests: the matchit-based lookup against a naive reference matcher that
//! scans every rule and keeps the best by an `Ord` summary (Exact over Prefix, then the
//! longest path), linkerd-style.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironlb_routes::{
    compile, normalize_path, BackendRef, Compiler, EndpointSliceInput, HostRule, IngressInput,
    Inputs, Match, PathKind, PathType, Route, RouteTable, ServiceInput,
};
use proptest::prelude::*;

fn cluster(ingress: IngressInput) -> Inputs {
    Inputs::new(
        [ingress],
        [ServiceInput::new("shop", "web").port("http", 80, 8080)],
        [EndpointSliceInput::new("shop", "web")
            .port("http", 8080)
            .ready("192.0.2.1")],
    )
}

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "ab", "a.b", "-", "{x}", "x}", "%41", "%2F", "%2e",
    ])
}

fn rule_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 0..4), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash && !segs.is_empty() {
            p.push('/');
        }
        p
    })
}

fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        rule_path(),
        (
            rule_path(),
            prop::sample::select(vec!["", "/", "//", "x", "/a", "?q=1"])
        )
            .prop_map(|(p, tail)| format!("{p}{tail}")),
    ]
}

fn path_type() -> impl Strategy<Value = PathType> {
    prop::sample::select(vec![
        PathType::Exact,
        PathType::Prefix,
        PathType::ImplementationSpecific,
    ])
}

fn rules() -> impl Strategy<Value = Vec<(PathType, String)>> {
    prop::collection::vec((path_type(), rule_path()), 0..12)
}

/// Linkerd-style match summary: greater is better.
fn summary(route: &Route) -> (PathKind, usize) {
    let path = route.path.as_ref().expect("path rule");
    (path.kind, path.path.len())
}

/// The best route among `candidates` for `path`, by scanning them all.
fn reference<'t>(candidates: impl Iterator<Item = &'t Route>, path: &str) -> Option<&'t Route> {
    let path = path.split('?').next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    let path = &*normalize_path(path);
    candidates
        .filter(|r| r.path.as_ref().is_some_and(|p| p.matches(path)))
        .max_by_key(|r| summary(r))
}

fn path_of(m: Match<'_>) -> Option<String> {
    match m {
        Match::Rule(r) => r.path.as_ref().map(|p| p.to_string()),
        _ => None,
    }
}

/// One Ingress of a small, conflict-prone world: few names, hosts and creation times,
/// so updates collide on paths, TLS hosts, default backends and canaries.
fn world_ingress() -> impl Strategy<Value = IngressInput> {
    let host = prop::sample::select(vec!["a.example.com", "*.example.com", "", "b.example.com"]);
    let service = prop::sample::select(vec!["web", "api", "gone"]);
    (
        prop::sample::select(vec!["one", "two", "three", "four"]),
        0..3i64,
        prop::collection::vec((host, path_type(), rule_path(), service), 0..6),
        any::<bool>(),
        any::<bool>(),
        0..4u8,
    )
        .prop_map(|(name, created, paths, default, tls, kind)| {
            let mut ing = IngressInput::new("shop", name).created(created);
            for (host, t, path, svc) in paths {
                ing = ing.path(host, t, &path, BackendRef::new(svc, 80));
            }
            if default {
                ing = ing.default_backend("web", 80);
            }
            if tls {
                ing = ing.tls(&["a.example.com"], name);
            }
            match kind {
                0 => ing
                    .annotation("nginx.ingress.kubernetes.io/canary", "true")
                    .annotation("nginx.ingress.kubernetes.io/canary-by-header", "x-canary"),
                1 => ing.annotation("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
                _ => ing,
            }
        })
}

/// Everything a table answers for a few requests, comparable across tables.
fn answers(table: &RouteTable) -> Vec<String> {
    let mut out = Vec::new();
    for host in ["a.example.com", "x.example.com", "b.example.com", "c.test"] {
        for path in ["/", "/a", "/a/b", "/ab", "/%41", "/b/"] {
            let answer = match table.route(host, path) {
                Match::Rule(r) => format!("rule {r:?}"),
                Match::DefaultBackend(r) => format!("default {r:?}"),
                Match::NotFound => "404".into(),
            };
            out.push(format!("{host}{path} → {answer}"));
        }
        out.push(format!("tls {host} → {:?}", table.tls_secret_for(host)));
    }
    out
}

fn one_host_table(host: &str, rules: &[(PathType, String)]) -> RouteTable {
    let mut ing = IngressInput::new("shop", "web");
    for (t, p) in rules {
        ing = ing.path(host, *t, p, BackendRef::new("web", 80));
    }
    compile(&cluster(ing)).0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lookup_agrees_with_the_reference_matcher(
        rules in rules(),
        requests in prop::collection::vec(request_path(), 1..16),
    ) {
        let table = one_host_table("h.example.com", &rules);
        for req in &requests {
            let want = reference(table.routes().iter(), req).and_then(|r| r.path.as_ref()).map(|p| p.to_string());
            prop_assert_eq!(path_of(table.route("h.example.com", req)), want, "request {:?}", req);
        }
    }

    #[test]
    fn every_valid_rule_is_reachable_by_its_own_path(rules in rules()) {
        let table = one_host_table("", &rules);
        for route in table.routes() {
            let path = route.path.as_ref().unwrap();
            let got = table.route("any.example.com", &path.path).route().unwrap();
            // Its own path reaches it, or an Exact rule on that path beats this Prefix.
            prop_assert!(
                std::ptr::eq(got, route)
                    || (got.path.as_ref().unwrap().kind == PathKind::Exact
                        && path.kind == PathKind::Prefix),
                "{} reached {:?}", path, got.path
            );
        }
    }

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins(
        base in rule_path(),
        extra in prop::collection::vec(segment(), 1..3),
        tail in prop::collection::vec(segment(), 0..3),
    ) {
        let long = format!("{}/{}", base.trim_end_matches('/'), extra.join("/"));
        let req = if tail.is_empty() { long.clone() } else { format!("{long}/{}", tail.join("/")) };
        let table = one_host_table("", &[
            (PathType::ImplementationSpecific, base.clone()),
            (PathType::ImplementationSpecific, long.clone()),
        ]);
        let got = table.route("h", &req).route().unwrap();
        let want = normalize_path(&long);
        let want = if want.len() > 1 { want.trim_end_matches('/') } else { &want };
        prop_assert_eq!(&*got.path.as_ref().unwrap().path, want);

        // Braces are only valid in ImplementationSpecific paths.
        prop_assume!(!req.contains(['{', '}']));
        let table = one_host_table("", &[
            (PathType::ImplementationSpecific, req.clone()),
            (PathType::Exact, req.clone()),
        ]);
        let got = table.route("h", &req).route().unwrap();
        prop_assert_eq!(got.path.as_ref().unwrap().kind, PathKind::Exact);
    }

    #[test]
    fn prefix_is_element_wise_never_a_string_prefix(
        base in rule_path(),
        junk in "[a-z]{1,3}",
    ) {
        let norm = normalize_path(&base);
        prop_assume!(norm != "/");
        let table = one_host_table("", &[(PathType::ImplementationSpecific, base.clone())]);
        let trimmed = norm.trim_end_matches('/');
        let glued = format!("{trimmed}{junk}");
        let below = format!("{trimmed}/{junk}");
        prop_assert!(table.route("h", &glued).route().is_none());
        prop_assert!(table.route("h", &below).route().is_some());
        prop_assert!(table.route("h", trimmed).route().is_some());
    }

    #[test]
    fn host_sets_are_tried_from_most_to_least_specific(
        exact in rules(),
        wildcard in rules(),
        hostless in rules(),
        host in prop::sample::select(vec![
            "a.example.com", "A.Example.COM:8443", "b.example.com", "example.com",
            "x.a.example.com", "other.test", "",
        ]),
        requests in prop::collection::vec(request_path(), 1..8),
    ) {
        let mut ing = IngressInput::new("shop", "web");
        for (h, rules) in [("a.example.com", &exact), ("*.example.com", &wildcard), ("", &hostless)] {
            for (t, p) in rules {
                ing = ing.path(h, *t, p, BackendRef::new("web", 80));
            }
        }
        let table = compile(&cluster(ing)).0;
        let normalized = host.split(':').next().unwrap().to_ascii_lowercase();
        for req in &requests {
            let sets = [
                |h: &HostRule| matches!(h, HostRule::Exact(_)),
                |h: &HostRule| matches!(h, HostRule::Wildcard(_)),
                |h: &HostRule| matches!(h, HostRule::Any),
            ];
            let want = sets.iter().find_map(|in_set| {
                reference(
                    table.routes().iter().filter(|r| in_set(&r.host) && r.host.matches(&normalized)),
                    req,
                )
            });
            let got = table.route(host, req).route();
            prop_assert_eq!(
                got.map(|r| (&r.host, r.path.as_ref())),
                want.map(|r| (&r.host, r.path.as_ref())),
                "host {:?} request {:?}", host, req
            );
        }
    }

    #[test]
    fn a_reused_compiler_agrees_with_a_fresh_compile(
        updates in prop::collection::vec((world_ingress(), any::<bool>(), any::<bool>()), 1..12),
    ) {
        // The world keeps the `Arc` of every Ingress an update did not touch, as the
        // gateway does, so the compiler's per-Ingress and per-host caches are hit.
        let mut world: BTreeMap<String, Arc<IngressInput>> = BTreeMap::new();
        let mut compiler = Compiler::default();
        for (ingress, remove, web_ready) in updates {
            if remove {
                world.remove(&ingress.name);
            } else {
                world.insert(ingress.name.clone(), Arc::new(ingress));
            }
            let web = EndpointSliceInput::new("shop", "web").port("http", 8080);
            let web = if web_ready { web.ready("192.0.2.1") } else { web.not_ready("192.0.2.1") };
            let mut inputs = Inputs::new(
                [],
                [
                    ServiceInput::new("shop", "web").port("http", 80, 8080),
                    ServiceInput::new("shop", "api").port("http", 80, 8080),
                ],
                [web, EndpointSliceInput::new("shop", "api").port("http", 8080).ready("192.0.2.2")],
            );
            inputs.ingresses = world.values().cloned().collect();
            let (reused, reused_diags) = compiler.compile(&inputs);
            let (fresh, fresh_diags) = compile(&inputs);
            prop_assert_eq!(reused_diags, fresh_diags);
            prop_assert_eq!(reused.routes(), fresh.routes());
            prop_assert_eq!(answers(&reused), answers(&fresh));
        }
    }

    #[test]
    fn normalized_paths_are_canonical(path in "/[a-z./%2eEfF]{0,16}") {
        let once = normalize_path(&path).into_owned();
        prop_assert!(once.starts_with('/'));
        prop_assert!(!once.contains("//"), "{}", once);
        prop_assert!(once.split('/').all(|s| s != "." && s != ".."), "{}", once);
        // Idempotent except for escapes that decoding itself produced (`%252e`).
        if !once.contains('%') {
            prop_assert_eq!(normalize_path(&once).into_owned(), once);
        }
    }

    #[test]
    fn lookup_never_panics(host in ".*", path in ".*", sni in ".*") {
        let table = one_host_table("h.example.com", &[
            (PathType::Prefix, "/a".into()),
            (PathType::Exact, "/a/b".into()),
        ]);
        let _ = table.route(&host, &path);
        let _ = table.route(&host, &format!("/{path}"));
        let _ = table.tls_secret_for(&sni);
    }

    #[test]
    fn compile_never_panics_on_arbitrary_hosts_paths_and_annotations(
        host in ".{0,20}",
        path in ".{0,20}",
        key in "(nginx\\.ingress\\.kubernetes\\.io|ironlb\\.io)/[a-z-]{1,24}",
        value in ".{0,20}",
    ) {
        let ing = IngressInput::new("shop", "web")
            .path(&host, PathType::Prefix, &path, BackendRef::new("web", 80))
            .path(&host, PathType::ImplementationSpecific, &path, BackendRef::new("web", 80))
            .tls(&[&host], "cert")
            .annotation(&key, &value);
        let (table, _) = compile(&cluster(ing));
        let _ = table.route(&host, &path);
    }
}
