#!/usr/bin/env bash
# Restores and sandbox forks (issue 14) through feuilled against the same
# Podman calls made directly, same run, alternating rounds, for the idle
# stand-in runtime and with MB (default 128) resident:
# - restore: POST /api/snapshots/{id}/restore (the archive restored beside
#   the runtime, the old one removed, the new one renamed, entered, healthy)
#   against POST .../restore?import=true of the same archive by curl under
#   another name (then removed, untimed);
# - fork: POST /api/workspace/sandbox (a leave-running export written to a
#   file, restored as the sandbox, its gateway opened) against the same
#   export to a file and restore of it by curl (then removed, untimed).
# Target: <= 1.1x. Needs the CRIU of scripts/criu; the runtime runs as uid 0.
# Usage: [ROUNDS=3] bench/restore.sh [MB...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZES=("${@:-128}")
bench_checkpoint_workspace restore --plan "name=free,memory=2G,snapshots=1000,snapshot-bytes=1000G"
API=http://d/v4.0.0/libpod
post() { curl -s -w ' %{time_total}' -X POST -H "$AUTH" -H "Origin: $F" "$F$1"; }
seconds() { echo "${1##* }"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "${1% *}" "$2"; }
remove() { curl -s -o /dev/null -X DELETE --unix-socket "$SOCK" "$API/containers/$1?force=true"; }
restore_direct() {  # archive, name: prints seconds
  curl -s -o /dev/null -w '%{time_total}' -X POST --unix-socket "$SOCK" -H 'Content-Type: application/x-tar' \
    --data-binary "@$1" "$API/containers/$2/restore?import=true&name=$2&tcpEstablished=true"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for mb in 0 "${SIZES[@]}"; do
  bench_resident "$mb"
  out=$(post /api/snapshots)
  SNAP=$(field "$out" id)
  ARCHIVE=$BENCH_TMP/snapshots/$USER_ID/$SNAP.tar
  : >"$BENCH_TMP/restores"
  : >"$BENCH_TMP/forks"
  printf '== %s MiB resident ==\n%-6s %10s %10s %7s %10s %10s %7s\n' "$mb" round "restore" "feuilled" ratio \
    "fork" "feuilled" ratio
  for round in $(seq 1 "${ROUNDS:-3}"); do
    sync
    d=$(restore_direct "$ARCHIVE" "bench-restore-$round")
    remove "bench-restore-$round"
    sync
    f=$(seconds "$(post "/api/snapshots/$SNAP/restore")")
    r=$(ratio "$f" "$d")
    echo "$r" >>"$BENCH_TMP/restores"
    sync
    began=$EPOCHREALTIME
    curl -s -o "$BENCH_TMP/direct/fork.tar" -X POST --unix-socket "$SOCK" \
      "$API/containers/$RT/checkpoint?export=true&leaveRunning=true&tcpEstablished=true"
    restore_direct "$BENCH_TMP/direct/fork.tar" "bench-fork-$round" >/dev/null
    dk=$(awk -v a="$began" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.6f", b - a}')
    remove "bench-fork-$round"
    sync
    out=$(post /api/workspace/sandbox)
    fk=$(seconds "$out")
    curl -s -o /dev/null -X DELETE -H "$AUTH" -H "Origin: $F" "$F/api/workspace/sandbox/$(field "$out" id)"
    q=$(ratio "$fk" "$dk")
    echo "$q" >>"$BENCH_TMP/forks"
    printf '%-6s %10s %10s %7s %10s %10s %7s\n' "$round" "$d" "$f" "$r" "$dk" "$fk" "$q"
  done
  echo "restore (median): $(bench_median <"$BENCH_TMP/restores")x direct, fork: $(bench_median <"$BENCH_TMP/forks")x direct (target <= 1.1)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
