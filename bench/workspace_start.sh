#!/usr/bin/env bash
# Workspace starts (issue 5), on a private podman service with the stand-in
# image (the real mrmd images cannot be pulled here):
#  1. cold start: POST /api/workspace/start until both health checks pass,
#     against the floor of the same two containers (the same network mode:
#     own slirp4netns namespaces, the editor in a pod) created and started
#     directly through the Podman API and polled the same way inside their
#     namespaces, same run, alternating rounds. Target: feuilled's overhead <= 10%.
#  2. 50 users at once (retrying on 429): all running, wall time, peak RSS.
# Usage: bench/workspace_start.sh [ROUNDS] [USERS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}
USERS=${2:-50}

bench_postgres
bench_podman
mkdir -p "$BENCH_TMP/users"
bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL,address=127.0.0.1" --dev-login \
  --data-dir "$BENCH_TMP/users" --log-level warn --egress-address 198.18.0.1 \
  --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
  --editor-command "/feuille-standin editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
  --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities"
INSTANCE=$(psql -Atq "$BENCH_DB_URL" -c "SELECT id FROM compute_instance")
py() { python3 "$BENCH_ROOT/bench/workspace.py" "$@" --port "$FEUILLED_PORT" --pid "$FEUILLED_PID" \
  --podman "$BENCH_PODMAN_URL" --image "$BENCH_STANDIN" --data-dir "$BENCH_TMP/users" --instance "$INSTANCE" --egress 198.18.0.1; }
trap 'py cleanup || true; bench_cleanup' EXIT

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== cold start ($ROUNDS rounds each) =="
py cold --rounds "$ROUNDS"
echo "== $USERS users at once =="
py fifty --users "$USERS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
