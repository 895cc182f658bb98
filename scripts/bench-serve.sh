#!/usr/bin/env bash
# Webhook benchmark of `flow serve`: signed deliveries (an integration event verified
# with HMAC-SHA256, each with its own `webhook-id`) accepted durably (the run is committed
# before the 2xx), driven by wrk over HTTP/1.1 keep-alive connections. Measures, in one
# run, the server and the floor (server/examples/webhook_floor.rs: a bare axum handler
# that verifies the same signature and commits the same row):
#   1. the most deliveries per second each accepts (wrk, 64 connections, DURATION);
#   2. latency at a paced rate of about 2,000 per second (20 connections, one request
#      per connection every 10 ms), p50/p90/p99.
# Then the store's write-ahead log size and the server's RSS.
#
# Usage: scripts/bench-serve.sh [DURATION]     (default 10s; needs wrk: apt-get install wrk)
#        FLOW=path/to/flow scripts/bench-serve.sh
set -euo pipefail

cd "$(dirname "$0")/.."
duration="${1:-10s}"
work="$(pwd)/target/bench-serve"
rm -rf "$work" && mkdir -p "$work"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

echo "building flow and the floor (release)..." >&2
cargo build --release --quiet --bin flow
cargo build --release --quiet -p flow-server --example webhook_floor
flow="${FLOW:-$(pwd)/target/release/flow}"
floor="$(pwd)/target/release/examples/webhook_floor"

# shellcheck source=scripts/lib/acme-webhook.sh
source scripts/lib/acme-webhook.sh
acme_setup "$work" "$flow" bench
signature="$acme_signature"
body="$acme_body"

cat > "$work/deliver.lua" <<EOF
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
local pace = tonumber(os.getenv("PACE_MS") or "0")
function request()
  n = n + 1
  return wrk.format("POST", nil, {
    ["content-type"] = "application/json",
    ["x-acme-signature"] = "$signature",
    ["webhook-id"] = os.getenv("RUN") .. "-" .. tid .. "-" .. n,
  }, '$body')
end
function delay()
  return pace
end
local statuses = {}
function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  io.write(string.format("  requests/s %.0f  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  errors %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF

start_and_wait() { # command... ; prints the base URL
  local log="$1"; shift
  "$@" 2> "$log" &
  local pid=$!
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$log"; then break; fi
    sleep 0.1
  done
  echo "$pid $(grep -o 'http://[0-9.:]*' "$log" | tail -1)"
}

measure() { # name pid base
  local name="$1" pid="$2" base="$3"
  echo "$name: most deliveries per second (64 connections, $duration)"
  RUN="$name-max" PACE_MS=0 wrk -t2 -c64 -d"$duration" -s "$work/deliver.lua" "$base/hooks/acme/events" | grep 'requests/s'
  echo "$name: paced at about 2,000 per second (20 connections, 10 ms apart)"
  RUN="$name-paced" PACE_MS=10 wrk -t2 -c20 -d"$duration" -s "$work/deliver.lua" "$base/hooks/acme/events" | grep 'requests/s'
  echo "$name: RSS $(awk '/VmRSS/ {print $2 " kB"}' /proc/"$pid"/status)"
}

read -r spid sbase < <(cd "$work" && start_and_wait "$work/serve.log" "$flow" serve app.flow --listen 127.0.0.1:0 --store flow.db --as bench --rate-limit 10000000)
trap 'kill $spid 2>/dev/null || true; kill ${fpid:-0} 2>/dev/null || true' EXIT
measure "flow serve" "$spid" "$sbase"
echo "flow serve: write-ahead log $(stat -c %s "$work/flow.db-wal" 2>/dev/null || echo 0) bytes, database $(stat -c %s "$work/flow.db") bytes"
kill "$spid"; wait "$spid" 2>/dev/null || true

read -r fpid fbase < <(start_and_wait "$work/floor.log" "$floor" "$work/floor.db" "$acme_secret")
measure "floor" "$fpid" "$fbase"
