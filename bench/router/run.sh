#!/usr/bin/env bash
# Router benchmark: direct-to-backend (floor) vs nginx vs Hoist's router, with wrk
# on loopback at 64 keep-alive connections; then router RSS with 10k idle
# keep-alive client connections.
#
# Usage: bench/router/run.sh    (env: DURATION=10s CONNS=64 THREADS=2 ROUNDS=3 IDLE=10000
#                                      NGINX_HEADERS=heroku|minimal)
# Needs: wrk, nginx; builds the examples with cargo in release mode.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
IDLE=${IDLE:-10000}
ROUNDS=${ROUNDS:-3}
BACKEND_PORT=${BACKEND_PORT:-18180}
NGINX_PORT=${NGINX_PORT:-18181}
ROUTER_PORT=${ROUTER_PORT:-18182}
NGINX_HEADERS=${NGINX_HEADERS:-heroku}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -p hoist-router --examples >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
EX=$TARGET/release/examples

# Idle connections need one descriptor each in the client and the router.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 200)) ]; then
  IDLE=$(( $(ulimit -n) - 200 ))
  echo "note: ulimit -n is $(ulimit -n); holding $IDLE idle connections instead" >&2
fi

TMP=$(mktemp -d /tmp/hoist-router-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}

"$EX/bench_backend" "$BACKEND_PORT" 2>"$TMP/backend.log" &
PIDS+=($!)
wait_port "$BACKEND_PORT"

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      # The headers Hoist's router adds for every request, so both proxies do the
      # same work and the backend parses the same request (NGINX_HEADERS=minimal
      # keeps only Host and X-Forwarded-For).
$( [ "$NGINX_HEADERS" = heroku ] && cat <<'HEADERS'
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Start $msec;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header Via "1.1 nginx";
HEADERS
)
    }
  }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2>"$TMP/nginx/stderr.log" &
PIDS+=($!)
wait_port "$NGINX_PORT"

"$EX/bench_router" "$ROUTER_PORT" "127.0.0.1:$BACKEND_PORT" 2>"$TMP/router.log" &
ROUTER_PID=$!
PIDS+=($ROUTER_PID)
wait_port "$ROUTER_PORT"

# Prints "<req/s> <p99 ms>".
run_wrk() {
  local port=$1 out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: bench.localhost" "http://127.0.0.1:$port/")
  echo "$out" >"$TMP/wrk-$port.txt"
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec:/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  echo "$rps $(to_ms "$p99")"
}

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v }
  }'
}

# Warm up pools and caches briefly.
wrk -t1 -c8 -d1s -H "Host: bench.localhost" "http://127.0.0.1:$NGINX_PORT/" >/dev/null
wrk -t1 -c8 -d1s -H "Host: bench.localhost" "http://127.0.0.1:$ROUTER_PORT/" >/dev/null

# The machine is shared: interleave ROUNDS rounds and report each target's median.
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
: >"$TMP/d"; : >"$TMP/n"; : >"$TMP/r"
for round in $(seq 1 "$ROUNDS"); do
  run_wrk "$BACKEND_PORT" >>"$TMP/d"
  run_wrk "$NGINX_PORT" >>"$TMP/n"
  run_wrk "$ROUTER_PORT" >>"$TMP/r"
  echo "round $round: direct $(tail -1 "$TMP/d"), nginx $(tail -1 "$TMP/n"), router $(tail -1 "$TMP/r") (req/s p99_ms)" >&2
done
D_RPS=$(cut -d' ' -f1 "$TMP/d" | median); D_P99=$(cut -d' ' -f2 "$TMP/d" | median)
N_RPS=$(cut -d' ' -f1 "$TMP/n" | median); N_P99=$(cut -d' ' -f2 "$TMP/n" | median)
R_RPS=$(cut -d' ' -f1 "$TMP/r" | median); R_P99=$(cut -d' ' -f2 "$TMP/r" | median)

