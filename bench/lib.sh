# Shared helpers of the benchmark scripts (sourced).
# They start what they measure on 127.0.0.1 only, and stop it on exit.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FEUILLED=${FEUILLED:-$BENCH_ROOT/build/feuilled}
BENCH_TMP=$(mktemp -d /tmp/feuille-bench-XXXXXX)
chmod 755 "$BENCH_TMP"
BENCH_PIDS=()

bench_cleanup() {
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${BENCH_PG:-}" ]; then "$BENCH_ROOT/build/tests/feuille_test_env" postgres-stop "$BENCH_PG" >/dev/null 2>&1 || true; fi
  if [ -n "${BENCH_PODMAN:-}" ]; then "$BENCH_ROOT/build/tests/feuille_test_env" podman-stop "$BENCH_PODMAN" >/dev/null 2>&1 || true; fi
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

# A private PostgreSQL for feuilled; sets BENCH_DB_URL.
bench_postgres() {
  BENCH_PG=$BENCH_TMP/pg
  "$BENCH_ROOT/build/tests/feuille_test_env" postgres-start "$BENCH_PG" >/dev/null
  BENCH_DB_URL=$(sed 's|:///postgres?|:///feuille?|' "$BENCH_PG/database-url")
}

# A private podman system service (the tests' containers.conf) with the
# stand-in image imported; sets BENCH_PODMAN_URL and BENCH_STANDIN.
bench_podman() {
  BENCH_PODMAN=$BENCH_TMP/podman
  "$BENCH_ROOT/build/tests/feuille_test_env" podman-start "$BENCH_PODMAN" "$BENCH_ROOT/tests/containers.conf" \
    "$BENCH_ROOT/build/feuille-standin" >/dev/null
  BENCH_PODMAN_URL=$(cat "$BENCH_PODMAN/podman-url")
  BENCH_STANDIN=$(cat "$BENCH_PODMAN/standin-image")
}

# Starts feuilled with extra arguments; sets FEUILLED_PID and FEUILLED_PORT.
bench_feuilled() {
  "$FEUILLED" --database-url "$BENCH_DB_URL" --listen 127.0.0.1:0 "$@" \
    >"$BENCH_TMP/feuilled.out" 2>"$BENCH_TMP/feuilled.err" &
  FEUILLED_PID=$!
  BENCH_PIDS+=("$FEUILLED_PID")
  for _ in $(seq 1 200); do
    FEUILLED_PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$BENCH_TMP/feuilled.out" | head -1)
    [ -n "$FEUILLED_PORT" ] && return 0
    sleep 0.05
  done
  echo "feuilled did not start:" >&2
  cat "$BENCH_TMP/feuilled.err" >&2
  exit 1
}

# Starts nginx with the given http{} body on a free port; sets NGINX_PORT
# and NGINX_WORKERS (their pids, comma-separated).
# NGINX_CONNECTIONS: worker_connections (and the workers' descriptor limit).
# NGINX_NETNS: a network namespace path to run it in (its 127.0.0.1 is that
# namespace's); NGINX_DIR: its folder (default $BENCH_TMP/nginx).
bench_nginx() {
  local workers=$1 body=$2 dir=${NGINX_DIR:-$BENCH_TMP/nginx}
  local in_ns=()
  [ -n "${NGINX_NETNS:-}" ] && in_ns=(nsenter --net="$NGINX_NETNS")
  NGINX_PORT=$("${in_ns[@]}" python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
worker_rlimit_nofile ${NGINX_CONNECTIONS:-4096};
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections ${NGINX_CONNECTIONS:-4096}; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  $(printf '%s' "$body" | sed "s/@PORT@/$NGINX_PORT/g")
}
CONF
  "${in_ns[@]}" nginx -c "$dir/nginx.conf" &
  BENCH_PIDS+=($!)
  for _ in $(seq 1 100); do
    if "${in_ns[@]}" curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; then
      NGINX_WORKERS=$(pgrep -d, -f "nginx: worker process" -P "$(cat "$dir/nginx.pid")")
      return 0
    fi
    sleep 0.05
  done
  echo "nginx did not start" >&2
  exit 1
}

# CPU ticks (user+system) of processes (a comma-separated list of pids) and all their threads.
bench_cpu_ticks() {
  local total=0 pid
  for pid in ${1//,/ }; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}

# Runs wrk; prints "rps p99_ms cpu_us_per_req" (cpu of PIDS when given, comma-separated).
# WRK_NETNS: a network namespace path to run wrk in.
bench_wrk() {
  local url=$1 pid=${2:-} duration=${WRK_DURATION:-10s}
  local before=0 after=0 in_ns=()
  [ -n "${WRK_NETNS:-}" ] && in_ns=(nsenter --net="$WRK_NETNS")
  [ -n "$pid" ] && before=$(bench_cpu_ticks "$pid")
  local out
  out=$("${in_ns[@]}" wrk -t2 -c64 -d"$duration" --latency "$url" "${@:3}")
  [ -n "$pid" ] && after=$(bench_cpu_ticks "$pid")
  local rps p99 reqs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local cpu="-"
  if [ -n "$pid" ] && [ "${reqs:-0}" -gt 0 ]; then
    cpu=$(awk -v t=$((after - before)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t * 1e6 / hz / r}')
  fi
  echo "$rps $p99 $cpu"
}

# Resident memory of processes (a comma-separated list of pids), KiB.
bench_rss_kib() {
  local total=0 pid
  for pid in ${1//,/ }; do total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"))); done
  echo "$total"
}

# Instructions per request of a server under callgrind: runs "$@" (the server
# command, which must listen on URL), measures total instructions with and
# without a fixed load (wrk -t1 -c4 for 5 s), prints instructions per request.
# Deterministic for a given binary and input, whatever else the machine does.
bench_instructions() {
  local url=$1
  shift
  local totals=() reqs=0
  for load in 0 1; do
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$BENCH_TMP/cg.$load" &
    local pid=$!
    for _ in $(seq 1 200); do
      curl -s -o /dev/null "$url" && break
      sleep 0.1
    done
    if [ "$load" = 1 ]; then
      reqs=$(wrk -t1 -c4 -d5s "$url" | awk '/requests in/ {print $1}')
    fi
    kill -TERM "$pid" 2>/dev/null || true
    [ -n "${BENCH_QUIT_SIGNAL:-}" ] && kill "-$BENCH_QUIT_SIGNAL" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    totals+=("$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$BENCH_TMP/cg.$load")")
  done
  # The warm-up probes (curl) are counted in both runs and cancel out.
  awk -v a="${totals[0]}" -v b="${totals[1]}" -v r="$reqs" 'BEGIN {printf "%.0f", (b - a) / r}'
}

# The median of numbers, one per line.
bench_median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# feuilled against a baseline server, for ratios on a machine whose speed
# drifts by tens of percent within a minute: a 2 s warm-up of each, then
# ROUNDS (default 5) alternating pairs of 5 s wrk runs (baseline first),
# each pair printed, and the medians of the pairs' ratios (feuilled /
# baseline) left in PAIR_RPS and PAIR_P99. BASE_NETNS: the namespace the
# baseline's wrk runs in (where BASE_URL's 127.0.0.1 is).
# Usage: bench_pairs BASE_URL BASE_PIDS URL PIDS [wrk arguments for URL...]
bench_pairs() {
  local base=$1 base_pids=$2 url=$3 pids=$4
  shift 4
  local ratios=$BENCH_TMP/pair-ratios round b_rps b_p99 b_cpu f_rps f_p99 f_cpu r
  WRK_NETNS=${BASE_NETNS:-} WRK_DURATION=2s bench_wrk "$base" >/dev/null
  WRK_NETNS= WRK_DURATION=2s bench_wrk "$url" "" "$@" >/dev/null
  printf '%-6s %24s %24s %22s %10s\n' round "baseline req/s p99 ms" "feuilled req/s p99 ms" "CPU us/req (b / f)" "ratios"
  : >"$ratios"
  for round in $(seq 1 "${ROUNDS:-5}"); do
    read -r b_rps b_p99 b_cpu <<<"$(WRK_NETNS=${BASE_NETNS:-} WRK_DURATION=5s bench_wrk "$base" "$base_pids")"
    read -r f_rps f_p99 f_cpu <<<"$(WRK_NETNS= WRK_DURATION=5s bench_wrk "$url" "$pids" "$@")"
    r=$(awk -v a="$f_rps" -v b="$b_rps" -v c="$f_p99" -v e="$b_p99" 'BEGIN {printf "%.2f %.2f", a/b, c/e}')
    echo "$r" >>"$ratios"
    printf '%-6s %14s %9s %14s %9s %22s %10s\n' "$round" "$b_rps" "$b_p99" "$f_rps" "$f_p99" "$b_cpu / $f_cpu" "$r"
  done
  PAIR_RPS=$(awk '{print $1}' "$ratios" | bench_median)
  PAIR_P99=$(awk '{print $2}' "$ratios" | bench_median)
}

# Enters USER_ID's workspace on its own origin (feuilled runs with
# --workspace-origin http://{id}.ws.localhost:{port}) with the session
# COOKIE, the way a browser does (the ticket's 302s); sets WS_HOST (the Host
# of that origin) and WS_AUTH ("Cookie: feuille_ws=...").
bench_enter() {
  local user=$1 cookie=$2 f=http://127.0.0.1:$FEUILLED_PORT location ws
  WS_HOST=$user.ws.localhost:$FEUILLED_PORT
  location=$(curl -s -o /dev/null -w '%{redirect_url}' -H "Cookie: feuille_session=$cookie" "$f/u/$user/")
  ws=$(curl -s -i -H "Host: $WS_HOST" "$f${location#http://$WS_HOST}" |
    sed -n 's/^[Ss]et-[Cc]ookie: feuille_ws=\([^;]*\).*/\1/p' | tr -d '\r')
  [ -n "$ws" ] || { echo "entering the workspace of $user failed ($location)" >&2; exit 1; }
  WS_AUTH="Cookie: feuille_ws=$ws"
}

# Signs HANDLE in with dev login on the running feuilled and starts its
# workspace; sets COOKIE, AUTH ("Cookie: ..."), USER_ID once it runs.
bench_workspace() {
  local handle=$1 f=http://127.0.0.1:$FEUILLED_PORT state=
  COOKIE=$(curl -s -i -X POST -H "Origin: $f" -d "handle=$handle" "$f/auth/dev" |
    sed -n 's/^[Ss]et-[Cc]ookie: feuille_session=\([^;]*\).*/\1/p' | tr -d '\r')
  [ -n "$COOKIE" ] || { echo "dev login failed" >&2; exit 1; }
  AUTH="Cookie: feuille_session=$COOKIE"
  USER_ID=$(curl -s -H "$AUTH" "$f/api/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  bench_prepare_home "$USER_ID"
  curl -s -o /dev/null -X POST -H "$AUTH" -H "Origin: $f" "$f/api/workspace/start"
  for _ in $(seq 1 600); do
    state=$(curl -s -H "$AUTH" "$f/api/workspace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    [ "$state" = running ] && return 0
    sleep 0.1
  done
  echo "the workspace of $handle did not start ($state)" >&2
  exit 1
}
# Called by bench_workspace before the start, with the user's id: a script
# may put files into the user's folder (the default does nothing).
bench_prepare_home() { :; }

# A container's network namespace path (SandboxKey) on the bench's Podman.
bench_sandbox_key() {
  curl -s --unix-socket "${BENCH_PODMAN_URL#unix://}" "http://d/v4.0.0/libpod/containers/$1/json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["NetworkSettings"]["SandboxKey"])'
}

# Removes every container and pod of the running feuilled's instance.
bench_remove_workspaces() {
  local sock=${BENCH_PODMAN_URL#unix://} instance filter
  instance=$(psql -Atq "$BENCH_DB_URL" -c "SELECT id FROM compute_instance")
  filter=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.dumps({"label": ["io.feuille.instance=" + sys.argv[1]]})))' "$instance")
  for kind in containers pods; do
    for id in $(curl -s --unix-socket "$sock" "http://d/v4.0.0/libpod/$kind/json?all=true&filters=$filter" |
      python3 -c 'import json,sys; print("\n".join(c["Id"] for c in json.load(sys.stdin) or []))'); do
      curl -s -o /dev/null -X DELETE --unix-socket "$sock" "http://d/v4.0.0/libpod/$kind/$id?force=true"
    done
  done
}

# For the checkpoint benchmarks: PostgreSQL, Podman with the CRIU of
# scripts/criu, feuilled (stand-in images, the runtime as uid 0, snapshots in
# $BENCH_TMP/snapshots, workspace origins, and the extra arguments given),
# one workspace of HANDLE running once its host's checkpoint probe said yes,
# entered. Sets F, SOCK, RT and PORT (the runtime's) besides what
# bench_feuilled, bench_workspace and bench_enter set.
# Usage: bench_checkpoint_workspace HANDLE [feuilled arguments...]
bench_checkpoint_workspace() {
  local handle=$1
  shift
  export PATH="$BENCH_ROOT/build/criu:$PATH"
  bench_postgres
  bench_podman
  mkdir -p "$BENCH_TMP/users" "$BENCH_TMP/snapshots" "$BENCH_TMP/direct"
  bench_feuilled --compute-host "name=local,url=$BENCH_PODMAN_URL" --dev-login --log-level warn \
    --data-dir "$BENCH_TMP/users" --snapshot-dir "$BENCH_TMP/snapshots" --runtime-user 0 \
    --workspace-origin 'http://{id}.ws.localhost:{port}' \
    --editor-image "$BENCH_STANDIN" --runtime-image "$BENCH_STANDIN" \
    --editor-command "/feuille-standin editor --port {port} --host 127.0.0.1 --token {token} --health-path /health" \
    --runtime-command "/feuille-standin runtime --port 8888 --host 0.0.0.0 --health-path /mrp/v1/capabilities" "$@"
  trap 'bench_remove_workspaces || true; bench_cleanup' EXIT
  F=http://127.0.0.1:$FEUILLED_PORT
  SOCK=${BENCH_PODMAN_URL#unix://}
  bench_workspace "$handle"
  for _ in $(seq 1 100); do
    [ "$(curl -s -H "$AUTH" "$F/api/workspace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["criu"])')" = True ] &&
      break
    sleep 0.1
  done
  bench_enter "$USER_ID" "$COOKIE"
  PORT=$(curl -s -H "$AUTH" "$F/api/workspace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["runtime"]["port"])')
  RT=feuille-rt-$USER_ID
}

# Grows the checkpoint workspace's runtime to MB MiB resident (allocated and
# touched through the editor's /proxy/ route; never shrinks).
BENCH_RESIDENT=0
bench_resident() {
  [ "$1" -gt "$BENCH_RESIDENT" ] || return 0
  curl -s -o /dev/null -H "Host: $WS_HOST" -H "$WS_AUTH" \
    "$F/u/$USER_ID/proxy/$PORT/_standin/alloc?mb=$(($1 - BENCH_RESIDENT))"
  BENCH_RESIDENT=$1
}
