#!/usr/bin/env bash
# The resource monitor (issue 14): USERS (default 100) workspaces running,
# 2 containers each, polled every second by feuilled (one stats call per
# poll); each poll's wall time and loop time (feuille_monitor_poll_*) against
# the same stats call made directly, over SECONDS (default 20).
# Usage: bench/monitor.sh [USERS] [SECONDS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
USERS=${1:-100}
SECONDS_=${2:-20}

bench_postgres
bench_podman
mkdir -p "$BENCH_TMP/users"
bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL" --dev-login --log-level warn \
  --data-dir "$BENCH_TMP/users" --monitor-interval 1s --start-concurrency 8 \
  --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
  --editor-command "/feuille-standin editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
  --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities"
INSTANCE=$(psql -Atq "$BENCH_DB_URL" -c "SELECT id FROM compute_instance")
py() { python3 "$BENCH_ROOT/bench/workspace.py" "$@" --port "$FEUILLED_PORT" --pid "$FEUILLED_PID" \
  --podman "$BENCH_PODMAN_URL" --image "$BENCH_STANDIN" --data-dir "$BENCH_TMP/users" --instance "$INSTANCE"; }
trap 'py cleanup || true; bench_cleanup' EXIT

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
py monitor --users "$USERS" --rounds "$SECONDS_"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
