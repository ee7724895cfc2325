#!/usr/bin/env bash
# GET /healthz of feuilled against an nginx `return 200` with one worker (one
# loop against one loop), same machine, same run. Prints both and the ratios.
# Target: requests/s ratio >= 1.0, p99 ratio <= 1.2; idle RSS < 30 MiB.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_postgres
bench_feuilled
bench_nginx 1 'server { listen 127.0.0.1:@PORT@; location / { return 200 "ok"; } }'
NGINX_WORKER=$(pgrep -f "nginx: worker process" -P "$(cat "$BENCH_TMP/nginx/nginx.pid")")

sleep 1
idle_rss=$(bench_rss_kib "$FEUILLED_PID")
echo "GET /healthz, wrk -t2 -c64 (baseline: nginx, one worker)"
bench_pairs "http://127.0.0.1:$NGINX_PORT/healthz" "$NGINX_WORKER" "http://127.0.0.1:$FEUILLED_PORT/healthz" "$FEUILLED_PID"
echo "ratio (median of ${ROUNDS:-5} pairs): requests/s ${PAIR_RPS}x nginx (target >= 1.0), p99 ${PAIR_P99}x nginx (target <= 1.2)"
echo "feuilled idle RSS: $((idle_rss / 1024)) MiB ($idle_rss KiB; target < 30 MiB)"

# Wall-clock ratios move with whatever else runs on the machine; instruction
# counts (callgrind, user space only: the kernel's share is not counted) do not.
if command -v valgrind >/dev/null && [ "${BENCH_SKIP_INSTRUCTIONS:-0}" != 1 ]; then
  kill "$FEUILLED_PID"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  f_ins=$(bench_instructions "http://127.0.0.1:$port/healthz" "$FEUILLED" --database-url "$BENCH_DB_URL" --listen "127.0.0.1:$port")
  cat >"$BENCH_TMP/nginx-cg.conf" <<CONF
worker_processes 1; master_process off; daemon off; pid $BENCH_TMP/nginx-cg.pid; error_log $BENCH_TMP/nginx-cg.err;
events { worker_connections 1024; }
http { access_log $BENCH_TMP/nginx-cg.access; server { listen 127.0.0.1:$port; location / { return 200 "ok"; } } }
CONF
  n_ins=$(BENCH_QUIT_SIGNAL=QUIT bench_instructions "http://127.0.0.1:$port/healthz" nginx -c "$BENCH_TMP/nginx-cg.conf")
  awk -v f="$f_ins" -v n="$n_ins" 'BEGIN {printf "instructions/request (callgrind): nginx %d, feuilled %d (%.2fx)\n", n, f, f/n}'
fi