echo "== throughput and latency: wrk -t$THREADS -c$CONNS -d$DURATION, keep-alive, loopback, $(nproc) cores, median of $ROUNDS rounds, nginx headers: $NGINX_HEADERS =="
printf "%-22s %12s %10s %14s\n" target req/s p99_ms added_p99_ms
printf "%-22s %12s %10s %14s\n" "direct (floor)" "$D_RPS" "$D_P99" "-"
printf "%-22s %12s %10s %14s\n" "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')" "$N_RPS" "$N_P99" "$(awk -v a="$N_P99" -v b="$D_P99" 'BEGIN{printf "%.3f", a-b}')"
printf "%-22s %12s %10s %14s\n" "hoist router" "$R_RPS" "$R_P99" "$(awk -v a="$R_P99" -v b="$D_P99" 'BEGIN{printf "%.3f", a-b}')"
awk -v r="$R_RPS" -v n="$N_RPS" -v d="$D_RPS" -v rp="$R_P99" -v np="$N_P99" -v dp="$D_P99" 'BEGIN {
  printf "ratio throughput router/nginx: %.2f (target >= 1.00)\n", r / n
  printf "ratio throughput router/direct: %.2f, nginx/direct: %.2f\n", r / d, n / d
  ra = rp - dp; na = np - dp
  if (na > 0) printf "ratio added p99 router/nginx: %.2f (target <= 1.00)\n", ra / na
  else printf "added p99: router %.3f ms, nginx %.3f ms\n", ra, na
}'

echo "== CPU per request (user / system, from /proc/<pid>/task/*/stat around one wrk run) =="
# Sums utime and stime (clock ticks) over every thread of the given processes.
cpu_ticks() {
  local p t u=0 s=0
  for p in "$@"; do
    for t in /proc/"$p"/task/*/stat; do
      read -r a b < <(awk '{print $14, $15}' "$t" 2>/dev/null || echo "0 0")
      u=$((u + a)); s=$((s + b))
    done
  done
  echo "$u $s"
}
cpu_per_request() {
  local port=$1 name=$2 u0 s0 u1 s1 out reqs
  shift 2
  read -r u0 s0 < <(cpu_ticks "$@")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Host: bench.localhost" "http://127.0.0.1:$port/")
  read -r u1 s1 < <(cpu_ticks "$@")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v n="$name" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    printf "%-14s user %6.1f us/req  system %6.1f us/req\n", n, u * 1e6 / hz / r, s * 1e6 / hz / r
  }'
}
NGINX_PIDS=$(pgrep -f "nginx: (master|worker)" -d ' ' || true)
# shellcheck disable=SC2086
cpu_per_request "$NGINX_PORT" nginx $NGINX_PIDS
cpu_per_request "$ROUTER_PORT" "hoist router" "$ROUTER_PID"

echo "== idle keep-alive connections =="
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
BEFORE=$(rss_kb "$ROUTER_PID")
"$EX/bench_idle" "127.0.0.1:$ROUTER_PORT" bench.localhost "$IDLE" 40 >"$TMP/idle.out" &
IDLE_PID=$!
PIDS+=($IDLE_PID)
for _ in $(seq 1 600); do
  grep -q ready "$TMP/idle.out" 2>/dev/null && break
  sleep 0.1
done
# The router parks connections idle for 1 s (drops hyper's per-connection buffers)
# and returns freed heap pages every 5 s: measure after both happened.
sleep 7
AFTER=$(rss_kb "$ROUTER_PID")
echo "client: $(cat "$TMP/idle.out")"
awk -v b="$BEFORE" -v a="$AFTER" -v n="$IDLE" 'BEGIN {
  printf "router RSS before: %.1f MB, with %d idle conns: %.1f MB (target < 100 MB), %.1f KB/conn\n",
    b / 1024, n, a / 1024, (a - b) / n
}'
kill "$IDLE_PID" 2>/dev/null || true
