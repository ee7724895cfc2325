#!/usr/bin/env bash
# Wake latency (issue 14): a visit to a sleeping workspace (a script's
# request through the proxy, which waits for the wake) until the editor's
# first byte, against a cold start measured the same way in the same run
# (the same sleeping workspace with its sleep snapshot deleted first), for
# the idle stand-in runtime and with MB (default 128) resident. Each round
# waits for the idle policy to put the workspace to sleep (idle-timeout 2s).
# Targets: wake <= 1.0 s idle, <= 1.5 s at 128 MiB, always below a cold start.
# Needs the CRIU of scripts/criu; the runtime runs as uid 0.
# Usage: [ROUNDS=3] bench/wake.sh [MB...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZES=("${@:-128}")
bench_checkpoint_workspace wake --monitor-interval 200ms --plan "name=free,memory=2G,idle-timeout=2s"
RUNTIME="$F/u/$USER_ID/proxy/$PORT/_standin"
SLEEP_TAR=$BENCH_TMP/snapshots/$USER_ID/sleep.tar

state() { curl -s -H "$AUTH" "$F/api/workspace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
wait_asleep() {
  for _ in $(seq 1 600); do
    [ "$(state)" = sleeping ] && return 0
    sleep 0.1
  done
  echo "the workspace did not fall asleep" >&2
  exit 1
}
# Seconds from the visit to the editor's first byte (the request waits for the wake).
visit() {
  curl -s -o /dev/null -w '%{time_starttransfer}' -H "Host: $WS_HOST" -H "$WS_AUTH" "$F/u/$USER_ID/visit"
}
kept() {
  curl -s -H "Host: $WS_HOST" -H "$WS_AUTH" "$RUNTIME/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])'
}
# MB resident in the runtime, marked so that a wake can be told from a cold start.
fill() {
  # Set until it holds (a request that reaches the editor just as the sleep
  # takes its containers away can still fail).
  for _ in $(seq 1 20); do
    curl -s -o /dev/null -H "Host: $WS_HOST" -H "$WS_AUTH" "$RUNTIME/state?set=kept"
    [ "$(kept)" = kept ] && break
    sleep 0.5
  done
  [ "$1" -gt 0 ] && curl -s -o /dev/null -H "Host: $WS_HOST" -H "$WS_AUTH" "$RUNTIME/alloc?mb=$1"
  return 0
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for mb in 0 "${SIZES[@]}"; do
  : >"$BENCH_TMP/wakes"
  : >"$BENCH_TMP/ratios"
  printf '== %s MiB resident ==\n%-6s %10s %10s %8s\n' "$mb" round "wake s" "cold s" ratio
  for round in $(seq 1 "${ROUNDS:-3}"); do
    fill "$mb"
    wait_asleep
    w=$(visit)
    if [ "$(kept)" != kept ]; then
      echo "the wake lost the runtime's state; the last steps:" >&2
      psql -Atq "$BENCH_DB_URL" -c "SELECT kind, detail FROM events WHERE user_id = '$USER_ID' ORDER BY id DESC LIMIT 8" >&2
      exit 1
    fi
    wait_asleep
    rm -f "$SLEEP_TAR"  # the same visit, now a cold start
    c=$(visit)
    [ "$(kept)" != kept ] || { echo "expected a fresh runtime after the cold start" >&2; exit 1; }
    r=$(awk -v a="$w" -v b="$c" 'BEGIN {printf "%.2f", a/b}')
    echo "$w" >>"$BENCH_TMP/wakes"
    echo "$r" >>"$BENCH_TMP/ratios"
    printf '%-6s %10s %10s %8s\n' "$round" "$w" "$c" "$r"
  done
  echo "wake (median): $(bench_median <"$BENCH_TMP/wakes") s, $(bench_median <"$BENCH_TMP/ratios")x a cold start"
  echo "the steps of the last wake (ms after the one before):"
  psql -Atq -F ' ' "$BENCH_DB_URL" -c "
    WITH w AS (SELECT max(id) AS first FROM events WHERE user_id = '$USER_ID' AND kind = 'waking'
                 AND detail->>'python_state' = 'kept')
    SELECT kind, round(extract(epoch FROM at - lag(at) OVER (ORDER BY id)) * 1000)
    FROM events, w WHERE user_id = '$USER_ID' AND id >= w.first AND id <= w.first + 5 ORDER BY id" |
    sed 's/^/  /'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
