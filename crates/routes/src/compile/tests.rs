use std::sync::Arc;

use crate::testing::{compiled, ingress, reasons, served};
use crate::{BackendRef, IngressRef, Match, PathType, Reason, RouteTable, SecretRef};

const NGINX: &str = "nginx.ingress.kubernetes.io/";

fn ann(name: &str) -> String {
    format!("{NGINX}{name}")
}

// === hosts ===

#[test]
fn exact_host_beats_wildcard() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("*.example.com", "/", "static", 80)
        .prefix("www.example.com", "/", "web", 80)]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(served(&table, "www.example.com", "/"), "web");
    assert_eq!(served(&table, "img.example.com", "/"), "static");
}

#[test]
fn wildcard_matches_exactly_one_label() {
    let (table, _) = compiled(vec![ingress("shop").prefix(
        "*.example.com",
        "/",
        "web",
        80,
    )]);
    assert_eq!(served(&table, "a.example.com", "/x"), "web");
    assert_eq!(served(&table, "example.com", "/x"), "404");
    assert_eq!(served(&table, "a.b.example.com", "/x"), "404");
}

#[test]
fn hosts_match_case_insensitively_and_ignore_the_port() {
    let (table, _) = compiled(vec![ingress("shop").prefix(
        "Shop.Example.com",
        "/",
        "web",
        80,
    )]);
    assert_eq!(served(&table, "SHOP.example.COM:8080", "/"), "web");
    assert_eq!(served(&table, "shop.example.com.", "/"), "web");
    assert_eq!(served(&table, "shop.example.org", "/"), "404");
}

#[test]
fn rules_without_host_match_every_host_after_host_rules() {
    let (table, _) = compiled(vec![
        ingress("any").prefix("", "/api", "api", 80),
        ingress("shop").prefix("shop.example.com", "/", "web", 80),
    ]);
    // The host's own rules come first…
    assert_eq!(served(&table, "shop.example.com", "/api"), "web");
    // …host-less rules serve every other host…
    assert_eq!(served(&table, "unknown.example.com", "/api/v1"), "api");
    assert_eq!(served(&table, "", "/api"), "api");
    assert_eq!(served(&table, "unknown.example.com", "/"), "404");
}

#[test]
fn hostless_rules_are_tried_when_the_host_rules_have_no_matching_path() {
    let (table, _) = compiled(vec![
        ingress("any").prefix("", "/api", "api", 80),
        ingress("shop").exact("shop.example.com", "/", "web", 80),
        ingress("wild").prefix("*.example.com", "/static", "static", 80),
    ]);
    assert_eq!(served(&table, "shop.example.com", "/"), "web");
    assert_eq!(
        served(&table, "shop.example.com", "/static/app.js"),
        "static"
    );
    assert_eq!(served(&table, "shop.example.com", "/api/x"), "api");
    assert_eq!(served(&table, "shop.example.com", "/other"), "404");
}

// === paths ===

#[test]
fn exact_beats_prefix_on_the_same_path() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("", "/foo", "web", 80)
        .exact("", "/foo", "api", 80)]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(served(&table, "h", "/foo"), "api");
    assert_eq!(served(&table, "h", "/foo/"), "web");
    assert_eq!(served(&table, "h", "/foo/bar"), "web");
}

#[test]
fn exact_beats_a_longer_prefix_only_on_its_own_path() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/a", "web", 80)
        .exact("", "/a/b/c", "api", 80)]);
    assert_eq!(served(&table, "h", "/a/b/c"), "api");
    assert_eq!(served(&table, "h", "/a/b/c/"), "web");
    assert_eq!(served(&table, "h", "/a/b/c/d"), "web");
    assert_eq!(served(&table, "h", "/a/b"), "web");
}

#[test]
fn longest_prefix_wins() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/", "web", 80)
        .prefix("", "/api", "api", 80)
        .prefix("", "/api/static", "static", 80)]);
    assert_eq!(served(&table, "h", "/"), "web");
    assert_eq!(served(&table, "h", "/index.html"), "web");
    assert_eq!(served(&table, "h", "/api"), "api");
    assert_eq!(served(&table, "h", "/api/users"), "api");
    assert_eq!(served(&table, "h", "/api/static/x.css"), "static");
    assert_eq!(served(&table, "h", "/api/staticx"), "api");
}

