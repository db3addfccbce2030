#!/usr/bin/env bash
# ironlb-gateway vs nginx, side by side, same run, same echo backend.
#
#   bench/gateway/run.sh            # 10 s per measurement
#   DURATION=5 bench/gateway/run.sh # shorter
#
# Layout (2 cores assumed): both proxies pinned to core $PROXY_CPU (0), the echo
# backend and the load generators to core $LOAD_CPU (1). nginx: Debian package, one
# worker (master_process off), upstream keepalive, access_log off, the X-Forwarded-* /
# X-Real-IP / X-Request-ID headers ingress-nginx sets. ironlb: the `bench_gateway`
# example (static snapshot, no API server, access log off, current-thread runtime).
# HTTP/1.1: wrk at 64 and 256 connections. HTTP/2: h2load (h2c prior knowledge),
# 64 connections x 10 streams (h2load sends :authority 127.0.0.1:PORT; both proxies serve
# every host). Prints rps, p50, p99 (h2load: mean and max), RSS after
# the run, CPU per request split into user and kernel time, how busy the load core was,
# and the ratio ironlb/nginx; then ROUNDS (6) interleaved ROUND_S (3) s HTTP/1.1 rounds
# per connection count, with each proxy's lowest and median CPU per request and median
# rps, and as many HTTP/2 rounds (h2load, median mean latency); then latency at one
# fixed rate for both (h2load --h1, 64 connections x RATE (300) requests/s each, ROUNDS
# interleaved rounds of ROUND_S s; medians of p50, p99, p99.9); then HTTPS (TLS 1.3,
# ECDSA P-256 on both) in as many interleaved rounds: wrk keep-alive at 64 connections,
# h2load over TLS (ALPN h2), and wrk with a new TLS connection per request (handshakes).
#
# Reading it: on loopback most of a proxy's CPU is the kernel's TCP work (two reads and
# two writes per request, plus what nginx adds); user time is what the proxy's own code
# costs. When the load core is near 100 % busy, wrk and the echo backend, not the proxy,
# set the requests/s, and the rps ratio cannot show more than the load side allows:
# then CPU per request is the comparison of the proxies, and the fixed-rate latencies
# (same offered load, load core not saturated) the comparison of their tails.
# Bounded: about 8 x DURATION + 14 x ROUNDS x ROUND_S s plus build time.
set -euo pipefail

DURATION=${DURATION:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release

for tool in nginx wrk h2load taskset openssl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx-light wrk nghttp2-client util-linux openssl)" >&2; exit 1; }
done

echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p ironlb-echo --bin ironlb-echo -p ironlb-gateway --example bench_gateway)

# shellcheck source=bench/gateway/common.sh
. "$(dirname "$0")/common.sh"

ECHO=127.0.0.1:18180
NGINX_H1=127.0.0.1:18181
NGINX_H2=127.0.0.1:18182
IRONLB=127.0.0.1:18183
NGINX_TLS=127.0.0.1:18184
IRONLB_TLS=127.0.0.1:18185
HOST=bench.example.com

