//! Harness-free route-table benchmark: 10,000 Ingress rules, memory and lookup cost.
//!
//! `cargo run --release -p ironlb-routes --example route_bench`
//!
//! `ROUTE_BENCH_COMPILES=N` compiles the table N more times and prints the median.
//! `ROUTE_BENCH_UPDATES=N` (default 20): N updates of one Ingress each, compiled by one
//! reused [`Compiler`] as the gateway does, and their median.
//! `ROUTE_BENCH_LOOKUPS=N` changes the number of lookups (default 5,000,000); running
//! it under `valgrind` with two values and comparing "total heap usage" shows that
//! lookups do not allocate.
//!
//! Figures are printed, never asserted (the machine is shared and noisy). Endpoint
//! addresses come from the benchmark range 198.18.0.0/15.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlb_routes::{
    compile, BackendRef, Compiler, EndpointSliceInput, IngressInput, Inputs, Match, PathType,
    ServiceInput,
};

const INGRESSES: usize = 1_000;
const WILDCARD_EVERY: usize = 10;
const LOOKUPS: usize = 5_000_000;
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Ten paths per Ingress: a mix of Prefix, ImplementationSpecific and Exact rules.
const PATHS: [(PathType, &str); 10] = [
    (PathType::Prefix, "/"),
    (PathType::Prefix, "/api"),
    (PathType::Prefix, "/api/v1"),
    (PathType::Prefix, "/api/v2/orders"),
    (PathType::ImplementationSpecific, "/static"),
    (PathType::Prefix, "/users"),
    (PathType::Exact, "/users/me"),
    (PathType::Exact, "/healthz"),
    (PathType::Prefix, "/shop/cart"),
    (PathType::Prefix, "/docs/v3/reference"),
];

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn host(i: usize) -> String {
    if i.is_multiple_of(WILDCARD_EVERY) {
        format!("*.tenant{i}.example.com")
    } else {
        format!("app{i}.example.com")
    }
}

fn inputs() -> Inputs {
    let (mut ingresses, mut services, mut slices) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..INGRESSES {
        let ns = format!("ns{}", i % 50);
        let svc = format!("svc{i}");
        let mut ing = IngressInput::new(ns.clone(), format!("ing{i}")).created(i as i64);
        for (t, p) in PATHS {
            ing = ing.path(&host(i), t, p, BackendRef::new(svc.clone(), 80));
        }
        if i.is_multiple_of(4) {
            ing = ing.tls(&[&host(i)], &format!("cert{i}"));
        }
        ingresses.push(ing);
        services.push(ServiceInput::new(ns.clone(), svc.clone()).port("http", 80, 8080));
        let mut slice = EndpointSliceInput::new(ns, svc).port("http", 8080);
        for e in 0..3 {
            let n = i * 3 + e;
            slice = slice.ready(&format!("198.18.{}.{}", n / 250, n % 250 + 1));
        }
        slices.push(slice);
    }
    Inputs::new(ingresses, services, slices)
}

fn requests() -> Vec<(String, String)> {
    let tails = [
        "/",
        "/api/v1/users/42",
        "/api/v2/orders/17/items",
        "/static/js/app.3f2a.js",
        "/users/me",
        "/users/me/settings",
        "/healthz",
        "/shop/cartx",
        "/docs/v3/reference/routes.html",
        "/index.html?utm=1",
    ];
    let mut out = Vec::new();
    for k in 0..1024usize {
        let i = (k * 7919) % INGRESSES;
        let host = match (i.is_multiple_of(WILDCARD_EVERY), k % 16) {
            (true, _) => format!("www.tenant{i}.example.com"),
            (false, 0) => format!("APP{i}.Example.com:443"),
            (false, 1) => "unknown.example.org".to_string(),
            (false, _) => format!("app{i}.example.com"),
        };
        out.push((host, tails[k % tails.len()].to_string()));
    }
    out
}