#[test]
fn prefix_matches_element_wise() {
    let (table, _) = compiled(vec![ingress("shop").prefix("", "/foo", "web", 80)]);
    assert_eq!(served(&table, "h", "/foo"), "web");
    assert_eq!(served(&table, "h", "/foo/"), "web");
    assert_eq!(served(&table, "h", "/foo/bar"), "web");
    assert_eq!(served(&table, "h", "/foobar"), "404");
    assert_eq!(served(&table, "h", "/fo"), "404");
}

#[test]
fn trailing_slash_is_ignored_for_prefix_but_kept_for_exact() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/foo/", "web", 80)
        .exact("", "/bar/", "api", 80)]);
    assert_eq!(served(&table, "h", "/foo"), "web");
    assert_eq!(served(&table, "h", "/foo/x"), "web");
    assert_eq!(served(&table, "h", "/bar/"), "api");
    assert_eq!(served(&table, "h", "/bar"), "404");
}

#[test]
fn paths_are_case_sensitive() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/Foo", "web", 80)
        .exact("", "/bar", "api", 80)]);
    assert_eq!(served(&table, "h", "/Foo/x"), "web");
    assert_eq!(served(&table, "h", "/foo/x"), "404");
    assert_eq!(served(&table, "h", "/BAR"), "404");
}

#[test]
fn implementation_specific_behaves_as_prefix() {
    let (table, _) = compiled(vec![ingress("shop").path(
        "",
        PathType::ImplementationSpecific,
        "/docs",
        BackendRef::new("web", 80),
    )]);
    assert_eq!(served(&table, "h", "/docs"), "web");
    assert_eq!(served(&table, "h", "/docs/a"), "web");
    assert_eq!(served(&table, "h", "/docsa"), "404");
}

#[test]
fn braces_in_paths_are_literal_not_matchit_parameters() {
    let (table, diags) = compiled(vec![ingress("shop")
        .path(
            "",
            PathType::ImplementationSpecific,
            "/t/{id}",
            BackendRef::new("web", 80),
        )
        .prefix("", "/t", "api", 80)]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(served(&table, "h", "/t/{id}"), "web");
    assert_eq!(served(&table, "h", "/t/{id}/x"), "web");
    assert_eq!(served(&table, "h", "/t/42"), "api");
}

#[test]
fn query_strings_are_ignored_and_an_empty_path_is_root() {
    let (table, _) = compiled(vec![ingress("shop")
        .exact("", "/", "web", 80)
        .exact("", "/search", "api", 80)]);
    assert_eq!(served(&table, "h", "/search?q=x"), "api");
    assert_eq!(served(&table, "h", ""), "web");
    assert_eq!(served(&table, "h", "?x"), "web");
    assert_eq!(served(&table, "h", "*"), "404");
}

#[test]
fn an_invalid_path_is_skipped_and_the_rest_of_the_ingress_still_works() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("", "/ok", "web", 80)
        .prefix("", "/x;proxy_pass http://evil", "api", 80)
        .path(
            "",
            PathType::ImplementationSpecific,
            "/api(/|$)(.*)",
            BackendRef::new("api", 80),
        )]);
    assert_eq!(
        reasons(&diags),
        [Reason::InvalidPath, Reason::RegexPathUnsupported]
    );
    assert_eq!(diags[0].ingress, IngressRef::new("shop", "shop"));
    assert_eq!(served(&table, "h", "/ok"), "web");
    assert_eq!(table.len(), 1);
}

#[test]
fn an_invalid_host_skips_its_rule_only() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("bad_host.example.com", "/", "api", 80)
        .prefix("good.example.com", "/", "web", 80)]);
    assert_eq!(reasons(&diags), [Reason::InvalidHost]);
    assert_eq!(served(&table, "good.example.com", "/"), "web");
}

// === conflicts ===

