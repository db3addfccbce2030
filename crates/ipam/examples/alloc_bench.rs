//! Allocator throughput and memory. Prints figures; asserts nothing about time.
//!
//! `cargo run --release -p ironlb-ipam --example alloc_bench`
//!
//! Service keys and requests are built before timing (the controller has them
//! already); memory is the growth of the process's resident set (VmRSS) while the
//! allocator fills, so it includes the allocator's maps and the keys it clones.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use ironlb_ipam::{AllocationRequest, Allocator, Family, IpFamilyPolicy, PoolSpec, ServiceKey};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn keys(n: usize) -> Vec<ServiceKey> {
    (0..n)
        .map(|i| ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}")))
        .collect()
}

fn rate(n: usize, secs: f64) -> String {
    format!(
        "{:>12.0}/s ({:>6.0} ns each)",
        n as f64 / secs,
        secs * 1e9 / n as f64
    )
}

struct Run {
    label: &'static str,
    pool: &'static str,
    services: usize,
    request: AllocationRequest,
}

/// Seconds each phase took in one repetition.
#[derive(Default, Clone, Copy)]
struct Times {
    fresh: f64,
    again: f64,
    churn: f64,
    seed: f64,
    rebuild: f64,
}

/// Repetitions per scenario; the best is reported, since other processes on a
/// shared machine only ever make a run slower.
const REPS: usize = 5;

fn run(r: Run) {
    let keys = keys(r.services);
    let mut best = Times {
        fresh: f64::MAX,
        again: f64::MAX,
        churn: f64::MAX,
        seed: f64::MAX,
        rebuild: f64::MAX,
    };
    let mut all_fresh = Vec::new();
    let mut memory = String::new();
    for rep in 0..REPS {
        let t = once(&r, &keys, rep == 0, &mut memory);
        all_fresh.push(t.fresh);
        best.fresh = best.fresh.min(t.fresh);
        best.again = best.again.min(t.again);
        best.churn = best.churn.min(t.churn);
        best.seed = best.seed.min(t.seed);
        best.rebuild = best.rebuild.min(t.rebuild);
    }
    all_fresh.sort_by(f64::total_cmp);
    println!(
        "== {} ({}), {} Services, best of {REPS}",
        r.label, r.pool, r.services
    );
    println!(
        "  allocate (fresh)          {}   (median {})",
        rate(r.services, best.fresh),
        rate(r.services, all_fresh[REPS / 2])
    );
    println!(
        "  allocate (already held)   {}",
        rate(r.services, best.again)
    );
    println!(
        "  release+allocate churn    {}",
        rate(r.services, best.churn)
    );
    println!(
        "  seed from status (assign) {}",
        rate(r.services, best.seed)
    );
    println!("  set_pools with all held   {:.1} ms", best.rebuild * 1e3);
    println!("  {memory}");
}

fn once(r: &Run, keys: &[ServiceKey], first: bool, memory: &mut String) -> Times {
    let mut times = Times::default();
    let mut alloc = Allocator::new();
    alloc.set_pools(vec![PoolSpec::new("bench", [r.pool])]);
    let rss0 = rss_kib();

    // 1. Fresh allocations.
    let t = Instant::now();
    for k in keys {
        black_box(alloc.allocate(k, &r.request).expect("pool is large enough"));
    }
    times.fresh = t.elapsed().as_secs_f64();
    let rss1 = rss_kib();

    // 2. Reconcile again: every Service already holds its address.
    let t = Instant::now();
    for k in keys {
        black_box(alloc.allocate(k, &r.request).unwrap());
    }
    times.again = t.elapsed().as_secs_f64();

    // 3. Churn: release every other Service and allocate it again (holes, refill).
    let t = Instant::now();
    for k in keys.iter().step_by(2) {
        alloc.release(k);
    }
    for k in keys.iter().step_by(2) {
        black_box(alloc.allocate(k, &r.request).unwrap());
    }
    times.churn = t.elapsed().as_secs_f64();

    // 4. Restart: seed a fresh allocator from the recorded addresses.
    let recorded: Vec<(ServiceKey, Vec<IpAddr>)> = keys
        .iter()
        .map(|k| (k.clone(), alloc.assignment(k).unwrap().ips()))
        .collect();
    let mut seeded = Allocator::new();
    seeded.set_pools(vec![PoolSpec::new("bench", [r.pool])]);
    let t = Instant::now();
    for (k, ips) in &recorded {
        black_box(seeded.assign(k, ips, &r.request).unwrap());
    }
    times.seed = t.elapsed().as_secs_f64();
    let changed = recorded
        .iter()
        .filter(|(k, ips)| seeded.assignment(k).unwrap().ips() != *ips)
        .count();
    assert_eq!(changed, 0, "re-seeding moved an address");

    // 5. Pool set replacement with everything assigned (re-homes every address).
    let t = Instant::now();
    let report = alloc.set_pools(vec![PoolSpec::new("bench", [r.pool])]);
    times.rebuild = t.elapsed().as_secs_f64();
    assert!(report.stranded.is_empty());

    if first {
        let stats = alloc.pool_stats("bench").unwrap();
        let grown = rss1.saturating_sub(rss0);
        *memory = format!(
            "memory: RSS +{grown} KiB while {} Services were allocated = {:.0} bytes/Service; \
             re-seed changed 0 addresses; assigned {:?}, available {:?}",
            r.services,
            (grown * 1024) as f64 / r.services as f64,
            stats.assigned,
            stats.available,
        );
    }
    times
}

fn scenarios() -> Vec<Run> {
    let v4 = AllocationRequest::default();
    let v6 = AllocationRequest::default().families(IpFamilyPolicy::SingleStack, [Family::V6]);
    vec![
        Run {
            label: "IPv4 /16, filled completely",
            pool: "198.18.0.0/16",
            services: 65_536,
            request: v4.clone(),
        },
        Run {
            label: "IPv4 /15 (two /16s)",
            pool: "198.18.0.0/15",
            services: 100_000,
            request: v4,
        },
        Run {
            label: "IPv6 /64",
            pool: "2001:db8::/64",
            services: 100_000,
            request: v6,
        },
    ]
}

/// Each scenario runs in a child process of its own, so that its resident-set
/// growth is not hidden by memory an earlier scenario freed.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.get(1).and_then(|a| a.parse::<usize>().ok()) {
        run(scenarios().swap_remove(i));
        return;
    }
    for i in 0..scenarios().len() {
        let status = std::process::Command::new(&args[0])
            .arg(i.to_string())
            .status()
            .expect("re-run self");
        assert!(status.success(), "scenario {i} failed");
    }
}