wait_port() {
    for _ in $(seq 1 100); do
        (echo > "/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}

start_echo "$ECHO"
start_nginx "$ECHO" "$NGINX_H1" "$NGINX_H2" "$NGINX_TLS"

taskset -c "$PROXY_CPU" "$BIN/examples/bench_gateway" --listen "$IRONLB" --https "$IRONLB_TLS" --backend "$ECHO" >"$TMP/ironlb.log" 2>&1 &
IRONLB_PID=$!
PIDS+=($IRONLB_PID)

wait_port "$ECHO"; wait_port "$NGINX_H1"; wait_port "$NGINX_H2"; wait_port "$IRONLB"
wait_port "$NGINX_TLS"; wait_port "$IRONLB_TLS"

# Busy and idle ticks of the load core so far.
load_core_ticks() { awk -v c="cpu$LOAD_CPU" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
# Percent busy of the load core between two load_core_ticks readings.
busy_pct() { awk -v b0="$1" -v i0="$2" -v b1="$3" -v i1="$4" 'BEGIN { t = (b1 - b0) + (i1 - i0); if (t > 0) printf "%.0f", 100 * (b1 - b0) / t; else print "n/a" }'; }
# Microseconds of CPU per request: robust against other load on the machine.
us_per_req() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v rps="$2" -v d="${3:-$DURATION}" 'BEGIN { if (rps > 0) printf "%.1f", t / hz * 1e6 / (rps * d); else print "n/a" }'; }

# wrk URL CONNS [SECS] [HEADER]: prints "rps p50_ms p99_ms"
run_wrk() {
    local url=$1 conns=$2 secs=${3:-$DURATION} extra=()
    [ -n "${4:-}" ] && extra=(-H "$4")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Host: $HOST" "${extra[@]}" "$url" >"$TMP/wrk.out" 2>&1
    if grep -q "Non-2xx\|Socket errors" "$TMP/wrk.out"; then
        grep "Non-2xx\|Socket errors" "$TMP/wrk.out" | sed 's/^/    warning: /' >&2
    fi
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }' "$TMP/wrk.out"
}

# h2load: prints "rps mean_ms max_ms failed"
run_h2load() {
    local url=$1
    taskset -c "$LOAD_CPU" h2load -c 64 -m 10 -D "$DURATION" --warm-up-time=1 "$url" >"$TMP/h2.out" 2>&1 || true
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^finished in/ { for (i = 1; i <= NF; i++) if ($(i) ~ /req\/s/) rps = $(i-1) }
        /^requests:/ { failed = $10 }
        /^status codes:/ { if ($3 + 0 == 0 || $9 + 0 > 0) bad = 1 }
        /^time for request:/ { mean = ms($6); max = ms($5) }
        END { gsub(",", "", rps); if (bad) failed = failed "+non-2xx"; printf "%.0f %.2f %.2f %s\n", rps, mean, max, failed }' "$TMP/h2.out"
    grep -E "^(requests|status codes):" "$TMP/h2.out" | sed "s|^|    $url |" >&2
}

# Warm both up (connection pools, page cache).
taskset -c "$LOAD_CPU" wrk -t1 -c64 -d2s -H "Host: $HOST" "http://$NGINX_H1/" >/dev/null 2>&1
taskset -c "$LOAD_CPU" wrk -t1 -c64 -d2s -H "Host: $HOST" "http://$IRONLB/" >/dev/null 2>&1

printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s\n' "test" "proxy" "rps" "p50 ms" "p99 ms" "RSS MiB" "CPU us/req" "user/kernel" "load%"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
# measure_wrk PID URL CONNS: runs wrk; prints "rps p50 p99 rss cpu user kernel load%".
measure_wrk() {
    local pid=$1 t0 u0 b0 i0 b1 i1 rps p50 p99 cpu user
    t0=$(cpu_ticks "$pid"); u0=$(user_ticks "$pid"); read -r b0 i0 < <(load_core_ticks)
    read -r rps p50 p99 < <(run_wrk "$2" "$3")
    read -r b1 i1 < <(load_core_ticks)
    cpu=$(us_per_req $(( $(cpu_ticks "$pid") - t0 )) "$rps")
    user=$(us_per_req $(( $(user_ticks "$pid") - u0 )) "$rps")
    echo "$rps $p50 $p99 $(rss_mib "$pid") $cpu $user $(awk -v c="$cpu" -v u="$user" 'BEGIN { printf "%.1f", c - u }') $(busy_pct "$b0" "$i0" "$b1" "$i1")"
}
for conns in 64 256; do
    read -r n_rps n_p50 n_p99 n_rss n_cpu n_user n_kern n_load < <(measure_wrk "$NGINX_PID" "http://$NGINX_H1/" "$conns")
    read -r i_rps i_p50 i_p99 i_rss i_cpu i_user i_kern i_load < <(measure_wrk "$IRONLB_PID" "http://$IRONLB/" "$conns")
    printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s\n' "wrk h1 c=$conns" nginx "$n_rps" "$n_p50" "$n_p99" "$n_rss" "$n_cpu" "$n_user/$n_kern" "$n_load"
    printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s\n' "wrk h1 c=$conns" ironlb "$i_rps" "$i_p50" "$i_p99" "$i_rss" "$i_cpu" "$i_user/$i_kern" "$i_load"
    printf '%-22s %-8s %10s %9s %9s %9s %10s %11s\n' "wrk h1 c=$conns" "ratio" "$(ratio "$i_rps" "$n_rps")x" "$(ratio "$i_p50" "$n_p50")x" "$(ratio "$i_p99" "$n_p99")x" "" "$(ratio "$i_cpu" "$n_cpu")x" "$(ratio "$i_user" "$n_user")x/$(ratio "$i_kern" "$n_kern")x"
done

# measure_h2 PID URL: runs h2load; prints "rps mean max failed rss cpu user kernel load%".
# (CPU over the whole run, h2load's warm-up second included, for both proxies alike.)
measure_h2() {
    local pid=$1 t0 u0 b0 i0 b1 i1 rps mean max fail cpu user
    t0=$(cpu_ticks "$pid"); u0=$(user_ticks "$pid"); read -r b0 i0 < <(load_core_ticks)
    read -r rps mean max fail < <(run_h2load "$2")
    read -r b1 i1 < <(load_core_ticks)
    cpu=$(us_per_req $(( $(cpu_ticks "$pid") - t0 )) "$rps")
    user=$(us_per_req $(( $(user_ticks "$pid") - u0 )) "$rps")
    echo "$rps $mean $max $fail $(rss_mib "$pid") $cpu $user $(awk -v c="$cpu" -v u="$user" 'BEGIN { printf "%.1f", c - u }') $(busy_pct "$b0" "$i0" "$b1" "$i1")"
}
read -r n_rps n_mean n_max n_fail n_rss n_cpu n_user n_kern n_load < <(measure_h2 "$NGINX_PID" "http://$NGINX_H2/")
read -r i_rps i_mean i_max i_fail i_rss i_cpu i_user i_kern i_load < <(measure_h2 "$IRONLB_PID" "http://$IRONLB/")
printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s\n' "h2load h2c c=64 m=10" "" "rps" "mean ms" "max ms" "RSS MiB" "CPU us/req" "user/kernel" "load%"
printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s  failed=%s\n' "h2load h2c c=64 m=10" nginx "$n_rps" "$n_mean" "$n_max" "$n_rss" "$n_cpu" "$n_user/$n_kern" "$n_load" "$n_fail"
printf '%-22s %-8s %10s %9s %9s %9s %10s %11s %6s  failed=%s\n' "h2load h2c c=64 m=10" ironlb "$i_rps" "$i_mean" "$i_max" "$i_rss" "$i_cpu" "$i_user/$i_kern" "$i_load" "$i_fail"
printf '%-22s %-8s %10s %9s %9s %9s %10s %11s\n' "h2load h2c c=64 m=10" "ratio" "$(ratio "$i_rps" "$n_rps")x" "$(ratio "$i_mean" "$n_mean")x" "$(ratio "$i_max" "$n_max")x" "" "$(ratio "$i_cpu" "$n_cpu")x" "$(ratio "$i_user" "$n_user")x/$(ratio "$i_kern" "$n_kern")x"

# Interleaved rounds: on a shared VM the machine's speed drifts by ±15 % within minutes,
# so one long run of each proxy after the other can favour either. Alternating short
# runs and taking each proxy's least disturbed round (lowest CPU per request) is the
# steadier comparison of what a request costs; the median p99 over the rounds is the
# steadier comparison of tail latency than any single run. The median CPU per request
# is printed too: a cost that grows with what a proxy has served (a cache searched end
# to end) shows there, while the lowest is the first, still cheap round.
ROUNDS=${ROUNDS:-6}
ROUND_S=${ROUND_S:-3}
printf '\n%-22s %-8s %10s %10s %10s %10s %10s  (%s interleaved rounds of %s s)\n' "HTTP/1.1" "proxy" "min us/req" "med us/req" "min user" "median rps" "median p99" "$ROUNDS" "$ROUND_S"
round_cpu() { # pid url conns [header] -> "us_per_req rps user_us_per_req p99_ms"
    local t0 u0 rps p50 p99
    t0=$(cpu_ticks "$1"); u0=$(user_ticks "$1")
    read -r rps p50 p99 < <(run_wrk "$2" "$3" "$ROUND_S" "${4:-}")
    echo "$(us_per_req $(( $(cpu_ticks "$1") - t0 )) "$rps" "$ROUND_S") $rps $(us_per_req $(( $(user_ticks "$1") - u0 )) "$rps" "$ROUND_S") $p99"
}
min_of() { sort -n -k"$2" "$1" | head -1 | cut -d' ' -f"$2"; }
median_of() { sort -n -k"$2" "$1" | awk -v k="$2" '{ r[NR] = $k } END { print r[int((NR + 1) / 2)] }'; }
# print_rounds LABEL: each proxy's line and the ratio from $TMP/rounds.{nginx,ironlb}
# ("us_per_req rps user_us_per_req latency_ms" per round).
print_rounds() {
    for p in nginx ironlb; do
        printf '%-22s %-8s %10s %10s %10s %10.0f %10s\n' "$1" "$p" "$(min_of "$TMP/rounds.$p" 1)" \
            "$(median_of "$TMP/rounds.$p" 1)" "$(min_of "$TMP/rounds.$p" 3)" \
            "$(median_of "$TMP/rounds.$p" 2)" "$(median_of "$TMP/rounds.$p" 4)"
    done
    printf '%-22s %-8s %10s %10s %10s %10s %10s\n' "$1" ratio \
        "$(ratio "$(min_of "$TMP/rounds.ironlb" 1)" "$(min_of "$TMP/rounds.nginx" 1)")x" \
        "$(ratio "$(median_of "$TMP/rounds.ironlb" 1)" "$(median_of "$TMP/rounds.nginx" 1)")x" \
        "$(ratio "$(min_of "$TMP/rounds.ironlb" 3)" "$(min_of "$TMP/rounds.nginx" 3)")x" \
        "$(ratio "$(median_of "$TMP/rounds.ironlb" 2)" "$(median_of "$TMP/rounds.nginx" 2)")x" \
        "$(ratio "$(median_of "$TMP/rounds.ironlb" 4)" "$(median_of "$TMP/rounds.nginx" 4)")x"
}
for conns in 64 256; do
    : >"$TMP/rounds.nginx"; : >"$TMP/rounds.ironlb"
    for _ in $(seq 1 "$ROUNDS"); do
        round_cpu "$NGINX_PID" "http://$NGINX_H1/" "$conns" >>"$TMP/rounds.nginx"
        round_cpu "$IRONLB_PID" "http://$IRONLB/" "$conns" >>"$TMP/rounds.ironlb"
    done
    print_rounds "wrk h1 c=$conns"
done

# HTTP/2 rounds the same way (h2load, 64 connections x 10 streams, no warm-up).
round_h2() { # pid url -> "us_per_req rps user_us_per_req mean_ms"
    local t0 u0 rps mean
    t0=$(cpu_ticks "$1"); u0=$(user_ticks "$1")
    read -r rps mean < <(taskset -c "$LOAD_CPU" h2load -c 64 -m 10 -D "$ROUND_S" "$2" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^finished in/ { for (i = 1; i <= NF; i++) if ($(i) ~ /req\/s/) rps = $(i-1) }
        /^time for request:/ { mean = ms($6) }
        END { gsub(",", "", rps); printf "%.0f %.2f\n", rps, mean }')
    echo "$(us_per_req $(( $(cpu_ticks "$1") - t0 )) "$rps" "$ROUND_S") $rps $(us_per_req $(( $(user_ticks "$1") - u0 )) "$rps" "$ROUND_S") $mean"
}
printf '\n%-22s %-8s %10s %10s %10s %10s %10s  (%s interleaved rounds of %s s)\n' "HTTP/2" "proxy" "min us/req" "med us/req" "min user" "median rps" "med. mean" "$ROUNDS" "$ROUND_S"
: >"$TMP/rounds.nginx"; : >"$TMP/rounds.ironlb"
for _ in $(seq 1 "$ROUNDS"); do
    round_h2 "$NGINX_PID" "http://$NGINX_H2/" >>"$TMP/rounds.nginx"
    round_h2 "$IRONLB_PID" "http://$IRONLB/" >>"$TMP/rounds.ironlb"
done
print_rounds "h2load c=64 m=10"

# Fixed rate: both proxies get the same offered load, below what the load core can
# generate, so the latency is the proxies' own rather than wrk's queueing.
RATE=${RATE:-300}
fixed_rate() { # url -> "p50 p99 p99.9" in ms over the successful requests
    rm -f "$TMP/lat.log"
    timeout $((ROUND_S * 4 + 10)) taskset -c "$LOAD_CPU" h2load --h1 -c 64 --rps "$RATE" \
        -n $((64 * RATE * ROUND_S)) --log-file "$TMP/lat.log" "$1" >"$TMP/rate.out" 2>&1 </dev/null || true
    { grep -E "^requests:" "$TMP/rate.out" || echo "requests: h2load did not run"; } | awk '$10 + 0 > 0 || NF < 10 { print "    warning: " $0 }' >&2
    awk -F'\t' '$2 >= 200 && $2 < 300 { print $3 }' "$TMP/lat.log" | sort -n |
        awk 'function at(q) { i = int(NR * q); if (i < 1) i = 1; return a[i] / 1000 }
             { a[NR] = $1 }
             END { if (NR == 0) print "n/a n/a n/a"; else printf "%.2f %.2f %.2f\n", at(0.5), at(0.99), at(0.999) }'
}
printf '\n%-22s %-8s %10s %10s %10s  (%s interleaved rounds of %s s, median of each)\n' \
    "h1 fixed $((64 * RATE))/s" "proxy" "p50 ms" "p99 ms" "p99.9 ms" "$ROUNDS" "$ROUND_S"
: >"$TMP/rate.nginx"; : >"$TMP/rate.ironlb"
for _ in $(seq 1 "$ROUNDS"); do
    fixed_rate "http://$NGINX_H1/" >>"$TMP/rate.nginx"
    fixed_rate "http://$IRONLB/" >>"$TMP/rate.ironlb"
done
for p in nginx ironlb; do
    printf '%-22s %-8s %10s %10s %10s\n' "h1 fixed $((64 * RATE))/s" "$p" "$(median_of "$TMP/rate.$p" 1)" \
        "$(median_of "$TMP/rate.$p" 2)" "$(median_of "$TMP/rate.$p" 3)"
done
printf '%-22s %-8s %10s %10s %10s\n' "h1 fixed $((64 * RATE))/s" ratio \
    "$(ratio "$(median_of "$TMP/rate.ironlb" 1)" "$(median_of "$TMP/rate.nginx" 1)")x" \
    "$(ratio "$(median_of "$TMP/rate.ironlb" 2)" "$(median_of "$TMP/rate.nginx" 2)")x" \
    "$(ratio "$(median_of "$TMP/rate.ironlb" 3)" "$(median_of "$TMP/rate.nginx" 3)")x"

# HTTPS, interleaved the same way: TLS 1.3 between the load generator and the proxy
# (the echo backend stays plain HTTP), ECDSA P-256 certificates on both.
printf '\n%-22s %-8s %10s %10s %10s %10s %10s  (%s interleaved rounds of %s s; latency: wrk p99, h2load mean)\n' "HTTPS" "proxy" "min us/req" "med us/req" "min user" "median rps" "med. lat" "$ROUNDS" "$ROUND_S"
: >"$TMP/rounds.nginx"; : >"$TMP/rounds.ironlb"
for _ in $(seq 1 "$ROUNDS"); do
    round_cpu "$NGINX_PID" "https://$NGINX_TLS/" 64 >>"$TMP/rounds.nginx"
    round_cpu "$IRONLB_PID" "https://$IRONLB_TLS/" 64 >>"$TMP/rounds.ironlb"
done
print_rounds "wrk https c=64"
: >"$TMP/rounds.nginx"; : >"$TMP/rounds.ironlb"
for _ in $(seq 1 "$ROUNDS"); do
    round_h2 "$NGINX_PID" "https://$NGINX_TLS/" >>"$TMP/rounds.nginx"
    round_h2 "$IRONLB_PID" "https://$IRONLB_TLS/" >>"$TMP/rounds.ironlb"
done
print_rounds "h2load h2 TLS c=64 m=10"
# A new connection per request (wrk resumes its previous session, as browsers do). wrk's
# own handshakes keep the load core 97-100 % busy from 4 connections up, so the load
# side sets rate and tail here: this compares the proxies' CPU per handshake.
: >"$TMP/rounds.nginx"; : >"$TMP/rounds.ironlb"
for _ in $(seq 1 "$ROUNDS"); do
    round_cpu "$NGINX_PID" "https://$NGINX_TLS/" 64 "Connection: close" >>"$TMP/rounds.nginx"
    round_cpu "$IRONLB_PID" "https://$IRONLB_TLS/" 64 "Connection: close" >>"$TMP/rounds.ironlb"
done
print_rounds "wrk https new conn"