#[test]
fn the_oldest_ingress_wins_a_host_and_path_and_the_other_is_told() {
    let (table, diags) = compiled(vec![
        ingress("newer")
            .created(200)
            .prefix("shop.example.com", "/", "api", 80),
        ingress("older")
            .created(100)
            .prefix("shop.example.com", "/", "web", 80)
            .prefix("shop.example.com", "/only-older", "web", 80),
    ]);
    assert_eq!(served(&table, "shop.example.com", "/"), "web");
    assert_eq!(reasons(&diags), [Reason::PathConflict]);
    assert_eq!(diags[0].ingress, IngressRef::new("shop", "newer"));
    assert!(
        diags[0].message.contains("shop/older"),
        "{}",
        diags[0].message
    );
}

#[test]
fn equal_age_conflicts_are_broken_by_namespace_then_name() {
    let b = ingress("b").prefix("h.example.com", "/", "api", 80);
    let a = ingress("a").prefix("h.example.com", "/", "web", 80);
    let (table, diags) = compiled(vec![b, a]);
    assert_eq!(served(&table, "h.example.com", "/"), "web");
    assert_eq!(diags[0].ingress.name, "b");
}

#[test]
fn prefix_with_and_without_trailing_slash_is_the_same_claim() {
    let (_, diags) = compiled(vec![ingress("shop").prefix("", "/foo", "web", 80).path(
        "",
        PathType::ImplementationSpecific,
        "/foo/",
        BackendRef::new("api", 80),
    )]);
    assert_eq!(reasons(&diags), [Reason::PathConflict]);
}

#[test]
fn exact_and_prefix_on_the_same_path_do_not_conflict() {
    let (_, diags) = compiled(vec![
        ingress("a").created(1).prefix("", "/foo", "web", 80),
        ingress("b").created(2).exact("", "/foo", "api", 80),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
}

// === backends ===

#[test]
fn unknown_service_or_port_keeps_the_route_with_no_endpoints() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("", "/gone", "missing", 80)
        .prefix("", "/gone2", "missing", 80)
        .prefix("", "/port", "web", 81)]);
    assert_eq!(
        reasons(&diags),
        [Reason::UnknownService, Reason::UnknownServicePort]
    );
    let gone = table.route("h", "/gone").route().unwrap();
    assert!(gone.backend.endpoints.is_empty());
    assert_eq!(served(&table, "h", "/port"), "web");
}

#[test]
fn a_backend_without_endpoints_is_reported() {
    let mut inputs = crate::testing::cluster(vec![ingress("shop").prefix("", "/", "web", 80)]);
    inputs.endpoint_slices.retain(|s| s.service != "web");
    let (table, diags) = crate::compile(&inputs);
    assert_eq!(reasons(&diags), [Reason::NoEndpoints]);
    assert!(table
        .route("h", "/")
        .route()
        .unwrap()
        .backend
        .endpoints
        .is_empty());
}

#[test]
fn routes_to_the_same_service_port_share_one_backend() {
    let (table, _) = compiled(vec![
        ingress("a").prefix("", "/a", "web", 80),
        ingress("b").prefix("", "/b", "web", 80),
    ]);
    let a = table.route("h", "/a").route().unwrap();
    let b = table.route("h", "/b").route().unwrap();
    assert!(std::sync::Arc::ptr_eq(&a.backend, &b.backend));
    assert_eq!(a.backend.endpoints[0].to_string(), "192.0.2.1:8080");
}

// === default backends ===

