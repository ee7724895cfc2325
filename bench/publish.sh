#!/usr/bin/env bash
# Publishing, two measurements in one run:
#  1. a cached page of a 100-page project served by feuilled, against nginx
#     (one worker, sendfile) serving the same HTML bytes as a static file;
#     target: requests/s >= 0.8x nginx.
#  2. a cold render of a 1 MiB markdown page by feuilled (the file is touched
#     before each request, so every request renders), against cmark-gfm's own
#     CLI rendering the same file with the same extensions; target <= 1.2x.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

USER_ID=00000000-0000-4000-8000-0000000000b1
DATA=$BENCH_TMP/data
PROJECT=$DATA/$USER_ID/Projects/bench
BIG=$DATA/$USER_ID/Projects/big

# A page of about 4 KiB: headings, prose, a list, code, a table, links.
page_text() {
  local n=$1
  printf '# Page %s of the survey\n\n' "$n"
  for s in 1 2 3; do
    printf '## Part %s\n\nThe *survey* data for page %s is cleaned here: rows with a missing `id` are dropped, dates are parsed, and outliers beyond three **standard deviations** are flagged. See [the setup](../01-setup.md) and <https://example.org/docs/%s>.\n\n' "$s" "$n" "$n"
    printf -- '- [x] load the file\n- [ ] check the encoding\n- ~~guess~~ measure the types\n\n'
    printf '```python\nimport pandas as pd\ndf = pd.read_csv("data/%s.csv")\ndf = df[df["value"].abs() < 3 * df["value"].std()]\nprint(df.describe())\n```\n\n' "$n"
    printf '| column | type | missing |\n|---|---|---|\n| id | int | 0 |\n| date | date | 12 |\n| value | float | 3 |\n\n'
  done
}

mkdir -p "$PROJECT" "$BIG"
printf '```yaml config\nname: Benchmark project\ndescription: A hundred pages\npublish:\n  visibility: public\n```\n' >"$PROJECT/mrmd.md"
cp "$PROJECT/mrmd.md" "$BIG/mrmd.md"
page_text 0 >"$PROJECT/index.md"
page_text 1 >"$PROJECT/01-setup.md"
n=2
for section in 1 2 3 4 5; do
  dir="$PROJECT/$(printf '%02d' $((section + 1)))-section-$section"
  mkdir -p "$dir"
  page_text "$n" >"$dir/index.md"
  n=$((n + 1))
  for i in $(seq 1 19); do
    [ "$n" -ge 100 ] && break
    page_text "$n" >"$dir/$(printf '%02d' "$i")-page-$n.md"
    n=$((n + 1))
  done
done
pages=$(find "$PROJECT" -name '*.md' ! -name mrmd.md | wc -l)

# The 1 MiB page: the same mix, repeated.
: >"$BENCH_TMP/big.md"
i=0
while [ "$(stat -c %s "$BENCH_TMP/big.md")" -lt 1048576 ]; do
  page_text "$i" >>"$BENCH_TMP/big.md"
  i=$((i + 1))
done
head -c 1048576 "$BENCH_TMP/big.md" >"$BIG/page.md"
echo >>"$BIG/page.md"
big_bytes=$(stat -c %s "$BIG/page.md")

bench_postgres
bench_feuilled --data-dir "$DATA"
psql -q "$BENCH_DB_URL" -c "INSERT INTO users (id, handle) VALUES ('$USER_ID', 'bench')" >/dev/null

# 1. Cached page against nginx.
PAGE_URL=/@bench/bench/section-3/page-45
mkdir -p "$BENCH_TMP/www"
curl -sf -o "$BENCH_TMP/www/page.html" "http://127.0.0.1:$FEUILLED_PORT$PAGE_URL"
html_bytes=$(stat -c %s "$BENCH_TMP/www/page.html")
bench_nginx 1 "sendfile on; server { listen 127.0.0.1:@PORT@; root $BENCH_TMP/www; }"
NGINX_WORKER=$(pgrep -f "nginx: worker process" -P "$(cat "$BENCH_TMP/nginx/nginx.pid")")

echo "1. cached page of a $pages-page project ($html_bytes bytes of HTML), wrk -t2 -c64 (baseline: nginx)"
bench_pairs "http://127.0.0.1:$NGINX_PORT/page.html" "$NGINX_WORKER" "http://127.0.0.1:$FEUILLED_PORT$PAGE_URL" "$FEUILLED_PID"
echo "ratio (median of ${ROUNDS:-5} pairs): requests/s ${PAIR_RPS}x nginx (target >= 0.8), p99 ${PAIR_P99}x nginx"

# 2. Cold render of the 1 MiB page against the cmark-gfm CLI.
runs=7
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1e6}'; }
cmark_times=()
for _ in $(seq 1 $runs); do
  t0=$(date +%s%N)
  cmark-gfm --validate-utf8 -e table -e strikethrough -e autolink -e tasklist "$BIG/page.md" >/dev/null
  t1=$(date +%s%N)
  cmark_times+=("$(ms "$t0" "$t1")")
done
feuilled_times=()
curl -sf -o /dev/null "http://127.0.0.1:$FEUILLED_PORT/@bench/big/page"  # scan the project once
for _ in $(seq 1 $runs); do
  touch "$BIG/page.md"  # a new mtime: the next request renders
  t=$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$FEUILLED_PORT/@bench/big/page")
  feuilled_times+=("$(awk -v t="$t" 'BEGIN {printf "%.1f", t * 1000}')")
done
cached=$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$FEUILLED_PORT/@bench/big/page")
c_med=$(printf '%s\n' "${cmark_times[@]}" | bench_median)
f_med=$(printf '%s\n' "${feuilled_times[@]}" | bench_median)
echo
echo "2. cold render of a $big_bytes-byte markdown page, median of $runs"
echo "cmark-gfm CLI (process start, read, render, write): ${c_med} ms   [${cmark_times[*]}]"
echo "feuilled (HTTP request, read, render, page, hash):  ${f_med} ms   [${feuilled_times[*]}]"
awk -v a="$f_med" -v b="$c_med" 'BEGIN {printf "ratio      %.2fx cmark-gfm (target <= 1.2)\n", a/b}'
awk -v t="$cached" 'BEGIN {printf "the same page once cached: %.1f ms\n", t * 1000}'
