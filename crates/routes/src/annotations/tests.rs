use super::*;

fn parsed(pairs: &[(&str, &str)]) -> Parsed {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(&map)
}

fn nginx(name: &str, value: &str) -> Parsed {
    parsed(&[(&format!("nginx.ingress.kubernetes.io/{name}"), value)])
}

fn reasons(p: &Parsed) -> Vec<Reason> {
    p.problems.iter().map(|(r, _)| *r).collect()
}

#[test]
fn no_annotations_mean_defaults() {
    let p = parsed(&[]);
    assert_eq!(p, Parsed::default());
}

#[test]
fn known_names_are_unique_and_the_readme_table_lists_them_all() {
    let table = markdown_table();
    for (i, row) in KNOWN.iter().enumerate() {
        assert!(
            KNOWN[i + 1..].iter().all(|other| other.name != row.name),
            "{} listed twice",
            row.name
        );
        assert!(table.contains(&format!("`{}`", row.name)));
    }
}

#[test]
fn ironlb_prefix_wins_over_nginx_prefix() {
    let p = parsed(&[
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "10"),
        ("ironlb.io/proxy-read-timeout", "20"),
    ]);
    assert_eq!(p.options.read_timeout, Some(Duration::from_secs(20)));
}

#[test]
fn snippets_are_refused_one_diagnostic_each() {
    let p = parsed(&[
        (
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "more_set_headers x;",
        ),
        (
            "nginx.ingress.kubernetes.io/server-snippet",
            "location / {}",
        ),
        ("ironlb.io/auth-snippet", "x"),
    ]);
    assert_eq!(reasons(&p), [Reason::SnippetRefused; 3]);
}

#[test]
fn unsupported_annotations_give_one_diagnostic_per_ingress_and_unknown_ones_none() {
    let p = parsed(&[
        ("nginx.ingress.kubernetes.io/enable-cors", "true"),
        ("nginx.ingress.kubernetes.io/limit-rps", "5"),
        ("nginx.ingress.kubernetes.io/auth-url", "http://auth"),
        ("nginx.ingress.kubernetes.io/no-such-thing", "1"),
        ("example.com/enable-cors", "true"),
    ]);
    assert_eq!(reasons(&p), [Reason::UnsupportedAnnotation]);
    let message = &p.problems[0].1;
    assert!(message.contains("enable-cors") && message.contains("limit-rps"));
    assert!(message.contains("auth-url"));
    assert!(!message.contains("no-such-thing"));
}

#[test]
fn body_size_uses_nginx_syntax() {
    assert_eq!(parse_size("8m"), Ok(BodySize::Bytes(8 << 20)));
    assert_eq!(parse_size("1G"), Ok(BodySize::Bytes(1 << 30)));
    assert_eq!(parse_size("512k"), Ok(BodySize::Bytes(512 << 10)));
    assert_eq!(parse_size("1000"), Ok(BodySize::Bytes(1000)));
    assert_eq!(parse_size("0"), Ok(BodySize::Unlimited));
    for bad in ["", "m", "8mb", "-1", "1.5m", "99999999999999999999g"] {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
    let p = nginx("proxy-body-size", "lots");
    assert_eq!(p.options.body_size, None);
    assert_eq!(reasons(&p), [Reason::InvalidAnnotation]);
}

#[test]
fn timeouts_are_seconds() {
    let p = parsed(&[
        ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "5"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "0"),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout", "120"),
    ]);
    assert_eq!(p.options.connect_timeout, Some(Duration::from_secs(5)));
    assert_eq!(p.options.read_timeout, None);
    assert_eq!(p.options.send_timeout, Some(Duration::from_secs(120)));
    assert_eq!(reasons(&p), [Reason::InvalidAnnotation]);
}