#[test]
fn default_backend_of_the_host_then_catch_all_then_404() {
    let (table, diags) = compiled(vec![
        ingress("catch-all")
            .created(1)
            .default_backend("fallback", 80),
        ingress("shop")
            .created(2)
            .prefix("shop.example.com", "/app", "web", 80)
            .default_backend("static", 80),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(served(&table, "shop.example.com", "/app"), "web");
    assert_eq!(
        served(&table, "shop.example.com", "/else"),
        "default:static"
    );
    assert_eq!(
        served(&table, "other.example.com", "/app"),
        "default:fallback"
    );
    let (without, _) = compiled(vec![ingress("shop").prefix(
        "shop.example.com",
        "/app",
        "web",
        80,
    )]);
    assert_eq!(served(&without, "shop.example.com", "/else"), "404");
    assert_eq!(without.route("x", "/"), Match::NotFound);
}

#[test]
fn default_backend_conflicts_go_to_the_oldest() {
    let (table, diags) = compiled(vec![
        ingress("new").created(2).default_backend("api", 80),
        ingress("old").created(1).default_backend("fallback", 80),
    ]);
    assert_eq!(served(&table, "x", "/"), "default:fallback");
    assert_eq!(reasons(&diags), [Reason::DefaultBackendConflict]);
    assert_eq!(diags[0].ingress.name, "new");
}

#[test]
fn ingress_with_hostless_rules_and_default_backend_sets_the_catch_all() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/api", "api", 80)
        .default_backend("fallback", 80)]);
    assert_eq!(served(&table, "x", "/api"), "api");
    assert_eq!(served(&table, "x", "/"), "default:fallback");
}

// === TLS ===

#[test]
fn tls_secrets_by_host_with_wildcards() {
    let (table, diags) = compiled(vec![ingress("shop")
        .tls(&["shop.example.com"], "shop-cert")
        .tls(&["*.example.com"], "wild-cert")
        .tls(&["nocert.example.org"], "")]);
    assert!(diags.is_empty(), "{diags:?}");
    let name = |sni| {
        table
            .tls_secret_for(sni)
            .map(|s: &SecretRef| s.name.clone())
    };
    assert_eq!(name("shop.example.com").as_deref(), Some("shop-cert"));
    assert_eq!(name("SHOP.example.com").as_deref(), Some("shop-cert"));
    assert_eq!(name("img.example.com").as_deref(), Some("wild-cert"));
    assert_eq!(name("a.b.example.com"), None);
    assert_eq!(name("nocert.example.org"), None);
    assert!(table.has_tls("nocert.example.org"));
    assert!(!table.has_tls("example.net"));
    let secrets: Vec<String> = table.tls_secrets().map(|s| s.to_string()).collect();
    assert_eq!(secrets, ["shop/shop-cert", "shop/wild-cert"]);
}

#[test]
fn tls_host_conflicts_are_won_by_the_oldest() {
    let (table, diags) = compiled(vec![
        ingress("new")
            .created(2)
            .tls(&["shop.example.com"], "new-cert"),
        ingress("old")
            .created(1)
            .tls(&["shop.example.com"], "old-cert"),
        ingress("same")
            .created(3)
            .tls(&["shop.example.com"], "old-cert"),
    ]);
    assert_eq!(
        table.tls_secret_for("shop.example.com").unwrap().name,
        "old-cert"
    );
    assert_eq!(reasons(&diags), [Reason::TlsHostConflict]);
    assert_eq!(diags[0].ingress.name, "new");
}

#[test]
fn https_redirect_defaults_on_for_tls_hosts() {
    let (table, _) = compiled(vec![
        ingress("tls")
            .prefix("secure.example.com", "/", "web", 80)
            .prefix("covered.example.com", "/", "web", 80)
            .tls(&["secure.example.com", "*.example.com"], "cert"),
        ingress("plain").prefix("plain.example.org", "/", "web", 80),
        ingress("off")
            .prefix("off.example.net", "/", "web", 80)
            .tls(&["off.example.net"], "cert")
            .annotation(&ann("ssl-redirect"), "false"),
        ingress("forced")
            .prefix("forced.example.org", "/", "web", 80)
            .annotation(&ann("force-ssl-redirect"), "true"),
    ]);
    let redirects = |host| table.route(host, "/").route().unwrap().https_redirect;
    assert!(redirects("secure.example.com"));
    assert!(redirects("covered.example.com"));
    assert!(!redirects("plain.example.org"));
    assert!(!redirects("off.example.net"));
    assert!(redirects("forced.example.org"));
}

// === annotations on routes ===

