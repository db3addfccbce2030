#!/usr/bin/env bash
# Gateway update benchmark: 10,000 Ingress rules (memory of the gateway process),
# route-update propagation under wrk load, failed requests during 200 updates.
# The driver is the ignored test ingress-gateway/tests/gateway_bench.rs (embedded API
# server, real release `ironlb-gateway` binary, echo backends on 127.0.0.1); it prints
# figures and asserts nothing about them. Needs wrk on PATH.
#
# Knobs (environment): BENCH_INGRESSES (1000), BENCH_PATHS (10), BENCH_UPDATES (200),
# BENCH_CONNECTIONS (64), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is needed on PATH" >&2; exit 2; }
cargo build --release -q -p ironlb-gateway --bins
cargo test --release -q -p ironlb-gateway --test gateway_bench -- --ignored --nocapture 2>&1 \
  | sed -n '/^==== /,/requests in/p'
