#!/usr/bin/env bash
# Run API benchmark: `GET /api/v1/runs` with filters over a store of 1,000,000 runs
# (20 workflows, every status, four triggers, over 30 days; written straight into a
# store `flow` created), driven by wrk with 8 connections for DURATION, each request
# one of the filter combinations below in turn. Prints p50/p95/p99 over all of them, and
# the cold start of `flow serve` on that store.
#
# Usage: scripts/bench-api.sh [DURATION] [RUNS]   (defaults 10s, 1000000; needs wrk)
set -euo pipefail

cd "$(dirname "$0")/.."
duration="${1:-10s}"
count="${2:-1000000}"
work="$(pwd)/target/bench-api"
rm -rf "$work" && mkdir -p "$work"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
echo "building flow (release)..." >&2
cargo build --release --quiet --bin flow
flow="${FLOW:-$(pwd)/target/release/flow}"

echo 'workflow w0 -> int {
  return 1
}' > "$work/app.flow"
key=$("$flow" keys create --name bench --scope admin --store "$work/flow.db" 2>/dev/null)
python3 - "$work/flow.db" "$count" <<'PY'
import random, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
random.seed(7)
statuses = ["completed"] * 92 + ["failed"] * 6 + ["cancelled"] * 2
triggers = ["api", "schedule", "webhook", "event"]
start = 1_760_000_000_000
rows = []
for i in range(n):
    at = start + i * (30 * 86_400_000 // n)
    status = random.choice(statuses)
    rows.append((f"r{i:020x}", f"w{i % 20}", "p", 1, status, "{}", "null", at,
                 None if status in ("running", "waiting") else at + 50, random.choice(triggers)))
    if len(rows) == 50_000:
        db.executemany("INSERT INTO runs (run_id, workflow, program, priority, status, input, output, created_at, finished_at, trigger) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        rows.clear()
db.executemany("INSERT INTO runs (run_id, workflow, program, priority, status, input, output, created_at, finished_at, trigger) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
# The runs left running are not this benchmark's business: no executor claims them.
db.execute("UPDATE runs SET executor = 'gone' WHERE executor IS NULL AND status IN ('running', 'waiting')")
db.commit()
PY
echo "store: $(stat -c %s "$work/flow.db") bytes, $count runs" >&2

t0=$(date +%s%3N)
"$flow" serve "$work/app.flow" --store "$work/flow.db" --listen 127.0.0.1:0 --rate-limit 10000000 > /dev/null 2> "$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q "listening on" "$work/serve.log" && break; sleep 0.01; done
t1=$(date +%s%3N)
base=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | tail -1)
echo "flow serve on $count runs: ready after $((t1 - t0)) ms"

cat > "$work/list.lua" <<LUA
local paths = {
  "/api/v1/runs",
  "/api/v1/runs?workflow=w3",
  "/api/v1/runs?status=failed",
  "/api/v1/runs?workflow=w7&status=failed",
  "/api/v1/runs?status=running&status=waiting",
  "/api/v1/runs?trigger=webhook",
  "/api/v1/runs?workflow=w11&trigger=schedule&status=completed",
  "/api/v1/runs?since=2025-10-20T00:00:00Z&until=2025-10-21T00:00:00Z",
  "/api/v1/runs?workflow=w2&since=2025-10-20T00:00:00Z&until=2025-10-21T00:00:00Z&status=cancelled",
  "/api/v1/runs?status=cancelled&limit=200",
}
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], { ["authorization"] = "Bearer $key" })
end
function done(summary, latency)
  io.write(string.format("  requests/s %.0f  p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  errors %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
echo "GET /api/v1/runs with filters (8 connections, $duration):"
wrk -t2 -c8 -d"$duration" -s "$work/list.lua" "$base" | grep requests/s
for p in "/api/v1/runs?status=failed" "/api/v1/runs?workflow=w7&status=failed" "/api/v1/runs?status=running&status=waiting" "/api/v1/runs?since=2025-10-20T00:00:00Z&until=2025-10-21T00:00:00Z"; do
  printf '  %-62s %s\n' "$p" "$(curl -s -o /dev/null -w '%{time_total}' -H "authorization: Bearer $key" "$base$p")s"
done
