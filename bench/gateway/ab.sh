#!/usr/bin/env bash
# A/B of gateway builds against nginx in interleaved rounds: what one change is worth.
#
#   cp target/release/examples/bench_gateway /tmp/before   # build A
#   ... change, cargo build --release -p ironlb-gateway --example bench_gateway ...
#   bench/gateway/ab.sh 256 8 /tmp/before target/release/examples/bench_gateway
#
# Each round runs wrk (ROUND_S, 3 s) against nginx and then each build in turn, all on the
# same echo backend, proxies pinned to core 0 and load to core 1 as in run.sh; prints
# every round and, at the end, each one's lowest CPU µs per request (the least disturbed
# round: single runs on a shared VM drift by ±15 %) and lowest user-time µs per request
# (the proxy's own code; the rest is the kernel's TCP work, the same for every build),
# then the medians of both and of requests/s, and each one's CPU per request and RSS in
# the first and the last round: many rounds make this a soak test.
# PROTO=h2: HTTP/2 instead, h2load (h2c prior knowledge) with CONNS connections x 10
# streams. PROTO=tls-new: wrk over HTTPS with a new connection per request (TLS 1.3,
# mostly resumed handshakes), for what a handshake costs.
# Bounded: ROUNDS x (1 + builds) x ROUND_S seconds.
set -euo pipefail
CONNS=${1:?connections}; ROUNDS=${2:?rounds}; shift 2
[ $# -ge 1 ] || { echo "usage: $0 CONNS ROUNDS BENCH_GATEWAY_BIN..." >&2; exit 2; }
ROUND_S=${ROUND_S:-3}
PROTO=${PROTO:-h1}
case $PROTO in h1 | h2 | tls-new) ;; *) echo "PROTO is h1, h2 or tls-new, not $PROTO" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ECHO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ironlb-echo
[ -x "$ECHO_BIN" ] || (cd "$ROOT" && cargo build --release -q -p ironlb-echo --bin ironlb-echo)

# shellcheck source=bench/gateway/common.sh
. "$(dirname "$0")/common.sh"

start_echo 127.0.0.1:18180 1
start_nginx 127.0.0.1:18180 127.0.0.1:18181 127.0.0.1:18182 127.0.0.1:18184
NAMES=(nginx); PROCS=($NGINX_PID)
case $PROTO in h1) PORTS=(18181) ;; h2) PORTS=(18182) ;; tls-new) PORTS=(18184) ;; esac
i=0
for bin in "$@"; do
    # Each build: plain HTTP on 1819N, HTTPS on 1820N; the round uses the one PROTO needs.
    port=$((18190 + i)) tls_port=$((18200 + i)); i=$((i + 1))
    taskset -c 0 "$bin" --listen "127.0.0.1:$port" --https "127.0.0.1:$tls_port" \
        --backend 127.0.0.1:18180 >/dev/null 2>&1 &
    PIDS+=($!); PROCS+=($!)
    if [ "$PROTO" = tls-new ]; then port=$tls_port; fi
    NAMES+=("$bin"); PORTS+=("$port")
done
sleep 1

# load PORT: requests/s of one round against the proxy on PORT.
load() {
    case $PROTO in
    h2)
        taskset -c 1 h2load -c "$CONNS" -m 10 -D "$ROUND_S" "http://127.0.0.1:$1/" 2>&1 |
            awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i) ~ /req\/s/) { gsub(",", "", $(i-1)); print $(i-1) } }' ;;
    h1)
        taskset -c 1 wrk -t1 -c"$CONNS" -d"${ROUND_S}s" -H "Host: bench.example.com" \
            "http://127.0.0.1:$1/" | awk '/^Requests\/sec/ { print $2 }' ;;
    tls-new)
        taskset -c 1 wrk -t1 -c"$CONNS" -d"${ROUND_S}s" -H "Host: bench.example.com" \
            -H "Connection: close" "https://127.0.0.1:$1/" | awk '/^Requests\/sec/ { print $2 }' ;;
    esac
}

per_req() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v r="$2" -v d="$ROUND_S" 'BEGIN { printf "%.2f", t / hz * 1e6 / (r * d) }'; }
lower() { [ -z "$2" ] || awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
declare -a BEST BEST_USER ALL ALL_USER ALL_RPS FIRST LAST
for round in $(seq 1 "$ROUNDS"); do
    for k in "${!NAMES[@]}"; do
        t0=$(cpu_ticks "${PROCS[$k]}"); u0=$(user_ticks "${PROCS[$k]}")
        rps=$(load "${PORTS[$k]}")
        us=$(per_req $(( $(cpu_ticks "${PROCS[$k]}") - t0 )) "$rps")
        user=$(per_req $(( $(user_ticks "${PROCS[$k]}") - u0 )) "$rps")
        ALL[$k]="${ALL[$k]:-} $us"; ALL_USER[$k]="${ALL_USER[$k]:-} $user"; ALL_RPS[$k]="${ALL_RPS[$k]:-} $rps"
        if lower "$us" "${BEST[$k]:-}"; then BEST[$k]=$us; fi
        if lower "$user" "${BEST_USER[$k]:-}"; then BEST_USER[$k]=$user; fi
        rss=$(rss_mib "${PROCS[$k]}")
        if [ "$round" = 1 ]; then FIRST[$k]="$us $rss"; fi
        LAST[$k]="$us $rss"
        echo "round $round ${NAMES[$k]} rps=$rps cpu_us_per_req=$us user_us_per_req=$user rss_mib=$rss"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for k in "${!NAMES[@]}"; do
    echo "MIN ${NAMES[$k]} ${BEST[$k]} user ${BEST_USER[$k]}"
    echo "MEDIAN ${NAMES[$k]} $(median <<<"${ALL[$k]}") user $(median <<<"${ALL_USER[$k]}") rps $(median <<<"${ALL_RPS[$k]}")"
    # What grows with what was served (a cache searched end to end, a leak) shows here.
    read -r c0 r0 <<<"${FIRST[$k]}"; read -r c1 r1 <<<"${LAST[$k]}"
    echo "DRIFT ${NAMES[$k]} first->last round: cpu_us_per_req $c0 -> $c1, rss_mib $r0 -> $r1"
done
