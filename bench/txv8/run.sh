#!/usr/bin/env bash
# bench/txv8/run.sh: per-call cost of txv8 against equivalent PL/pgSQL functions in the same run, printed as ratios.
#
#   bench/txv8/run.sh                      start a throwaway cluster (txv8 preloaded), measure, stop it
#   DATABASE_URL=postgres://... run.sh     measure on an existing database (txv8 preloaded, CREATE EXTENSION allowed)
#
# Every figure is the median of alternating rounds (txv8, PL/pgSQL, txv8, ...), so both see the
# same machine load; ratios are txv8 / PL/pgSQL (per-call cost) or txv8 / PL/pgSQL (throughput).
# Per-call costs are the backend's CPU time net of the bare query loop (the wall-clock ratio is
# printed beside it): on a shared 2-core machine wall time mostly measures the neighbours.
# Needs a superuser (CREATE EXTENSION, pg_read_file of /proc/self/* by the backend).
# Environment: ROUNDS (default 5), N_CALLS (default 1000000), PGBENCH_SECONDS (default 10).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
N_CALLS=${N_CALLS:-1000000}
CLK_TCK=$(getconf CLK_TCK)
N_SPI=$((N_CALLS / 10))
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/pg_ctl" ] || PGBIN=/usr/lib/postgresql/15/bin
WORK=""

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=cluster.sh
. "$HERE/cluster.sh"

cleanup() {
  if [ -n "$WORK" ]; then
    stop_txv8_cluster "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  WORK=$(mktemp -d /tmp/txv8-bench.XXXXXX)
  PORT=$(( 56000 + RANDOM % 900 ))
  start_txv8_cluster "$WORK" "$PORT" "max_connections = 20"
  DATABASE_URL="postgresql://bench@/postgres?host=$WORK&port=$PORT"
fi
export DATABASE_URL
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")

"${PSQL[@]}" -f "$HERE/schema.sql"

# "cpu_ms wall_ms" of one statement: the backend's own CPU time (read by the backend from
# /proc/self/stat, 10 ms ticks, robust to load on a shared machine) and psql's \timing
stmt_cost() {
  "${PSQL[@]}" -At <<EOS | awk '/^Time: / {w=$2} /^C\|/ {split($0, f, "|"); c=f[2]} END {print c, w}'
CREATE FUNCTION pg_temp.cpu() RETURNS bigint LANGUAGE sql AS \$\$
  SELECT (split_part(s, ' ', 12)::bigint + split_part(s, ' ', 13)::bigint) * 1000 / $CLK_TCK
  FROM (SELECT split_part(pg_read_file('/proc/self/stat'), ') ', 2) AS s) x \$\$;
SELECT pg_temp.cpu() AS c0 \\gset
\\timing on
$1 \\g /dev/null
\\timing off
SELECT 'C', pg_temp.cpu() - :c0;
EOS
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# compare NAME N SQL_JS SQL_PL SQL_BASE: per-call backend CPU µs of each (net of the bare
# loop), their ratio, and the same from wall-clock time
compare() {
  local name=$1 n=$2 js=$3 pl=$4 base=$5 k
  for k in js pl base; do : >"$TMP/$k.cpu"; : >"$TMP/$k.wall"; done
  stmt_cost "$js" >/dev/null; stmt_cost "$pl" >/dev/null       # warm both (compile, plan caches)
  for _ in $(seq "$ROUNDS"); do
    for k in js pl base; do
      case $k in js) q=$js ;; pl) q=$pl ;; base) q=$base ;; esac
      read -r c w < <(stmt_cost "$q")
      echo "$c" >>"$TMP/$k.cpu"; echo "$w" >>"$TMP/$k.wall"
    done
  done
  awk -v name="$name" -v n="$n" \
      -v cj="$(median <"$TMP/js.cpu")" -v cp="$(median <"$TMP/pl.cpu")" -v cb="$(median <"$TMP/base.cpu")" \
      -v wj="$(median <"$TMP/js.wall")" -v wp="$(median <"$TMP/pl.wall")" -v wb="$(median <"$TMP/base.wall")" 'BEGIN {
    j = (cj - cb) * 1000 / n; p = (cp - cb) * 1000 / n;
    printf "%-26s txv8 %6.2f us  plpgsql %6.2f us  ratio %.2f   (wall-clock ratio %.2f; loop %.2f us/row)\n",
           name, j, p, j / p, (wj - wb) / (wp - wb), cb * 1000 / n }'
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; cleanup' EXIT
echo "txv8 benchmark: $ROUNDS alternating rounds per figure, median; ratio = txv8 / PL/pgSQL"
echo "server: $("${PSQL[@]}" -Atc 'SELECT version()' | cut -d, -f1); cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

compare "trivial call" "$N_CALLS" \
  "SELECT sum(txv8_bench.t_js(g)) FROM generate_series(1, $N_CALLS) g" \
  "SELECT sum(txv8_bench.t_pl(g)) FROM generate_series(1, $N_CALLS) g" \
  "SELECT sum(g + 1) FROM generate_series(1, $N_CALLS) g"
