#!/usr/bin/env bash
# Memory per idle keep-alive connection: ironlb-gateway and nginx side by side, same
# echo backend. N clients (default 2,000) each open a connection, send one request and
# read the answer (one after the other, so one upstream connection serves them all),
# then stay connected and idle; the script prints each proxy's RSS before and after,
# the KiB per connection, and the ratio.
#
#   bench/gateway/idle.sh          # N=2000
#   N=5000 bench/gateway/idle.sh
#
# Same layout as run.sh: both proxies pinned to core $PROXY_CPU, the echo to $LOAD_CPU.
set -euo pipefail

N=${N:-2000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release

for tool in nginx python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
ulimit -n $(( N * 2 + 1024 > 16384 ? N * 2 + 1024 : 16384 ))

echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p ironlb-echo --bin ironlb-echo -p ironlb-gateway --example bench_gateway)

# shellcheck source=bench/gateway/common.sh
. "$(dirname "$0")/common.sh"

ECHO=127.0.0.1:18190
NGINX_H1=127.0.0.1:18191
IRONLB=127.0.0.1:18193

start_echo "$ECHO"
start_nginx "$ECHO" "$NGINX_H1"
taskset -c "$PROXY_CPU" "$BIN/examples/bench_gateway" --listen "$IRONLB" --backend "$ECHO" >"$TMP/ironlb.log" 2>&1 &
IRONLB_PID=$!
PIDS+=($IRONLB_PID)

# Opens N idle keep-alive connections to a proxy and prints "before after" RSS in KiB.
idle_rss() {
    python3 - "$1" "$2" "$N" <<'PY'
import socket, sys, time
addr, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
host, port = addr.rsplit(":", 1)

def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

deadline = time.time() + 30
while True:
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"nothing listens on {addr}")
        time.sleep(0.1)
time.sleep(0.5)
before = rss()
request = b"GET / HTTP/1.1\r\nHost: bench.example.com\r\n\r\n"
conns = []
for _ in range(n):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the proxy closed a connection")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected answer: {answer[:40]!r}")
    conns.append(s)
time.sleep(1)
print(before, rss())
for s in conns:
    s.close()
PY
}

printf '%-8s %12s %12s %14s\n' proxy "RSS before" "RSS after" "KiB per conn"
declare -A per
for proxy in nginx ironlb; do
    if [ "$proxy" = nginx ]; then addr=$NGINX_H1 pid=$NGINX_PID; else addr=$IRONLB pid=$IRONLB_PID; fi
    read -r before after < <(idle_rss "$addr" "$pid")
    per[$proxy]=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
    printf '%-8s %9d KiB %9d KiB %14s\n' "$proxy" "$before" "$after" "${per[$proxy]}"
done
awk -v i="${per[ironlb]}" -v g="${per[nginx]}" -v n="$N" \
    'BEGIN { printf "%d idle keep-alive connections: ironlb/nginx %.1fx memory per connection\n", n, (g > 0 ? i / g : 0) }'
