#!/usr/bin/env bash
# A/B of gateway builds on the update benchmark: each round runs the benchmark once per
# binary, in turn (the VM's speed drifts; interleaving keeps the comparison fair), and
# prints one line per run.
#
#   bench/gateway-updates/ab.sh ROUNDS BIN...
#
# BIN are ironlb-gateway binaries (copy target/release/ironlb-gateway aside before
# rebuilding to keep an old build). The benchmark starts target/release/ironlb-gateway,
# so each BIN is put there for its run; the current build is put back at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS BIN..." >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed on PATH" >&2; exit 2; }
rounds=$1; shift
cargo build --release -q -p ironlb-gateway --bins
cargo test --release -q -p ironlb-gateway --test gateway_bench --no-run 2>/dev/null
driver=$(ls -t target/release/deps/gateway_bench-* | grep -v '\.d$' | head -1)
current=$(mktemp)
cp target/release/ironlb-gateway "$current"
trap 'cp "$current" target/release/ironlb-gateway; rm -f "$current"' EXIT

for round in $(seq "$rounds"); do
  for bin in "$@"; do
    cp "$bin" target/release/ironlb-gateway
    out=$(timeout 900 "$driver" --ignored --nocapture 2>&1)
    rss=$(sed -n 's/^gateway RSS with the rules: *//p' <<<"$out")
    peak=$(sed -n 's/^gateway RSS under load+updates:.*(peak \(.*\))/\1/p' <<<"$out")
    prop=$(sed -n 's/.*propagation ms: //p' <<<"$out")
    build=$(sed -n 's/^snapshot builds: [0-9]*, mean \([0-9.]* ms\).*/\1/p' <<<"$out")
    prober=$(sed -n 's/^prober: //p' <<<"$out")
    wrk=$(grep -E 'Non-2xx|Socket errors|requests in' <<<"$out" | sed 's/^ *//' | paste -sd';' -)
    echo "round $round $(basename "$bin"): RSS $rss (peak $peak); $prop; build mean $build; prober $prober; wrk $wrk"
  done
done