J='{"id": 17, "name": "widget", "tags": ["a", "b", "c"], "price": 12.5, "stock": {"warehouse": 3, "shop": 1}}'
compare "jsonb in/out" "$N_SPI" \
  "SELECT count(txv8_bench.j_js('$J'::jsonb || jsonb_build_object('g', g))) FROM generate_series(1, $N_SPI) g" \
  "SELECT count(txv8_bench.j_pl('$J'::jsonb || jsonb_build_object('g', g))) FROM generate_series(1, $N_SPI) g" \
  "SELECT count('$J'::jsonb || jsonb_build_object('g', g)) FROM generate_series(1, $N_SPI) g"
compare "SPI select by primary key" "$N_SPI" \
  "SELECT sum(txv8_bench.s_js(g % 1000 + 1)) FROM generate_series(1, $N_SPI) g" \
  "SELECT sum(txv8_bench.s_pl(g % 1000 + 1)) FROM generate_series(1, $N_SPI) g" \
  "SELECT sum(g % 1000 + 1) FROM generate_series(1, $N_SPI) g"

# select + update, one transaction per call, 2 clients: commit-bound throughput
for f in su_js su_pl; do
  printf '\\set k random(1, 1000)\nSELECT txv8_bench.%s(:k);\n' "$f" >"$TMP/$f.sql"
done
: >"$TMP/tps_js"; : >"$TMP/tps_pl"; : >"$TMP/cpu_js"; : >"$TMP/cpu_pl"
pgb() {  # tps and the client's CPU seconds of one pgbench run
  local f=$1 t0 t1
  t0=$(awk '{print $14 + $15 + $16 + $17}' /proc/self/stat)
  /usr/bin/env time -f '%U %S' -o "$TMP/time" \
    pgbench -n -c 2 -j 2 -T "$PGBENCH_SECONDS" -f "$TMP/$f.sql" "$DATABASE_URL" 2>/dev/null \
    | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1 >>"$TMP/tps_${f#su_}"
  awk '{print $1 + $2}' "$TMP/time" >>"$TMP/cpu_${f#su_}"
}
ROUNDS_PGB=${ROUNDS_PGB:-3}
for _ in $(seq "$ROUNDS_PGB"); do pgb su_js; pgb su_pl; done
awk -v tj="$(median <"$TMP/tps_js")" -v tp="$(median <"$TMP/tps_pl")" \
    -v cj="$(median <"$TMP/cpu_js")" -v cp="$(median <"$TMP/cpu_pl")" -v s="$PGBENCH_SECONDS" 'BEGIN {
  printf "%-26s txv8 %7.0f tps  plpgsql %7.0f tps  ratio %.2f   (pgbench -c 2, %ds; client CPU %.1fs / %.1fs)\n",
         "select+update (commit)", tj, tp, tj / tp, s, cj, cp }'

# first call on a new connection (txv8 starts V8 lazily in each backend)
: >"$TMP/first_js"; : >"$TMP/first_pl"
for _ in $(seq "$ROUNDS"); do
  for f in t_js t_pl; do
    "${PSQL[@]}" -c 'SELECT 1' -c '\timing on' -c "SELECT txv8_bench.$f(1)" \
      | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' >>"$TMP/first_${f#t_}"
  done
done
awk -v j="$(median <"$TMP/first_js")" -v p="$(median <"$TMP/first_pl")" 'BEGIN {
  printf "%-26s txv8 %7.2f ms  plpgsql %7.2f ms  ratio %.1f\n", "first call, new connection", j, p, j / p }'

# backend memory growth over 100,000 calls: the backend's private memory (RssAnon, so shared
# buffers it touches do not count), read by the backend itself
mem_growth() {  # kB
  "${PSQL[@]}" -At <<EOS
CREATE FUNCTION pg_temp.rss() RETURNS bigint LANGUAGE sql
  AS \$\$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\\s+(\\d+)'))[1]::bigint \$\$;
SELECT txv8_bench.$1(g % 1000 + 1) FROM generate_series(1, 2000) g \\g /dev/null
SELECT pg_temp.rss() AS before \\gset
SELECT txv8_bench.$1(g % 1000 + 1) FROM generate_series(1, 100000) g \\g /dev/null
SELECT pg_temp.rss() - :before;
EOS
}
gj=$(mem_growth s_js); gp=$(mem_growth s_pl)
awk -v j="$gj" -v p="$gp" 'BEGIN {
  printf "%-26s txv8 %+7.1f MB  plpgsql %+7.1f MB  (private memory (RssAnon) over 100,000 SPI calls, after 2,000 warm-up calls)\n",
         "backend memory growth", j / 1024, p / 1024 }'

"${PSQL[@]}" -c 'DROP SCHEMA txv8_bench CASCADE' 2>/dev/null || true