#[test]
fn annotation_options_reach_every_route_of_the_ingress() {
    let (table, diags) = compiled(vec![ingress("shop")
        .prefix("", "/a", "web", 80)
        .prefix("", "/b", "api", 80)
        .annotation(&ann("proxy-read-timeout"), "90")
        .annotation(&ann("configuration-snippet"), "more_set_headers 'x: y';")
        .annotation(&ann("enable-cors"), "true")
        .annotation(&ann("limit-rps"), "10")]);
    assert_eq!(
        reasons(&diags),
        [Reason::SnippetRefused, Reason::UnsupportedAnnotation]
    );
    for path in ["/a", "/b"] {
        let route = table.route("h", path).route().unwrap();
        assert_eq!(route.options.read_timeout.unwrap().as_secs(), 90);
    }
}

#[test]
fn rewrite_target_replaces_the_matched_prefix() {
    let (table, _) = compiled(vec![
        ingress("api")
            .prefix("", "/api", "api", 80)
            .annotation(&ann("rewrite-target"), "/"),
        ingress("v2")
            .prefix("", "/v2", "web", 80)
            .exact("", "/exact", "web", 80)
            .annotation(&ann("rewrite-target"), "/internal"),
        ingress("plain").prefix("", "/plain", "web", 80),
    ]);
    let rewrite = |p| table.route("h", p).route().unwrap().rewrite_path(p);
    assert_eq!(rewrite("/api").as_deref(), Some("/"));
    assert_eq!(rewrite("/api/").as_deref(), Some("/"));
    assert_eq!(rewrite("/api/users/1").as_deref(), Some("/users/1"));
    assert_eq!(rewrite("/v2/x").as_deref(), Some("/internal/x"));
    assert_eq!(rewrite("/v2").as_deref(), Some("/internal"));
    assert_eq!(rewrite("/exact").as_deref(), Some("/internal"));
    assert_eq!(rewrite("/plain/x"), None);
}

// === canaries ===

