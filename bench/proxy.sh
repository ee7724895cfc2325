#!/usr/bin/env bash
# The reverse proxy (issue 6) against nginx (proxy_pass, upstream keepalive,
# 2 workers, proxy_buffering off: it streams, like feuilled) and direct, to the
# same stand-in editor in a real workspace, same run:
#  1. 1 KiB and 64 KiB responses: wrk -t2 -c64 (feuilled with the session
#     cookie), ROUNDS (default 5) alternating pairs of 5 s runs: requests/s,
#     p99, CPU per request of the proxy; median ratios of the pairs.
#     Targets: >= 1.0x nginx requests/s, p99 <= 1.2x nginx's.
#  2. WebSocket round trip, 1000 sequential 32-byte echoes: median <= 1.1x nginx's.
#  3. N idle WebSockets (default 8000), measured first: (RSS with them - RSS before) / N <= 10 KiB.
# Usage: [ROUNDS=5] bench/proxy.sh [IDLE_WEBSOCKETS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
IDLE=${1:-8000}
WSBENCH=$BENCH_ROOT/build/feuille_wsbench

bench_postgres
bench_podman
mkdir -p "$BENCH_TMP/users"
bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL,address=127.0.0.1" --dev-login \
  --data-dir "$BENCH_TMP/users" --proxy-max-per-user 20000 \
  --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
  --editor-command "/feuille-standin editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
  --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities"
F=http://127.0.0.1:$FEUILLED_PORT
ORIGIN="Origin: $F"
INSTANCE=$(psql -Atq "$BENCH_DB_URL" -c "SELECT id FROM compute_instance")
remove_containers() {
  for name in $(curl -s --unix-socket "${BENCH_PODMAN_URL#unix://}" \
    "http://d/v4.0.0/libpod/containers/json?all=true&filters=%7B%22label%22%3A%5B%22io.feuille.instance%3D$INSTANCE%22%5D%7D" |
    python3 -c 'import json,sys; print("\n".join(c["Names"][0] for c in json.load(sys.stdin)))'); do
    curl -s -o /dev/null -X DELETE --unix-socket "${BENCH_PODMAN_URL#unix://}" \
      "http://d/v4.0.0/libpod/containers/$name?force=true"
  done
}
trap 'remove_containers || true; bench_cleanup' EXIT

COOKIE=$(curl -s -i -X POST -H "$ORIGIN" -d handle=bench "$F/auth/dev" |
  sed -n 's/^[Ss]et-[Cc]ookie: feuille_session=\([^;]*\).*/\1/p' | tr -d '\r')
[ -n "$COOKIE" ] || { echo "dev login failed" >&2; exit 1; }
AUTH="Cookie: feuille_session=$COOKIE"
USER_ID=$(curl -s -H "$AUTH" "$F/api/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -s -o /dev/null -X POST -H "$AUTH" -H "$ORIGIN" "$F/api/workspace/start"
for _ in $(seq 1 600); do
  state=$(curl -s -H "$AUTH" "$F/api/workspace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = running ] && break
  sleep 0.1
done
[ "$state" = running ] || { echo "the workspace did not start ($state)" >&2; exit 1; }
read -r EDITOR_PORT TOKEN < <(psql -Atq -F ' ' "$BENCH_DB_URL" -c "SELECT port, token FROM runtimes WHERE kind = 'editor'")

# 2 workers x (client + upstream) for the idle WebSockets.
NGINX_CONNECTIONS=20000 bench_nginx 2 "upstream editor { server 127.0.0.1:$EDITOR_PORT; keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server { listen 127.0.0.1:@PORT@;
    location / { proxy_pass http://editor; proxy_http_version 1.1; proxy_buffering off;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Token $TOKEN; proxy_read_timeout 1h; } }"
NGINX_WORKERS=$(pgrep -d, -f "nginx: worker process" -P "$(cat "$BENCH_TMP/nginx/nginx.pid")")
N=http://127.0.0.1:$NGINX_PORT
D=http://127.0.0.1:$EDITOR_PORT

# Idle WebSockets first: on fresh heaps, so RSS growth is what the tunnels take.
echo "== $IDLE idle WebSockets =="
idle() {  # port path cookie pids -> KiB per WebSocket
  local port=$1 path=$2 cookie=$3 pids=$4
  sleep 1
  local before after
  before=$(bench_rss_kib "$pids")
  mkfifo "$BENCH_TMP/hold"
  "$WSBENCH" idle "$port" "$path" "$IDLE" "$cookie" <"$BENCH_TMP/hold" >"$BENCH_TMP/idle.out" &
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
ni=$(idle "$NGINX_PORT" /ws "" "$NGINX_WORKERS")
fi=$(idle "$FEUILLED_PORT" "/u/$USER_ID/ws" "feuille_session=$COOKIE" "$FEUILLED_PID")
echo "nginx:    $ni KiB per idle WebSocket"
echo "feuilled: $fi KiB per idle WebSocket (target <= 10)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# HTTP: alternating pairs (bench_pairs in lib.sh), nginx as the baseline.
for size in 1024 65536; do
  read -r d_rps d_p99 _ <<<"$(WRK_DURATION=5s bench_wrk "$D/_bytes?size=$size&token=$TOKEN")"
  echo "== $size B responses (direct: $d_rps requests/s, p99 $d_p99 ms; baseline: nginx) =="
  bench_pairs "$N/_bytes?size=$size" "$NGINX_WORKERS" "$F/u/$USER_ID/_bytes?size=$size" "$FEUILLED_PID" -H "$AUTH"
  echo "ratio $size B (median of ${ROUNDS:-5} pairs): requests/s ${PAIR_RPS}x nginx (target >= 1.0)," \
    "p99 ${PAIR_P99}x nginx (target <= 1.2)"
done

echo "== WebSocket round trip, 1000 sequential 32-byte echoes =="
wd=$("$WSBENCH" rtt "$EDITOR_PORT" "/ws?token=$TOKEN" 1000)
wn=$("$WSBENCH" rtt "$NGINX_PORT" /ws 1000)
wf=$("$WSBENCH" rtt "$FEUILLED_PORT" "/u/$USER_ID/ws" 1000 "feuille_session=$COOKIE")
echo "direct:   $wd"
echo "nginx:    $wn"
echo "feuilled: $wf"
awk -v f="$(echo "$wf" | awk '{print $2}')" -v n="$(echo "$wn" | awk '{print $2}')" \
  'BEGIN {printf "ratio: median %.2fx nginx (target <= 1.1)\n", f/n}'

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
