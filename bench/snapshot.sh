#!/usr/bin/env bash
# Snapshots (issue 14) through feuilled against the same Podman call made
# directly, same run, alternating rounds: POST /api/snapshots (checkpoint
# export left running, written to snapshot-dir, recorded) against a direct
# POST .../checkpoint?export=true&leaveRunning=true&tcpEstablished=true
# written to a file by curl (and the same followed by an fsync of the file,
# the durability feuilled gives a snapshot). For the idle stand-in runtime, then with MB
# (default 128) resident. Target: <= 1.1x. Then, for each size, the freeze
# a snapshot causes to requests through the gateway (the slowest of a loop). Needs the CRIU of scripts/criu;
# the runtime runs as uid 0 (podman-criu-contract.md).
# Usage: [ROUNDS=5] bench/snapshot.sh [MB...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZES=("${@:-128}")
bench_checkpoint_workspace snap --plan "name=free,memory=2G,snapshots=1000,snapshot-bytes=1000G"

# Each timed call starts with no dirty pages (a round's writeback would
# otherwise land in the next one).
direct() {
  sync
  curl -s -o "$BENCH_TMP/direct/a.tar" -w '%{time_total}' -X POST --unix-socket "$SOCK" \
    "http://d/v4.0.0/libpod/containers/$RT/checkpoint?export=true&leaveRunning=true&tcpEstablished=true"
}
# The same, made as durable as feuilled makes a snapshot (the file fsynced).
direct_durable() {
  sync
  local began=$EPOCHREALTIME
  curl -s -o "$BENCH_TMP/direct/b.tar" -X POST --unix-socket "$SOCK" \
    "http://d/v4.0.0/libpod/containers/$RT/checkpoint?export=true&leaveRunning=true&tcpEstablished=true"
  sync "$BENCH_TMP/direct/b.tar"
  awk -v a="$began" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.6f", b - a}'
}
through() {
  local out t id
  sync
  out=$(curl -s -w ' %{time_total}' -X POST -H "$AUTH" -H "Origin: $F" "$F/api/snapshots")
  t=${out##* }
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "${out% *}")
  curl -s -o /dev/null -X DELETE -H "$AUTH" -H "Origin: $F" "$F/api/snapshots/$id"
  echo "$t"
}

# The freeze a snapshot causes: requests to the runtime through the gateway,
# one after the other, while a snapshot is taken; the slowest against the
# median of those before it.
freeze() {
  python3 - "$F/u/$USER_ID/proxy/$PORT/_standin/state" "$WS_HOST" "$WS_AUTH" "$BENCH_TMP/freeze.stop" <<'PY'
import os, sys, time, urllib.request
url, host, cookie, stop = sys.argv[1:]
req = urllib.request.Request(url, headers={"Host": host, "Cookie": cookie.split(": ", 1)[1]})
times = []
while not os.path.exists(stop):
    t = time.monotonic()
    urllib.request.urlopen(req, timeout=60).read()
    times.append(time.monotonic() - t)
before = sorted(times[:20])
print(f"{len(times)} requests: median {before[len(before) // 2] * 1000:.1f} ms, slowest {max(times) * 1000:.0f} ms")
PY
}
measure_freeze() {
  rm -f "$BENCH_TMP/freeze.stop"
  freeze >"$BENCH_TMP/freeze.out" &
  local pid=$!
  sleep 1
  through >/dev/null
  sleep 0.5
  touch "$BENCH_TMP/freeze.stop"
  wait "$pid"
  echo "freeze during a snapshot: $(cat "$BENCH_TMP/freeze.out")"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for mb in 0 "${SIZES[@]}"; do
  bench_resident "$mb"
  : >"$BENCH_TMP/ratios"
  : >"$BENCH_TMP/durable"
  printf '== %s MiB resident ==\n%-6s %12s %14s %12s %8s %10s\n' "$mb" round "direct s" "direct+fsync s" \
    "feuilled s" ratio "ratio+fs"
  for round in $(seq 1 "${ROUNDS:-5}"); do
    d=$(direct)
    s=$(direct_durable)
    f=$(through)
    r=$(awk -v a="$f" -v b="$d" 'BEGIN {printf "%.2f", a/b}')
    q=$(awk -v a="$f" -v b="$s" 'BEGIN {printf "%.2f", a/b}')
    echo "$r" >>"$BENCH_TMP/ratios"
    echo "$q" >>"$BENCH_TMP/durable"
    printf '%-6s %12s %14s %12s %8s %10s\n' "$round" "$d" "$s" "$f" "$r" "$q"
  done
  echo "ratio (median): $(bench_median <"$BENCH_TMP/ratios")x direct (target <= 1.1)," \
    "$(bench_median <"$BENCH_TMP/durable")x direct with the fsync feuilled does; archive" \
    "$(stat -c %s "$BENCH_TMP/direct/a.tar") bytes"
  measure_freeze
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
