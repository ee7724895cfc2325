#!/usr/bin/env bash
# The reverse proxy (issues 6 and 12) against nginx (proxy_pass, upstream
# keepalive, 2 workers, proxy_buffering off: it streams, like feuilled) and
# direct, to the same editor in a real workspace, same run. Every editor sits
# in its own network namespace (issue 12): nginx runs inside the editor's
# namespace (it can live in one only) and wrk for nginx and direct with it
# (nsenter), while feuilled reaches in from the host; both paths are two
# loopback hops. Two workspaces:
#  - "http": its editor is bench/upstream.c (static, from the user's folder),
#    a C server much faster than either proxy, so that the proxies are what
#    is measured (the stand-in editor serves ~8k requests/s: it measured
#    itself). 1 KiB and 64 KiB responses: wrk -t2 -c64 (feuilled on the
#    workspace's own origin, issue 13: Host routing and the feuille_ws cookie), ROUNDS (default 5) alternating pairs of 5 s runs:
#    requests/s, p99, CPU per request of the proxy; median ratios of the pairs.
#    Targets: >= 1.0x nginx requests/s, p99 <= 1.2x nginx's; direct must be
#    >= 2x the best proxy's requests/s, else the upstream is measured. Also
#    against nginx on the host to a host copy of the upstream (the opposite
#    bias: see below).
#  - "ws": the stand-in editor (WebSocket echo). Round trip, 1000 sequential
#    32-byte echoes: median <= 1.1x nginx's. N idle WebSockets (default 8000),
#    measured first: (RSS with them - RSS before) / N <= 10 KiB.
# Usage: [ROUNDS=5] bench/proxy.sh [IDLE_WEBSOCKETS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
IDLE=${1:-8000}
WSBENCH=$BENCH_ROOT/build/feuille_wsbench

bench_postgres
bench_podman
mkdir -p "$BENCH_TMP/users"
gcc -static -O2 -o "$BENCH_TMP/upstream" "$BENCH_ROOT/bench/upstream.c"
bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL,address=127.0.0.1" --dev-login \
  --data-dir "$BENCH_TMP/users" --proxy-max-per-user 20000 --workspace-origin 'http://{id}.ws.localhost:{port}' \
  --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
  --editor-command "/home/user/.bench/editor editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
  --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities"
F=http://127.0.0.1:$FEUILLED_PORT
trap 'bench_remove_workspaces || true; bench_cleanup' EXIT

EDITOR_PROGRAM=
bench_prepare_home() {
  install -D -m 0755 "$EDITOR_PROGRAM" "$BENCH_TMP/users/$1/.bench/editor"
}
# The workspace of HANDLE with EDITOR_PROGRAM as its editor; sets
# <PREFIX>_USER, _AUTH and _HOST (on the workspace's origin), _COOKIE (its
# feuille_ws value), _PORT, _TOKEN, _NS.
workspace() {
  local prefix=$1 handle=$2
  EDITOR_PROGRAM=$3
  bench_workspace "$handle"
  local port token
  read -r port token < <(psql -Atq -F ' ' "$BENCH_DB_URL" \
    -c "SELECT port, token FROM runtimes WHERE kind = 'editor' AND user_id = '$USER_ID'")
  bench_enter "$USER_ID" "$COOKIE"
  printf -v "${prefix}_USER" %s "$USER_ID"
  printf -v "${prefix}_AUTH" %s "$WS_AUTH"
  printf -v "${prefix}_HOST" %s "$WS_HOST"
  printf -v "${prefix}_COOKIE" %s "${WS_AUTH#Cookie: }"
  printf -v "${prefix}_PORT" %s "$port"
  printf -v "${prefix}_TOKEN" %s "$token"
  printf -v "${prefix}_NS" %s "$(bench_sandbox_key "feuille-ed-$USER_ID")"
}
workspace HTTP http "$BENCH_TMP/upstream"
workspace WS ws "$BENCH_ROOT/build/feuille-standin"