#[test]
fn a_canary_attaches_to_the_main_route_as_a_weighted_alternative() {
    let (table, diags) = compiled(vec![
        ingress("main")
            .created(1)
            .prefix("shop.example.com", "/", "web", 80),
        ingress("canary")
            .created(2)
            .prefix("shop.example.com", "/", "canary", 80)
            .annotation(&ann("canary"), "true")
            .annotation(&ann("canary-weight"), "10"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let route = table.route("shop.example.com", "/").route().unwrap();
    assert_eq!(&*route.backend.service, "web");
    let canary = route.canary.as_ref().unwrap();
    assert_eq!(&*canary.backend.service, "canary");
    assert_eq!(canary.rule.weight, 10);
    assert_eq!(canary.ingress.name, "canary");
    assert_eq!(table.len(), 1);
}

#[test]
fn a_canary_without_main_route_or_a_second_canary_is_reported() {
    let canary = |name: &str, created, path: &str| {
        ingress(name)
            .created(created)
            .prefix("shop.example.com", path, "canary", 80)
            .annotation(&ann("canary"), "true")
    };
    let (table, diags) = compiled(vec![
        ingress("main").prefix("shop.example.com", "/", "web", 80),
        canary("first", 1, "/"),
        canary("second", 2, "/"),
        canary("orphan", 3, "/nothing-here"),
    ]);
    assert_eq!(
        reasons(&diags),
        [Reason::CanaryConflict, Reason::CanaryWithoutMainRoute]
    );
    assert_eq!(diags[0].ingress.name, "second");
    assert_eq!(diags[1].ingress.name, "orphan");
    let route = table.route("shop.example.com", "/").route().unwrap();
    assert_eq!(route.canary.as_ref().unwrap().ingress.name, "first");
    assert_eq!(served(&table, "shop.example.com", "/nothing-here"), "web");
}

#[test]
fn canaries_never_claim_paths_or_tls_hosts() {
    let (table, _) = compiled(vec![ingress("canary")
        .prefix("shop.example.com", "/", "canary", 80)
        .tls(&["shop.example.com"], "canary-cert")
        .annotation(&ann("canary"), "true")]);
    assert_eq!(served(&table, "shop.example.com", "/"), "404");
    assert!(!table.has_tls("shop.example.com"));
}

#[test]
fn diagnostics_display_names_the_ingress_and_reason() {
    let (_, diags) = compiled(vec![ingress("shop").prefix("", "/a b", "web", 80)]);
    let text = diags[0].to_string();
    assert!(text.starts_with("shop/shop InvalidPath: "), "{text}");
}

#[test]
fn long_and_non_ascii_request_paths_still_find_short_prefixes() {
    let (table, _) = compiled(vec![ingress("shop")
        .prefix("", "/a", "web", 80)
        .prefix("", "/", "api", 80)]);
    let long = format!("/a/{}", "é/".repeat(2000));
    assert_eq!(served(&table, "h", &long), "web");
    assert_eq!(served(&table, "h", "/é/a"), "api");
    assert_eq!(served(&table, "h", "/aé"), "api");
}

#[test]
fn encoded_or_dotted_paths_cannot_dodge_a_more_specific_rule() {
    let (table, _) = compiled(vec![
        ingress("admin")
            .prefix("", "/admin", "api", 80)
            .annotation(&ann("allowlist-source-range"), "192.0.2.0/24"),
        ingress("public").prefix("", "/", "web", 80),
    ]);
    for sneaky in [
        "/%61dmin",
        "/public/../admin/x",
        "//admin",
        "/./admin",
        "/%2e%2e/admin",
    ] {
        assert_eq!(served(&table, "h", sneaky), "api", "{sneaky}");
    }
}

#[test]
fn a_canary_with_a_missing_service_is_reported() {
    let (table, diags) = compiled(vec![
        ingress("main").created(1).prefix("", "/", "web", 80),
        ingress("canary")
            .created(2)
            .prefix("", "/", "missing", 80)
            .annotation(&ann("canary"), "true"),
    ]);
    assert_eq!(reasons(&diags), [Reason::UnknownService]);
    assert_eq!(diags[0].ingress.name, "canary");
    assert_eq!(table.backends().len(), 2);
}

#[test]
fn hostless_and_wildcard_routes_redirect_for_request_hosts_with_tls() {
    let (table, _) = compiled(vec![
        ingress("any").prefix("", "/", "web", 80),
        ingress("wild").prefix("*.example.org", "/", "api", 80),
        ingress("certs").tls(&["secure.example.com", "a.example.org"], "cert"),
        ingress("off")
            .prefix("", "/off", "web", 80)
            .annotation(&ann("ssl-redirect"), "false"),
    ]);
    let redirects = |host, path| {
        let route = table.route(host, path).route().unwrap();
        table.https_redirect(route, host)
    };
    assert!(redirects("secure.example.com", "/"));
    assert!(redirects("a.example.org", "/"));
    assert!(!redirects("b.example.org", "/"));
    assert!(!redirects("plain.example.com", "/"));
    assert!(!redirects("secure.example.com", "/off"));
}

// === reuse between compilations ===

#[test]
fn a_reused_compiler_rebuilds_only_the_changed_host() {
    let stay = Arc::new(ingress("stay").prefix("a.example.com", "/", "web", 80));
    let change = ingress("change").prefix("b.example.com", "/", "web", 80);
    let mut inputs = crate::testing::cluster(vec![]);
    inputs.ingresses = vec![stay.clone(), Arc::new(change.clone())];
    let mut compiler = crate::Compiler::default();
    let (before, _) = compiler.compile(&inputs);

    inputs.ingresses = vec![
        stay,
        Arc::new(change.prefix("b.example.com", "/new", "api", 80)),
    ];
    let (after, diags) = compiler.compile(&inputs);
    assert!(diags.is_empty(), "{diags:?}");
    let router = |t: &RouteTable, h: &str| t.exact[h].router.clone();
    assert!(Arc::ptr_eq(
        &router(&before, "a.example.com"),
        &router(&after, "a.example.com")
    ));
    assert!(!Arc::ptr_eq(
        &router(&before, "b.example.com"),
        &router(&after, "b.example.com")
    ));
    assert_eq!(served(&after, "a.example.com", "/x"), "web");
    assert_eq!(served(&after, "b.example.com", "/new/x"), "api");
    assert_eq!(served(&after, "b.example.com", "/x"), "web");
}
