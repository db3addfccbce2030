# Sourced by bench/gateway/run.sh and ab.sh: one temporary directory and process list
# cleaned up on exit, the CPU-time and memory readers, and the one nginx configuration
# both compare against.

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# CPU time (user + system, clock ticks) process $1 used so far, and its user time alone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
user_ticks() { awk '{ print $14 }' "/proc/$1/stat"; }
# Resident memory of process $1 in MiB.
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# write_nginx_conf DIR ECHO_ADDR H1_ADDR [H2_ADDR] [TLS_ADDR]: nginx as ingress-nginx
# would run it for the benchmark (one worker, master_process off, upstream keepalive,
# access_log off, the X-Forwarded-* / X-Real-IP / X-Request-ID headers ingress-nginx
# sets). TLS_ADDR: HTTPS with ALPN h2 and http/1.1 and a fresh self-signed ECDSA P-256
# certificate, the key type of the gateway's default certificate; nginx's TLS defaults
# otherwise.
write_nginx_conf() {
    local dir=$1 echo_addr=$2 h1=$3 h2=${4:-} tls=${5:-}
    mkdir -p "$dir"
    if [ -n "$tls" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=bench.example.com -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    fi
    cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    upstream echo {
        server $echo_addr;
        keepalive 512;
    }
    server {
        listen $h1 backlog=4096;
        ${h2:+listen $h2 http2 backlog=4096;}
        ${tls:+listen $tls ssl http2 backlog=4096;}
        ${tls:+ssl_certificate $dir/cert.pem;}
        ${tls:+ssl_certificate_key $dir/key.pem;}
        ${tls:+ssl_protocols TLSv1.2 TLSv1.3;}
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Request-ID \$request_id;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_buffering on;
        }
    }
}
NGINX
}

# start_echo ADDR [CPU]: the echo backend (target/release/ironlb-echo) on CPU (default
# $LOAD_CPU, else 1), stopped on exit.
start_echo() {
    local bin=${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target}/release/ironlb-echo
    taskset -c "${2:-${LOAD_CPU:-1}}" "$bin" --listen "$1" --service echo --pod echo-0 2>"$TMP/echo.log" &
    PIDS+=($!)
}

# start_nginx ECHO_ADDR H1_ADDR [H2_ADDR] [TLS_ADDR]: nginx with write_nginx_conf's configuration
# on $PROXY_CPU (else 0), stopped on exit; its pid in NGINX_PID.
start_nginx() {
    write_nginx_conf "$TMP/nginx" "$@"
    taskset -c "${PROXY_CPU:-0}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
    NGINX_PID=$!
    PIDS+=($NGINX_PID)
}