/// Compile times of updates to one Ingress each (a path added, as a deploy would),
/// with one [`Compiler`] kept across them; sorted. The tables are dropped untimed (the
/// gateway drops an old snapshot when its last request ends, not in the build).
fn update_times(inputs: &Inputs) -> Vec<Duration> {
    let updates: usize = std::env::var("ROUTE_BENCH_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut compiler = Compiler::default();
    let mut inputs = inputs.clone();
    drop(compiler.compile(&inputs));
    let mut times: Vec<Duration> = (0..updates)
        .map(|k| {
            let i = (k * 7919) % inputs.ingresses.len();
            let changed = (*inputs.ingresses[i]).clone();
            let host = changed.rules[0].host.clone().unwrap_or_default();
            let svc = changed.rules[0].paths[0].backend.service.clone();
            inputs.ingresses[i] =
                Arc::new(changed.prefix(&host, &format!("/release-{k}"), &svc, 80));
            let started = Instant::now();
            let table = black_box(compiler.compile(&inputs));
            let took = started.elapsed();
            drop(table);
            took
        })
        .collect();
    times.sort();
    times
}

fn main() {
    let baseline = rss_kib();
    let inputs = inputs();
    let rules: usize = inputs
        .ingresses
        .iter()
        .flat_map(|i| &i.rules)
        .map(|r| r.paths.len())
        .sum();
    let with_inputs = rss_kib();

    // Extra compiles first (ROUTE_BENCH_COMPILES, default 0): their median is printed,
    // and they give a profiler something to look at.
    let extra: usize = std::env::var("ROUTE_BENCH_COMPILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut times: Vec<Duration> = (0..extra)
        .map(|_| {
            let started = Instant::now();
            black_box(compile(&inputs));
            started.elapsed()
        })
        .collect();
    times.sort();
    let updates = update_times(&inputs);

    let started = Instant::now();
    let (table, diags) = compile(&inputs);
    let compile_time = started.elapsed();
    let with_table = rss_kib();
    assert!(
        diags.is_empty(),
        "unexpected diagnostics: {:?}",
        &diags[..1]
    );
    drop(inputs);
    let table_only = rss_kib();

    let reqs = requests();
    let (mut hits, mut not_found) = (0u64, 0u64);
    let started = Instant::now();
    let mut done = 0;
    let lookups = std::env::var("ROUTE_BENCH_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LOOKUPS);
    while done < lookups && started.elapsed() < TIME_LIMIT {
        for (host, path) in &reqs {
            match table.route(black_box(host), black_box(path)) {
                Match::Rule(r) | Match::DefaultBackend(r) => {
                    hits += 1;
                    black_box(r);
                }
                Match::NotFound => not_found += 1,
            }
        }
        done += reqs.len();
    }
    let per_lookup = started.elapsed().as_nanos() as f64 / done as f64;

    let sni_started = Instant::now();
    let mut tls_hits = 0u64;
    let sni_rounds = (lookups / reqs.len()).clamp(1, 200);
    for _ in 0..sni_rounds {
        for (host, _) in &reqs {
            tls_hits += u64::from(table.tls_secret_for(black_box(host)).is_some());
        }
    }
    let per_sni = sni_started.elapsed().as_nanos() as f64 / (sni_rounds * reqs.len()) as f64;

    println!(
        "rules:                  {rules} ({} Ingresses, {} hosts)",
        INGRESSES, INGRESSES
    );
    println!("compiled routes:        {}", table.len());
    println!(
        "compile time:           {:.1} ms",
        compile_time.as_secs_f64() * 1e3
    );
    if let (Some(min), Some(median)) = (times.first(), times.get(times.len() / 2)) {
        println!(
            "compile time, {extra} more: min {:.1} ms, median {:.1} ms",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3
        );
    }
    if let (Some(min), Some(median)) = (updates.first(), updates.get(updates.len() / 2)) {
        println!(
            "update, reused compiler: min {:.1} ms, median {:.1} ms ({} updates of one Ingress)",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            updates.len()
        );
    }
    println!("RSS baseline:           {baseline} KiB");
    println!("RSS inputs:             +{} KiB", with_inputs - baseline);
    println!("RSS table (w/ inputs):  +{} KiB", with_table - with_inputs);
    println!(
        "RSS after inputs freed: +{} KiB over baseline",
        table_only.saturating_sub(baseline)
    );
    println!("lookups:                {done} ({hits} routed, {not_found} not found)");
    println!("lookup:                 {per_lookup:.1} ns/op");
    println!("tls_secret_for:         {per_sni:.1} ns/op ({tls_hits} hits)");
}
