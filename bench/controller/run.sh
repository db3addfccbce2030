#!/usr/bin/env bash
# End-to-end controller benchmark: builds the release binary and the driver, then runs
# the driver (embedded API server in-process, the controller as a child process).
# Usage: bench/controller/run.sh [SERVICES]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p ironlb-controller --bin ironlb-controller --example controller_bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/examples/controller_bench" "${1:-5000}"
