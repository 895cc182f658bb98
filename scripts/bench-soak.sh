#!/usr/bin/env bash
# Soak test of `flow serve`: signed webhook deliveries at a paced rate (about 2,000 a
# second: 20 connections, one request each every 10 ms) for MINUTES minutes, measured
# minute by minute: deliveries accepted per second, p99 latency, the store's write-ahead
# log and database sizes, and the server's RSS. The last minute's throughput should be
# within 10% of the first's and the log under 64 MiB throughout.
#
# Usage: scripts/bench-soak.sh [MINUTES]   (default 30; needs wrk)
set -euo pipefail

cd "$(dirname "$0")/.."
minutes="${1:-30}"
work="$(pwd)/target/bench-soak"
rm -rf "$work" && mkdir -p "$work"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet --bin flow
flow="${FLOW:-$(pwd)/target/release/flow}"

# shellcheck source=scripts/lib/acme-webhook.sh
source scripts/lib/acme-webhook.sh
acme_setup "$work" "$flow" soak
signature="$acme_signature"
body="$acme_body"

cat > "$work/deliver.lua" <<LUA
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", nil, { ["content-type"] = "application/json",
    ["x-acme-signature"] = "$signature", ["webhook-id"] = os.getenv("RUN") .. "-" .. tid .. "-" .. n }, '$body')
end
function delay() return 10 end
function done(summary, latency)
  io.write(string.format("%.0f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.timeout))
end
LUA
cd "$work"
"$flow" serve app.flow --listen 127.0.0.1:0 --store flow.db --as soak --rate-limit 10000000 > /dev/null 2> serve.log &
pid=$!
cd - > /dev/null
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q "listening on" "$work/serve.log" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | tail -1)
printf '%6s %10s %9s %7s %11s %12s %9s\n' minute "accepted/s" "p99 ms" errors "wal bytes" "db bytes" "rss kB"
for m in $(seq 1 "$minutes"); do
  read -r rate p99 errors < <(RUN="m$m" wrk -t2 -c20 -d60s -s "$work/deliver.lua" "$base/hooks/acme/events" | tail -1)
  printf '%6s %10s %9s %7s %11s %12s %9s\n' "$m" "$rate" "$p99" "$errors" \
    "$(stat -c %s "$work/flow.db-wal" 2>/dev/null || echo 0)" "$(stat -c %s "$work/flow.db")" \
    "$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)"
done
