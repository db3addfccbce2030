//! Harness-free benchmark of cookie affinity's per-request lookup: which of a backend's
//! endpoints an affinity cookie names.
//!
//! `cargo run --release -p ironlb-gateway --example affinity_bench`
//!
//! For 10, 100 and 1,000 endpoints, with the cookie naming the last one (a full scan),
//! prints the time per lookup of `balance::affine_endpoint` and, measured in the same run,
//! of the same lookup done by formatting each endpoint's address to text and hashing
//! that (how the gateway did it before), and the ratio. Figures are printed, never
//! asserted. Endpoint addresses come from the benchmark range 198.18.0.0/15.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ironlb_gateway::proxy::balance::{affine_endpoint, affinity_value};

/// The lookup as text: each endpoint formatted, hashed and written out in hex.
fn affine_endpoint_by_text(endpoints: &[SocketAddr], cookie: &str) -> Option<usize> {
    endpoints.iter().position(|&e| {
        let h = e
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("{h:016x}") == cookie
    })
}

/// Median time per call of `lookup` over 9 runs of `calls` calls.
fn per_call(calls: u32, mut lookup: impl FnMut() -> Option<usize>) -> Duration {
    let mut runs: Vec<Duration> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(lookup());
            }
            start.elapsed() / calls
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    println!(
        "{:>10} {:>14} {:>14} {:>7}",
        "endpoints", "lookup", "by text", "ratio"
    );
    for n in [10_usize, 100, 1_000] {
        let endpoints: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([198, 18, (i / 250) as u8, (i % 250) as u8 + 1], 8080)))
            .collect();
        let cookie = affinity_value(endpoints[n - 1]);
        assert_eq!(affine_endpoint(&endpoints, &cookie), Some(n - 1));
        assert_eq!(affine_endpoint_by_text(&endpoints, &cookie), Some(n - 1));
        let calls = u32::try_from(100_000 / n).expect("small");
        let fast = per_call(calls, || {
            affine_endpoint(black_box(&endpoints), black_box(&cookie))
        });
        let text = per_call(calls, || {
            affine_endpoint_by_text(black_box(&endpoints), black_box(&cookie))
        });
        println!(
            "{n:>10} {:>14?} {:>14?} {:>6.1}x",
            fast,
            text,
            text.as_secs_f64() / fast.as_secs_f64()
        );
    }
}