#[test]
fn cidrs_parse_and_contain() {
    let net = Cidr::parse("192.0.2.77/24").unwrap();
    assert_eq!(net.to_string(), "192.0.2.0/24");
    assert!(net.contains("192.0.2.1".parse().unwrap()));
    assert!(net.contains("::ffff:192.0.2.9".parse().unwrap()));
    assert!(!net.contains("198.51.100.1".parse().unwrap()));
    assert!(!net.contains("2001:db8::1".parse().unwrap()));
    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
    let host = Cidr::parse("203.0.113.5").unwrap();
    assert_eq!(host.prefix_len, 32);
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("203.0.113.5".parse().unwrap()));
    for bad in [
        "192.0.2.0/33",
        "192.0.2.0/",
        "192.0.2/24",
        "x",
        "2001:db8::/129",
        "1.2.3.4/+1",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn allowlist_drops_invalid_entries_and_stays_narrow() {
    let p = nginx("whitelist-source-range", "192.0.2.0/24, bogus");
    let allow = p.options.access.allow.as_ref().unwrap();
    assert_eq!(allow.len(), 1);
    assert_eq!(reasons(&p), [Reason::InvalidAnnotation]);
    assert!(p.options.access.allows("192.0.2.10".parse().unwrap()));
    assert!(!p.options.access.allows("198.51.100.1".parse().unwrap()));

    let all_bad = nginx("allowlist-source-range", "bogus");
    assert!(!all_bad.options.access.allows("192.0.2.10".parse().unwrap()));
}

#[test]
fn allowlist_overrides_whitelist() {
    let p = parsed(&[
        (
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "192.0.2.0/24",
        ),
        (
            "nginx.ingress.kubernetes.io/allowlist-source-range",
            "198.51.100.0/24",
        ),
    ]);
    assert!(p.options.access.allows("198.51.100.1".parse().unwrap()));
    assert!(!p.options.access.allows("192.0.2.1".parse().unwrap()));
}

#[test]
fn denylist_is_checked_first_and_fails_closed() {
    let p = parsed(&[
        (
            "nginx.ingress.kubernetes.io/allowlist-source-range",
            "192.0.2.0/24",
        ),
        (
            "nginx.ingress.kubernetes.io/denylist-source-range",
            "192.0.2.66/32",
        ),
    ]);
    assert!(p.options.access.allows("192.0.2.1".parse().unwrap()));
    assert!(!p.options.access.allows("192.0.2.66".parse().unwrap()));

    let broken = nginx("denylist-source-range", "192.0.2.66/32,nonsense");
    assert_eq!(reasons(&broken), [Reason::InvalidAnnotation]);
    assert!(!broken.options.access.allows("203.0.113.1".parse().unwrap()));
}

#[test]
fn ssl_redirect_flags_parse_as_booleans() {
    let p = parsed(&[
        ("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
        ("nginx.ingress.kubernetes.io/force-ssl-redirect", "True"),
    ]);
    assert_eq!(p.options.ssl_redirect, Some(false));
    assert!(p.options.force_ssl_redirect);
    assert_eq!(
        reasons(&nginx("ssl-redirect", "yes")),
        [Reason::InvalidAnnotation]
    );
}

#[test]
fn backend_protocols() {
    let proto = |v| nginx("backend-protocol", v).options.backend_protocol;
    assert_eq!(proto("GRPC"), BackendProtocol::Grpc);
    assert_eq!(proto("grpcs"), BackendProtocol::Grpcs);
    assert_eq!(proto("HTTPS"), BackendProtocol::Https);
    assert_eq!(proto("H2C"), BackendProtocol::H2c);
    assert_eq!(proto("FCGI"), BackendProtocol::Http);
    assert_eq!(
        reasons(&nginx("backend-protocol", "AUTO_HTTP")),
        [Reason::InvalidAnnotation]
    );
}

#[test]
fn cookie_affinity_with_default_and_custom_names() {
    let default = nginx("affinity", "cookie");
    assert_eq!(
        default.options.affinity,
        Some(CookieAffinity {
            cookie_name: "INGRESSCOOKIE".into()
        })
    );
    let named = parsed(&[
        ("nginx.ingress.kubernetes.io/affinity", "cookie"),
        ("nginx.ingress.kubernetes.io/session-cookie-name", "route"),
    ]);
    assert_eq!(&*named.options.affinity.unwrap().cookie_name, "route");
    let other = nginx("affinity", "ip");
    assert_eq!(other.options.affinity, None);
    assert_eq!(reasons(&other), [Reason::InvalidAnnotation]);
}

#[test]
fn load_balance_maps_ewma_to_p2c() {
    let lb = |v| nginx("load-balance", v).options.load_balance;
    assert_eq!(lb("round_robin"), LoadBalance::RoundRobin);
    assert_eq!(lb("ewma"), LoadBalance::PowerOfTwoChoices);
    assert_eq!(lb("chash"), LoadBalance::PowerOfTwoChoices);
}

#[test]
fn redirects_with_codes_and_precedence() {
    let permanent = nginx("permanent-redirect", "https://example.com/new");
    assert_eq!(
        permanent.options.redirect,
        Some(Redirect {
            location: "https://example.com/new".into(),
            code: 301
        })
    );
    let temporal = parsed(&[
        (
            "nginx.ingress.kubernetes.io/temporal-redirect",
            "/maintenance",
        ),
        ("nginx.ingress.kubernetes.io/temporal-redirect-code", "307"),
    ]);
    assert_eq!(temporal.options.redirect.unwrap().code, 307);
    let both = parsed(&[
        ("nginx.ingress.kubernetes.io/temporal-redirect", "/t"),
        ("nginx.ingress.kubernetes.io/permanent-redirect", "/p"),
        ("nginx.ingress.kubernetes.io/permanent-redirect-code", "308"),
    ]);
    assert_eq!(
        both.options.redirect,
        Some(Redirect {
            location: "/p".into(),
            code: 308
        })
    );
    let injected = nginx("permanent-redirect", "https://x\r\nSet-Cookie: a=b");
    assert_eq!(injected.options.redirect, None);
    assert_eq!(reasons(&injected), [Reason::InvalidAnnotation]);
    let bad_code = parsed(&[
        ("nginx.ingress.kubernetes.io/permanent-redirect", "/p"),
        ("nginx.ingress.kubernetes.io/permanent-redirect-code", "200"),
    ]);
    assert_eq!(bad_code.options.redirect.unwrap().code, 301);
}

#[test]
fn app_root_and_rewrite_target_are_validated_paths() {
    assert_eq!(
        nginx("app-root", "/app").options.app_root.as_deref(),
        Some("/app")
    );
    assert_eq!(nginx("app-root", "app;x").options.app_root, None);
    assert_eq!(
        nginx("rewrite-target", "/")
            .options
            .rewrite_target
            .as_deref(),
        Some("/")
    );
    let captures = nginx("rewrite-target", "/$2");
    assert_eq!(captures.options.rewrite_target, None);
    assert_eq!(reasons(&captures), [Reason::InvalidAnnotation]);
}

#[test]
fn canary_annotations() {
    assert_eq!(nginx("canary-weight", "50").canary, None);
    let c = parsed(&[
        ("nginx.ingress.kubernetes.io/canary", "true"),
        ("nginx.ingress.kubernetes.io/canary-weight", "20"),
        ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
    ])
    .canary
    .unwrap();
    assert_eq!(c.weight, 20);
    assert_eq!(c.weight_total, 100);
    assert_eq!(c.by_header.as_deref(), Some("x-canary"));

    let over = parsed(&[
        ("nginx.ingress.kubernetes.io/canary", "true"),
        ("nginx.ingress.kubernetes.io/canary-weight", "150"),
    ]);
    assert_eq!(over.canary.as_ref().unwrap().weight, 100);
    assert_eq!(reasons(&over), [Reason::InvalidAnnotation]);
}

#[test]
fn canary_decisions_follow_header_then_weight() {
    let by_header = CanaryRule {
        weight: 10,
        weight_total: 100,
        by_header: Some("x-canary".into()),
        by_header_value: None,
    };
    assert!(by_header.use_canary(Some("always"), 99));
    assert!(!by_header.use_canary(Some("never"), 0));
    assert!(by_header.use_canary(Some("maybe"), 9));
    assert!(!by_header.use_canary(Some("maybe"), 10));
    assert!(by_header.use_canary(None, 0));
    assert!(!by_header.use_canary(None, 50));

    let by_value = CanaryRule {
        by_header_value: Some("blue".into()),
        weight: 0,
        ..by_header
    };
    assert!(by_value.use_canary(Some("blue"), 0));
    assert!(!by_value.use_canary(Some("always"), 0));
    assert!(!by_value.use_canary(None, 0));
}

#[test]
fn crate_readme_has_the_current_annotation_table() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&markdown_table()),
        "README.md is stale: cargo run -q -p ironlb-routes --example annotation_table"
    );
}
