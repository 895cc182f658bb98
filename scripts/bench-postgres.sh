#!/usr/bin/env bash
# The PostgreSQL store's figures beside SQLite's, in one run (docs/performance.md,
# "PostgreSQL"):
#   1. in one process (`cargo bench -p flow-runtime --bench engine`): durable no-op step
#      transitions per second (2,000 concurrent runs of 10 sequential no-op steps) and
#      the p50/p95 of one 10-step sequential `http` workflow at a time, on SQLite and
#      then on PostgreSQL;
#   2. worker processes: RUNS queued runs of the 10-step sequential `http` workflow
#      (each step a GET to runtime/examples/http_ok.rs) claimed by 1, 2 and 4
#      `flow serve --role worker` processes: runs/s and durable steps/s until all ended;
#   3. idle: 4 idle workers for 30 s, their queries per second (every statement they
#      send, counted by pg_stat_statements);
#   4. DBOS Transact (PyPI `dbos`, installed under target/bench-dbos) on the same
#      PostgreSQL with the same workflow and HTTP server (scripts/bench-postgres/
#      dbos_bench.py): its p50 one run at a time and its runs/s from 50 threads, beside
#      Flow's figures from 1. and 2.
# PostgreSQL 15 (Debian's, installed when missing) runs with its data under
# target/bench-postgres and is stopped at the end; everything shares the same 2 cores.
#
# Usage: scripts/bench-postgres.sh [RUNS]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2000}"
export FLOW_TEST_SERVICES_DIR="$PWD/target/bench-postgres"
mkdir -p "$FLOW_TEST_SERVICES_DIR"
stop_all() {
  pkill -f "flow serve --role worker" 2>/dev/null || true
  [[ -n "${upstream_pid:-}" ]] && kill "$upstream_pid" 2>/dev/null || true
  [[ -f "$FLOW_TEST_SERVICES_DIR/postgres.stop" ]] && bash "$FLOW_TEST_SERVICES_DIR/postgres.stop" >/dev/null 2>&1 || true
}
trap stop_all EXIT
# shellcheck source=/dev/null
source scripts/services/postgres.sh
[[ -n "${FLOW_TEST_POSTGRES_URL:-}" ]] || { echo "PostgreSQL did not start" >&2; exit 1; }
admin="$FLOW_TEST_POSTGRES_URL"
# Loopback without TLS, for Flow and DBOS alike (the test server also takes TLS).
newdb() {
  psql "$admin" -q -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  echo "${admin%/postgres}/$1?sslmode=disable"
}

echo "building (release)..." >&2
cargo build --release --quiet --bin flow
cargo build --release --quiet -p flow-runtime --example http_ok
flow="$PWD/target/release/flow"

echo
echo "== 1. one process: SQLite, then PostgreSQL"
cargo bench --quiet -p flow-runtime --bench engine -- transitions latency 2>/dev/null | grep -E "^(transitions|latency)" | sed 's/^/sqlite     /'
FLOW_BENCH_STORE="$(newdb bench_engine)" cargo bench --quiet -p flow-runtime --bench engine -- transitions latency 2>/dev/null \
  | grep -E "^(transitions|latency)" | sed 's/^/postgres   /'

echo
echo "== 2. worker processes: $runs queued runs of 10 sequential http steps"
# The upstream stops when its standard input closes: a coprocess keeps it open.
coproc UPSTREAM { exec target/release/examples/http_ok 3600; }
upstream_pid=$UPSTREAM_PID
read -r base <&"${UPSTREAM[0]}"
work=$(mktemp -d)
cat > "$work/ten.flow" <<FLOW
workflow ten(base: string) -> int {
  step s0 = http.get(url: "\${base}/0")
  step s1 = http.get(url: "\${base}/1") after s0
  step s2 = http.get(url: "\${base}/2") after s1
  step s3 = http.get(url: "\${base}/3") after s2
  step s4 = http.get(url: "\${base}/4") after s3
  step s5 = http.get(url: "\${base}/5") after s4
  step s6 = http.get(url: "\${base}/6") after s5
  step s7 = http.get(url: "\${base}/7") after s6
  step s8 = http.get(url: "\${base}/8") after s7
  step s9 = http.get(url: "\${base}/9") after s8
  return s9.status
}
FLOW
for workers in 1 2 4; do
  store=$(newdb "bench_workers_$workers")
  # One run queued by the CLI, then copied in SQL (queueing thousands one process at a
  # time would measure process starts, not workers).
  (cd "$work" && FLOW_STORE="$store" "$flow" run ten.flow --input "{\"base\": \"$base\"}" --enqueue >/dev/null)
  psql "$store" -q -c "INSERT INTO runs (run_id, workflow, program, priority, status, input, created_at)
    SELECT run_id || '-' || g, workflow, program, priority, status, input, created_at + g
    FROM runs, generate_series(2, $runs) g" >/dev/null
  start=$(date +%s.%N)
  for _ in $(seq "$workers"); do
    (cd "$work" && FLOW_STORE="$store" FLOW_LOG=warn "$flow" serve --role worker --max-concurrent-runs 100 >/dev/null 2>&1 &)
  done
  while true; do
    done_runs=$(psql "$store" -Atc "SELECT count(*) FROM runs WHERE status IN ('completed', 'failed')")
    [[ "$done_runs" -ge "$runs" ]] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  failed=$(psql "$store" -Atc "SELECT count(*) FROM runs WHERE status = 'failed'")
  pkill -f "flow serve --role worker" || true
  sleep 0.5
  awk -v n="$runs" -v s="$start" -v e="$end" -v w="$workers" -v f="$failed" 'BEGIN {
    t = e - s; printf "%d worker(s): %d runs in %.2fs = %.0f runs/s, %.0f durable steps/s (%d failed)\n", w, n, t, n / t, n * 10 / t, f }'
done

echo
echo "== 3. idle: 4 workers with nothing to do, for 30 s"
store=$(newdb bench_idle)
psql "$admin" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
for _ in 1 2 3 4; do
  (cd "$work" && FLOW_STORE="$store" FLOW_LOG=warn "$flow" serve --role worker >/dev/null 2>&1 &)
done
sleep 5
# Every statement the workers send to the database (utility statements such as BEGIN
# included), from pg_stat_statements.
count() {
  psql "$admin" -Atc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench_idle' AND s.query NOT LIKE '%pg_stat_statements%'"
}
psql "$admin" -q -c "SELECT pg_stat_statements_reset()" >/dev/null
before=$(count)
sleep 30
after=$(count)
pkill -f "flow serve --role worker" || true
awk -v a="$before" -v b="$after" 'BEGIN { printf "4 idle workers: %.2f queries/s together (%d statements in 30 s)\n", (b - a) / 30, b - a }'
psql "$admin" -At -c "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench_idle' AND s.query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 5" | sed 's/^/   /'

echo
echo "== 4. DBOS Transact, same PostgreSQL, workflow and HTTP server"
venv="$PWD/target/bench-dbos/venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import dbos" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "dbos==3.4.0"
fi
"$venv/bin/python" scripts/bench-postgres/dbos_bench.py "$(newdb bench_dbos)" "$base" "$runs" 50
rm -rf "$work"
