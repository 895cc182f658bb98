#!/usr/bin/env bash
# Scheduler and idle benchmarks of `flow serve`:
#   1. an idle server (the examples, nothing due): RSS and CPU time over 30 s;
#   2. 10,000 schedules (`S * * * * *`, S = i mod 60, so about 167 fire every second):
#      how late each tick's run was created after its nominal instant (p50, p99, max, from
#      the store: created_at - event.scheduled_at), and the server's RSS.
#
# Usage: scripts/bench-schedules.sh [SECONDS]   (default 70: the 10,000 fire at least once)
#        FLOW=path/to/flow scripts/bench-schedules.sh
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-70}"
work="$(pwd)/target/bench-schedules"
rm -rf "$work" && mkdir -p "$work"
echo "building flow (release)..." >&2
cargo build --release --quiet --bin flow
flow="${FLOW:-$(pwd)/target/release/flow}"

serve() { # log, args...
  local log="$1"; shift
  "$flow" serve "$@" --listen 127.0.0.1:0 > /dev/null 2> "$log" &
  local pid=$!
  for _ in $(seq 1 1200); do
    if grep -q "listening on" "$log"; then break; fi
    sleep 0.1
  done
  echo "$pid"
}

cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/"$1"/status; }

pid=$(serve "$work/idle.log" examples --store "$work/idle.db")
sleep 2
before=$(cpu_ticks "$pid")
sleep 30
after=$(cpu_ticks "$pid")
echo "idle: RSS $(rss "$pid"), CPU $(( (after - before) * 10 )) ms over 30 s"
kill "$pid"; wait "$pid" 2>/dev/null || true

python3 - "$work/many.flow" "$work/plain.flow" <<'PY'
import sys
with open(sys.argv[1], "w") as scheduled, open(sys.argv[2], "w") as plain:
    for i in range(10000):
        scheduled.write(f'workflow w{i} -> int {{\n  on schedule("{i % 60} * * * * *")\n  return {i}\n}}\n\n')
        plain.write(f'workflow w{i} -> int {{\n  return {i}\n}}\n\n')
PY
# The control: the same 10,000 workflows without a schedule. The difference in RSS at
# start is what the scheduler holds for 10,000 schedules (its heap, the cron grids, the
# schedule rows).
pid=$(serve "$work/plain.log" "$work/plain.flow" --store "$work/plain.db")
sleep 2
plain_kb=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
echo "10,000 workflows without schedules: RSS ${plain_kb} kB"
kill "$pid"; wait "$pid" 2>/dev/null || true
start=$(date +%s%3N)
pid=$(serve "$work/many.log" "$work/many.flow" --store "$work/many.db")
ready=$(date +%s%3N)
sleep 2
many_kb=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
echo "10,000 schedules: checked, deployed and serving after $((ready - start)) ms; RSS ${many_kb} kB"
echo "10,000 schedules: the scheduler's share (RSS minus the control's) $(( (many_kb - plain_kb) / 1024 )) MiB"
sleep "$seconds"
echo "10,000 schedules: RSS $(rss "$pid") after ${seconds} s"
kill "$pid"; wait "$pid" 2>/dev/null || true
python3 - "$work/many.db" <<'PY'
import sqlite3, sys, json, datetime
db = sqlite3.connect(sys.argv[1])
late = []
for created, event in db.execute("SELECT created_at, event FROM runs WHERE trigger = 'schedule'"):
    at = datetime.datetime.fromisoformat(json.loads(event)["scheduled_at"].replace("Z", "+00:00"))
    late.append(created - int(at.timestamp() * 1000))
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))]
print(f"10,000 schedules: {len(late)} ticks fired; lateness p50 {q(0.5)} ms, p99 {q(0.99)} ms, max {late[-1]} ms")
dupes = db.execute("SELECT count(*) - count(DISTINCT event || workflow) FROM runs WHERE trigger = 'schedule'").fetchone()[0]
print(f"10,000 schedules: {dupes} ticks fired twice")
PY
