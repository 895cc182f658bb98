#!/usr/bin/env bash
# Signal benchmark of `flow serve`: PARKED runs of a workflow that waits for the signal
# `go` (typed `{ n: int }`) and then calls a step, on the default `full` durability.
#   1. parked: start PARKED runs through the run API (8 connections), wait until every one
#      waits, and read the server's RSS (goal: 100,000 parked runs in under 1 GiB);
#   2. wake-up: SAMPLE signals sent one at a time to idle parked runs; for each, the time
#      from sending it to the journal's `step_started` of the step after the wait (goal:
#      p50 under 5 ms);
#   3. throughput: wrk sends signals, 64 connections, each request another run's
#      `POST /api/v1/runs/{id}/signals/go` (goal: 10,000 signals per second accepted
#      durably; `202` means the signal is committed), twice:
#      a. to HELD runs of `held`, which waits an hour before it waits for `go`: each
#         signal is checked and stored for later, so this is what accepting costs;
#      b. to the remaining parked runs of `gate`: each signal also wakes its run, which
#         runs its next step and completes, on the same cores.
#
# Usage: scripts/bench-signals.sh [PARKED] [SAMPLE] [DURATION] [HELD]
#        (defaults 100000, 200, 5s, 60000)
#        FLOW=path/to/flow scripts/bench-signals.sh   (that build; nothing is built)
# Needs wrk (apt-get install wrk) and python3.
set -euo pipefail

cd "$(dirname "$0")/.."
parked="${1:-100000}"
sample="${2:-200}"
duration="${3:-5s}"
held="${4:-60000}"
work="$(pwd)/target/bench-signals"
rm -rf "$work" && mkdir -p "$work"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
if [[ -z "${FLOW:-}" ]]; then
  echo "building flow (release)..." >&2
  cargo build --release --quiet --bin flow
fi
flow="${FLOW:-$(pwd)/target/release/flow}"

cat > "$work/app.flow" <<'FLOW'
/// Parks until `go` arrives, then records it.
workflow gate(n: int) -> int {
  step got = wait signal("go") as { n: int } timeout 7d
  step told = console.print(message: "go ${got.n}")
  return got.n + n
}

/// Waits an hour, then for `go`: signals sent meanwhile are kept until it gets there.
workflow held(n: int) -> int {
  wait 1h
  step got = wait signal("go") as { n: int } timeout 7d
  return got.n + n
}
FLOW
key=$("$flow" keys create --name bench --scope admin --store "$work/flow.db" 2>/dev/null)
"$flow" serve "$work/app.flow" --store "$work/flow.db" --listen 127.0.0.1:0 \
  --rate-limit 1000000 --max-concurrent-runs 1000000 >/dev/null 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q "listening on" "$work/serve.log" 2>/dev/null && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$work/serve.log")
echo "flow serve on $base" >&2

python3 - "$base" "$key" "$parked" "$sample" "$work" "$server" "$held" <<'PY'
import http.client, json, sqlite3, sys, threading, time
base, key, parked, sample, work, pid, held = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
host, port = base.replace("http://", "").split(":")
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

def conn():
    return http.client.HTTPConnection(host, int(port), timeout=120)

runs, lock = [], threading.Lock()
def starter(count, workflow="gate"):
    c, mine = conn(), []
    for i in range(count):
        c.request("POST", f"/api/v1/workflows/{workflow}/runs", body=json.dumps({"n": i}), headers=headers)
        r = c.getresponse(); body = json.loads(r.read())
        assert r.status == 202, body
        mine.append(body["run"])
    with lock:
        runs.extend(mine)
t0 = time.time()
threads = [threading.Thread(target=starter, args=(parked // 8 + (1 if k < parked % 8 else 0),)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
started = time.time() - t0
db = sqlite3.connect(f"file:{work}/flow.db?mode=ro", uri=True)
while db.execute("SELECT count(*) FROM runs WHERE status = 'waiting'").fetchone()[0] < parked:
    time.sleep(0.2)
parked_at = time.time() - t0
rss = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])
print(f"parked: {parked} runs started in {started:.1f}s ({parked / started:,.0f}/s), all waiting after {parked_at:.1f}s; server RSS {rss / 1024:.0f} MiB")

# Wake-ups, one at a time, on an otherwise idle server.
c, lat = conn(), []
for run in runs[:sample]:
    sent = time.time() * 1000
    c.request("POST", f"/api/v1/runs/{run}/signals/go", body=json.dumps({"n": 1}), headers=headers)
    r = c.getresponse(); r.read()
    assert r.status == 202, r.status
    key_row = db.execute("SELECT id FROM runs WHERE run_id = ?", (run,)).fetchone()[0]
    while True:
        row = db.execute("SELECT at FROM events WHERE run = ? AND kind = 'step_started' AND step = 'told'", (key_row,)).fetchone()
        if row: break
        time.sleep(0.0005)
    lat.append(row[0] - sent)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"wake-up: {sample} signals one at a time; sent -> next step started: p50 {q(0.5):.1f} ms, p95 {q(0.95):.1f} ms, max {lat[-1]:.1f} ms (journal times have 1 ms resolution)")
with open(f"{work}/targets.txt", "w") as f:
    f.write("\n".join(runs[sample:]))
runs.clear()
threads = [threading.Thread(target=starter, args=(held // 8 + (1 if k < held % 8 else 0), "held")) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
while db.execute("SELECT count(*) FROM runs WHERE status = 'waiting' AND workflow = 'held'").fetchone()[0] < held:
    time.sleep(0.2)
with open(f"{work}/held.txt", "w") as f:
    f.write("\n".join(runs))
PY

cat > "$work/signal.lua" <<LUA
local runs = {}
for line in io.lines(os.getenv("TARGETS")) do runs[#runs + 1] = line end
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = id
end
request = function()
  counter = counter + 4
  local run = runs[(counter % #runs) + 1]
  return wrk.format("POST", "/api/v1/runs/" .. run .. "/signals/go?id=" .. counter,
    { ["Authorization"] = "Bearer $key", ["Content-Type"] = "application/json" }, '{"n": 2}')
end
statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency)
  io.write(string.format(os.getenv("LABEL") .. ": %d signals in %.1fs: %.0f/s accepted; p50 %.2f ms, p99 %.2f ms; non-2xx %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
LUA
TARGETS="$work/held.txt" LABEL="accepting (signals kept for later)" \
  wrk -t4 -c64 -d"$duration" --latency -s "$work/signal.lua" "$base" | grep -E "^accepting|Non-2xx" || true
TARGETS="$work/targets.txt" LABEL="accepting and waking (each run then finishes)" \
  wrk -t4 -c64 -d"$duration" --latency -s "$work/signal.lua" "$base" | grep -E "^accepting|Non-2xx" || true
echo "server RSS after: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$server/status)"
echo "Command: scripts/bench-signals.sh $parked $sample $duration $held"
