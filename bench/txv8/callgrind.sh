#!/usr/bin/env bash
# bench/txv8/callgrind.sh: instructions (and simulated cache misses) per call of bench/txv8's
# functions, txv8 against PL/pgSQL, counted by callgrind in a single-user backend: deterministic,
# unlike time on a shared machine.
#
#   bench/txv8/callgrind.sh                 trivial call and SPI select
#   FUNCS="t s j" bench/txv8/callgrind.sh   also jsonb in/out
#   KEEP=1 bench/txv8/callgrind.sh          keep the callgrind files (one per statement) for callgrind_annotate
#   TXV8_SO=extension/txv8.so callgrind.sh  measure a build before installing it (loaded instead of the installed one)
#
# After a warm-up long enough for V8 to optimise the function (as it is in bench/txv8/run.sh's
# long loops; compiled on the main thread, --no-concurrent-recompilation, since valgrind runs
# V8's compiler thread too rarely to finish in time), each function runs in a loop of N1 and of N2 calls (one statement each, dumped separately with
# --dump-after=PortalRun); per call = (cost(N2) - cost(N1)) / (N2 - N1), net of the same
# for the bare loop, so start-up, planning and warm-up cancel out. "est. cycles" weighs the
# simulated misses as cachegrind's documentation suggests: Ir + 10 x (L1 misses + mispredicted
# branches) + 100 x LL misses.
# Environment: N1 (default 200), N2 (default 1200), FUNCS (default "t s"), CACHE_SIM (default yes).
set -euo pipefail

N1=${N1:-200}
N2=${N2:-1200}
FUNCS=${FUNCS:-t s}
CACHE_SIM=${CACHE_SIM:-yes}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/txv8-callgrind.XXXXXX)
# shellcheck source=cluster.sh
. "$HERE/cluster.sh"
cleanup() {
  stop_txv8_cluster "$WORK" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "callgrind files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$(( 57000 + RANDOM % 900 ))
start_txv8_cluster "$WORK" "$PORT"
chmod 755 "$WORK"
psql -X -q -v ON_ERROR_STOP=1 "postgresql://bench@/postgres?host=$WORK&port=$PORT" -f "$HERE/schema.sql" 2>"$WORK/schema.err" \
  || { cat "$WORK/schema.err"; exit 1; }
stop_txv8_cluster "$WORK"

# one statement per line; the statements whose cost is read are listed in $WORK/measured
loop() {  # loop KIND N: the statement looping N times over function KIND (or the bare loop)
  local f=$1 n=$2
  case $f in
    t_base) echo "SELECT sum(g + 1) FROM generate_series(1, $n) g" ;;
    s_base) echo "SELECT sum(g % 1000 + 1) FROM generate_series(1, $n) g" ;;
    j_base) echo "SELECT count('{\"id\": 17, \"tags\": [\"a\", \"b\"]}'::jsonb || jsonb_build_object('g', g)) FROM generate_series(1, $n) g" ;;
    t_*) echo "SELECT sum(txv8_bench.$f(g)) FROM generate_series(1, $n) g" ;;
    s_*) echo "SELECT sum(txv8_bench.$f(g % 1000 + 1)) FROM generate_series(1, $n) g" ;;
    j_*) echo "SELECT count(txv8_bench.$f('{\"id\": 17, \"tags\": [\"a\", \"b\"]}'::jsonb || jsonb_build_object('g', g))) FROM generate_series(1, $n) g" ;;
  esac
}
: >"$WORK/script"; : >"$WORK/measured"
i=0
if [ -n "${TXV8_SO:-}" ]; then
  # load the build from $WORK/lib: the preloaded library comes from dynamic_library_path, and the
  # language's functions, which name $libdir/txv8, are made to find it there too
  mkdir "$WORK/lib"
  cp "$TXV8_SO" "$WORK/lib/txv8.so"
  ln -s "$("$PGBIN/pg_config" --pkglibdir)/txv8" "$WORK/lib/txv8"   # its libnode
  echo "dynamic_library_path = '$WORK/lib:\$libdir'" >> "$WORK/data/postgresql.conf"
  echo "UPDATE pg_proc SET probin = 'txv8' WHERE probin = '\$libdir/txv8'" >>"$WORK/script"; i=1
