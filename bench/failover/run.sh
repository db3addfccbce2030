#!/usr/bin/env bash
# Speaker benchmarks in the network lab (needs root: network namespaces, raw sockets).
#
#   bench/failover/run.sh            # debug build (what the test suite runs)
#   PROFILE=release bench/failover/run.sh
#   FLOOD_RATE=20000 FLOOD_SECONDS=5 bench/failover/run.sh
#
# 1. failover: a client opens a TCP connection to a VIP every 20 ms; the owner node dies
#    (speaker SIGKILL + link down); time from the kill to the first connection that
#    succeeds through the new owner; 10 runs, median and max.
# 2. arp_flood: the client sends FLOOD_RATE (default 10,000) ARP requests/s for the VIP
#    for FLOOD_SECONDS (default 5); replies counted, lost, p50/p99/max latency seen
#    from the client's packet socket.
#
# The benchmarks are `#[ignore]`d tests in speaker/tests/failover_bench.rs; this script
# runs them one at a time and prints only the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-dev}
cargo build -q -p ironlb-speaker --profile "$profile" --bins
cargo test -q -p ironlb-speaker --profile "$profile" --test failover_bench -- \
    --ignored --nocapture --test-threads=1 2>&1 |
    grep -E '^(run [0-9]+:|handoff [0-9]+:|FAILOVER|HANDOFF|ARP FLOOD)|panicked|FAILED' || true
