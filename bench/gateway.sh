#!/usr/bin/env bash
# The runtime gateway (issue 12): the round trip editor -> gateway -> runtime
# against a direct loopback connection inside the runtime's own namespace,
# same run. A real workspace (stand-in image, the tests' Podman); from inside
# the editor's namespace (nsenter), 1000 sequential 32-byte WebSocket echoes
# to 127.0.0.1:RUNTIME_PORT (feuilled's gateway, relaying to the runtime's
# 8888), and from inside the runtime's namespace the same to 127.0.0.1:8888.
# The floor of any relay, in the same rounds: nginx's stream proxy (1 worker)
# inside the runtime's namespace, 127.0.0.1:8889 -> 127.0.0.1:8888 (nginx can
# live in one namespace only; the gateway spans two, but each hop is the same
# loopback). ROUNDS (default 5) rounds of direct, nginx, gateway; the medians
# of the ratios. Target: <= 1.2x direct.
# Usage: [ROUNDS=5] bench/gateway.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
WSBENCH=$BENCH_ROOT/build/feuille_wsbench

bench_postgres
bench_podman
mkdir -p "$BENCH_TMP/users"
bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL,address=127.0.0.1" --dev-login \
  --data-dir "$BENCH_TMP/users" --log-level warn \
  --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
  --editor-command "/feuille-standin editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
  --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities"
trap 'bench_remove_workspaces || true; bench_cleanup' EXIT

bench_workspace bench
PORT=$(curl -s -H "$AUTH" "http://127.0.0.1:$FEUILLED_PORT/api/workspace" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runtime"]["port"])')
EDITOR_NS=$(bench_sandbox_key "feuille-ed-$USER_ID")
RUNTIME_NS=$(bench_sandbox_key "feuille-rt-$USER_ID")
mkdir -p "$BENCH_TMP/nginx"
cat >"$BENCH_TMP/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $BENCH_TMP/nginx/nginx.pid;
error_log $BENCH_TMP/nginx/error.log;
events { worker_connections 1024; }
stream { server { listen 127.0.0.1:8889; proxy_pass 127.0.0.1:8888; } }
CONF
nsenter --net="$RUNTIME_NS" nginx -c "$BENCH_TMP/nginx/nginx.conf" &
BENCH_PIDS+=($!)
for _ in $(seq 1 100); do
  nsenter --net="$RUNTIME_NS" curl -s -o /dev/null http://127.0.0.1:8889/mrp/v1/capabilities && break
  sleep 0.05
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== round trip, 1000 sequential 32-byte WebSocket echoes (gateway port $PORT) =="
rtt() { nsenter --net="$1" "$WSBENCH" rtt "$2" /ws "$3"; }
rtt "$RUNTIME_NS" 8888 50 >/dev/null
rtt "$RUNTIME_NS" 8889 50 >/dev/null
rtt "$EDITOR_NS" "$PORT" 50 >/dev/null
printf '%-6s %22s %22s %22s %18s\n' round "direct med/p99 us" "nginx relay med/p99" "gateway med/p99 us" "vs direct, nginx"
: >"$BENCH_TMP/ratios"
for round in $(seq 1 "${ROUNDS:-5}"); do
  read -r _ d_med _ d_p99 <<<"$(rtt "$RUNTIME_NS" 8888 1000)"
  read -r _ n_med _ n_p99 <<<"$(rtt "$RUNTIME_NS" 8889 1000)"
  read -r _ g_med _ g_p99 <<<"$(rtt "$EDITOR_NS" "$PORT" 1000)"
  r=$(awk -v g="$g_med" -v d="$d_med" -v n="$n_med" 'BEGIN {printf "%.2f %.2f", g/d, g/n}')
  echo "$r" >>"$BENCH_TMP/ratios"
  printf '%-6s %22s %22s %22s %18s\n' "$round" "$d_med / $d_p99" "$n_med / $n_p99" "$g_med / $g_p99" "$r"
done
echo "ratio: median $(awk '{print $1}' "$BENCH_TMP/ratios" | bench_median)x direct (target <= 1.2)," \
  "$(awk '{print $2}' "$BENCH_TMP/ratios" | bench_median)x nginx's stream relay"
curl -s "http://127.0.0.1:$FEUILLED_PORT/metrics" | grep '^feuille_gateway' || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