nginx_for() {  # port token -> the http{} body of a proxy to that editor
  echo "upstream editor { server 127.0.0.1:$1; keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server { listen 127.0.0.1:@PORT@;
    location / { proxy_pass http://editor; proxy_http_version 1.1; proxy_buffering off;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Token $2; proxy_read_timeout 1h; } }"
}
NGINX_NETNS=$HTTP_NS NGINX_DIR=$BENCH_TMP/nginx-http bench_nginx 2 "$(nginx_for "$HTTP_PORT" "$HTTP_TOKEN")"
HTTP_NGINX_PORT=$NGINX_PORT HTTP_NGINX_WORKERS=$NGINX_WORKERS
# The second baseline, with the other bias: nginx on the host, proxying to a
# copy of the same upstream on the host. The host's network stack runs
# netfilter (conntrack, the egress rules, Podman's tables): ~10 % slower per
# request than a namespace's bare loopback here. nginx in the namespace has
# both hops there, feuilled one; nginx on the host has both hops on the host,
# feuilled one. The truth is between the two ratios.
HOST_UPSTREAM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BENCH_TMP/upstream" --port "$HOST_UPSTREAM_PORT" &
BENCH_PIDS+=($!)
NGINX_DIR=$BENCH_TMP/nginx-host bench_nginx 2 "$(nginx_for "$HOST_UPSTREAM_PORT" "$HTTP_TOKEN")"
HOST_NGINX_PORT=$NGINX_PORT HOST_NGINX_WORKERS=$NGINX_WORKERS
# 2 workers x (client + upstream) for the idle WebSockets.
NGINX_CONNECTIONS=20000 NGINX_NETNS=$WS_NS NGINX_DIR=$BENCH_TMP/nginx-ws bench_nginx 2 "$(nginx_for "$WS_PORT" "$WS_TOKEN")"
WS_NGINX_PORT=$NGINX_PORT WS_NGINX_WORKERS=$NGINX_WORKERS

# Idle WebSockets first: on fresh heaps, so RSS growth is what the tunnels take.
echo "== $IDLE idle WebSockets =="
idle() {  # netns port path cookie pids [host] -> KiB per WebSocket
  local in_ns=() port=$2 path=$3 cookie=$4 pids=$5 host=${6:-127.0.0.1:$2}
  [ -n "$1" ] && in_ns=(nsenter --net="$1")
  sleep 1
  local before after
  before=$(bench_rss_kib "$pids")
  mkfifo "$BENCH_TMP/hold"
  "${in_ns[@]}" "$WSBENCH" idle "$port" "$path" "$IDLE" "$cookie" "$host" <"$BENCH_TMP/hold" >"$BENCH_TMP/idle.out" &
  local holder=$!
  exec 9>"$BENCH_TMP/hold"
  for _ in $(seq 1 1200); do
    grep -q "^open" "$BENCH_TMP/idle.out" 2>/dev/null && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1
  after=$(bench_rss_kib "$pids")
  grep -q "^open $IDLE" "$BENCH_TMP/idle.out" || echo "(only some opened: $(cat "$BENCH_TMP/idle.out"))" >&2
  exec 9>&-
  wait "$holder" || true
  rm -f "$BENCH_TMP/hold"
  awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.1f", (a - b) / n}'
}
# mrmd-server reads a WebSocket's token from the query only: nginx's client gives it.
ni=$(idle "$WS_NS" "$WS_NGINX_PORT" "/ws?token=$WS_TOKEN" "" "$WS_NGINX_WORKERS")
fi=$(idle "" "$FEUILLED_PORT" "/u/$WS_USER/ws" "$WS_COOKIE" "$FEUILLED_PID" "$WS_HOST")
echo "nginx:    $ni KiB per idle WebSocket"
echo "feuilled: $fi KiB per idle WebSocket (target <= 10)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# HTTP: alternating pairs (bench_pairs in lib.sh), nginx as the baseline.
for size in 1024 65536; do
  read -r d_rps d_p99 _ <<<"$(WRK_NETNS=$HTTP_NS WRK_DURATION=5s bench_wrk "http://127.0.0.1:$HTTP_PORT/_bytes?size=$size")"
  echo "== $size B responses (direct, in the editor's namespace: $d_rps requests/s, p99 $d_p99 ms; baseline: nginx) =="
  BASE_NETNS=$HTTP_NS bench_pairs "http://127.0.0.1:$HTTP_NGINX_PORT/_bytes?size=$size" "$HTTP_NGINX_WORKERS" \
    "$F/u/$HTTP_USER/_bytes?size=$size" "$FEUILLED_PID" -H "$HTTP_AUTH" -H "Host: $HTTP_HOST"
  echo "ratio $size B (median of ${ROUNDS:-5} pairs): requests/s ${PAIR_RPS}x nginx (target >= 1.0)," \
    "p99 ${PAIR_P99}x nginx (target <= 1.2)"
  echo "-- the same against nginx on the host, to the upstream on the host --"
  bench_pairs "http://127.0.0.1:$HOST_NGINX_PORT/_bytes?size=$size" "$HOST_NGINX_WORKERS" \
    "$F/u/$HTTP_USER/_bytes?size=$size" "$FEUILLED_PID" -H "$HTTP_AUTH" -H "Host: $HTTP_HOST"
  echo "ratio $size B against nginx on the host: requests/s ${PAIR_RPS}x, p99 ${PAIR_P99}x"
  read -r d2_rps _ <<<"$(WRK_NETNS=$HTTP_NS WRK_DURATION=5s bench_wrk "http://127.0.0.1:$HTTP_PORT/_bytes?size=$size")"
  echo "direct again: $d2_rps requests/s (must be >= 2x the best proxy's)"
done

echo "== WebSocket round trip, 1000 sequential 32-byte echoes =="
wd=$(nsenter --net="$WS_NS" "$WSBENCH" rtt "$WS_PORT" "/ws?token=$WS_TOKEN" 1000)
wn=$(nsenter --net="$WS_NS" "$WSBENCH" rtt "$WS_NGINX_PORT" "/ws?token=$WS_TOKEN" 1000)
wf=$("$WSBENCH" rtt "$FEUILLED_PORT" "/u/$WS_USER/ws" 1000 "$WS_COOKIE" "$WS_HOST")
echo "direct:   $wd"
echo "nginx:    $wn"
echo "feuilled: $wf"
awk -v f="$(echo "$wf" | awk '{print $2}')" -v n="$(echo "$wn" | awk '{print $2}')" \
  'BEGIN {printf "ratio: median %.2fx nginx (target <= 1.1)\n", f/n}'

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