fi
for k in $FUNCS; do
  for f in "${k}_js" "${k}_pl" "${k}_base"; do
    # warm-up: compile, plan caches, and enough calls for V8 to optimise the function
    # (TurboFan takes the trivial one after ~10-30 k calls, the SPI one after ~3-8 k)
    loop "$f" "$([ "$k" = t ] && echo 40000 || echo 15000)" >>"$WORK/script"; i=$((i + 1))
    for n in "$N1" "$N2"; do
      loop "$f" "$n" >>"$WORK/script"; i=$((i + 1)); echo "$f $n $i" >>"$WORK/measured"
    done
  done
done

sim=(); [ "$CACHE_SIM" = yes ] && sim=(--cache-sim=yes --branch-sim=yes)
as_owner valgrind --tool=callgrind --smc-check=all-non-file "${sim[@]}" --dump-instr=yes \
  --dump-after=PortalRun --callgrind-out-file="$WORK/cg.out" \
  "$PGBIN/postgres" --single -D "$WORK/data" -c txv8.v8_flags=--no-concurrent-recompilation postgres <"$WORK/script" >"$WORK/stdout" 2>"$WORK/stderr" \
  || { tail -20 "$WORK/stderr"; exit 1; }
if grep -q ERROR "$WORK/stdout"; then grep ERROR "$WORK/stdout" | head; exit 1; fi

# the events of dump number $1 ("totals:" line, in the order of the "events:" line)
events() { grep -m1 '^events:' "$WORK/cg.out.$1" | cut -d' ' -f2-; }
totals() { grep -m1 -E '^(totals|summary):' "$WORK/cg.out.$1" | cut -d' ' -f2-; }
echo "instructions per call (callgrind, single-user backend; N = $N1 and $N2 calls; net of the bare loop)"
echo "events: $(events 1)"
for k in $FUNCS; do
  declare -A per=()
  for f in "${k}_js" "${k}_pl" "${k}_base"; do
    a=$(awk -v f="$f" -v n="$N1" '$1 == f && $2 == n {print $3}' "$WORK/measured")
    b=$(awk -v f="$f" -v n="$N2" '$1 == f && $2 == n {print $3}' "$WORK/measured")
    per[$f]=$(paste <(events "$a" | tr ' ' '\n') <(totals "$a" | tr ' ' '\n') <(totals "$b" | tr ' ' '\n') |
      awk -v d=$((N2 - N1)) '{v[$1] = ($3 - $2) / d; o = o sprintf(" %s=%.1f", $1, v[$1])}
        END {c = v["Ir"] + 10 * (v["I1mr"] + v["D1mr"] + v["D1mw"]) + 100 * (v["ILmr"] + v["DLmr"] + v["DLmw"]) + 10 * (v["Bcm"] + v["Bim"]);
             printf "%.1f %.1f%s", v["Ir"], c, o}')
  done
  read -r bi bc _ <<<"${per[${k}_base]}"
  read -r ji jc jrest <<<"${per[${k}_js]}"
  read -r pi pc prest <<<"${per[${k}_pl]}"
  awk -v k="$k" -v ji="$ji" -v pi="$pi" -v bi="$bi" -v jc="$jc" -v pc="$pc" -v bc="$bc" 'BEGIN {
    name = k == "t" ? "trivial call" : k == "s" ? "SPI select by primary key" : "jsonb in/out";
    printf "%-26s txv8 %8.0f  plpgsql %8.0f  ratio %.2f", name, ji - bi, pi - bi, (ji - bi) / (pi - bi);
    if (jc != ji) printf "   est. cycles txv8 %8.0f  plpgsql %8.0f  ratio %.2f", jc - bc, pc - bc, (jc - bc) / (pc - bc);
    printf "\n" }'
  echo "    txv8 (gross):$jrest"
  echo "    plpgsql (gross):$prest"
done
