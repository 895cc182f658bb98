#!/usr/bin/env bash
# Dashboard benchmark of `flow serve` (the pages at /ui/) on a store of RUNS finished runs
# (four workflows over 30 days, ~3% failed, NULL/webhook/schedule triggers, a journal for
# one run in 1,000 and the newest 1,000; written straight into a store `flow` created and
# deployed, see scripts/bench-dashboard/generate.py). Signs in with an admin key, then
# (scripts/bench-dashboard/measure.py):
#   1. each page's first load: its HTML plus every stylesheet, script and image it names,
#      in bytes and as sent when the client offers compression (goal: under 300 KB);
#   2. each page's HTML latency with the session cookie, REQUESTS requests one after
#      another (oha -n REQUESTS -c 1), p50/p95/p99 (goal: p95 under 100 ms);
#   3. live updates: LIVE runs that wait for a signal, each followed on its page's event
#      stream (/ui/runs/{id}/events); the time from the signal, and from the step's journal
#      time, to its `step_succeeded` on the stream (goal: within 250 ms).
# Also prints how long the store took to generate, the server's start on it and its RSS.
#
# Usage: scripts/bench-dashboard.sh [RUNS] [REQUESTS] [LIVE]   (defaults 1000000, 200, 50)
#        FLOW=path/to/flow scripts/bench-dashboard.sh    (that build; nothing is built)
#        OHA=path/to/oha scripts/bench-dashboard.sh      (that oha)
#        BENCH_DRIVER=python scripts/bench-dashboard.sh  (time the pages without oha)
# Needs oha (installed with `cargo install oha` when missing) and python3 (standard library).
set -euo pipefail

cd "$(dirname "$0")/.."
count="${1:-1000000}"
requests="${2:-200}"
live="${3:-50}"
driver="${BENCH_DRIVER:-oha}"
here="$(pwd)/scripts/bench-dashboard"
work="$(pwd)/target/bench-dashboard"
rm -rf "$work" && mkdir -p "$work/app"

if [ -z "${FLOW:-}" ]; then
    echo "building flow (release)..." >&2
    cargo build --release --quiet --bin flow
fi
flow="$(realpath "${FLOW:-target/release/flow}")"
oha="${OHA:-}"
case "$oha" in */*) oha="$(realpath "$oha")" ;; esac
if [ "$driver" = oha ] && [ -z "$oha" ]; then
    if command -v oha >/dev/null; then
        oha=oha
    elif [ -x "$HOME/.cargo/bin/oha" ]; then
        oha="$HOME/.cargo/bin/oha"
    else
        echo "installing oha (cargo install oha)..." >&2
        cargo install --quiet oha
        oha="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
    fi
fi

# The connections page shows `acme`'s connection (its vault needs a key; this one is fixed).
export FLOW_VAULT_KEY=0000000000000000000000000000000000000000000000000000000000000000
cp "$here/dashboard.flow" "$work/app/"
cd "$work"
key=$("$flow" keys create --name bench --scope admin --store flow.db 2>/dev/null)
printf 'bench-token\n' | "$flow" connect acme --owner bench --secret token --store flow.db >/dev/null 2>&1

pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi' EXIT
serve() { # log; sets pid and base
    "$flow" serve app --store flow.db --as bench --listen 127.0.0.1:0 --rate-limit 10000000 > /dev/null 2> "$1" &
    pid=$!
    for _ in $(seq 1 3000); do
        if grep -q "listening on" "$1"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$1" >&2; exit 1; fi
        sleep 0.01
    done
    base=$(grep -o 'http://[0-9.:]*' "$1" | tail -1)
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

# Once on the empty store: the deployment stores the program (the generated runs name its
# hash) and a few real runs, started by a webhook and the API, join the generated ones.
serve serve-first.log
for i in 1 2 3; do
    curl -sSf -o /dev/null -X POST -H 'content-type: application/json' -d "{\"invoice\": \"INV-$i\"}" "$base/hooks/invoices"
done
curl -sSf -o /dev/null -X POST -H "authorization: Bearer $key" "$base/api/v1/workflows/orders/runs?wait=10s"
stop

echo "generating $count runs..." >&2
python3 "$here/generate.py" flow.db "$count" > generated.json
echo "store: $(stat -c %s flow.db) bytes"

t0=$(date +%s%3N)
serve serve.log
t1=$(date +%s%3N)
echo "flow serve on that store: ready after $((t1 - t0)) ms, RSS $(awk '/VmRSS/ {print $2 " kB"}' /proc/"$pid"/status)"

python3 "$here/measure.py" --base "$base" --key "$key" --store flow.db --generated generated.json \
    --out "$work" --requests "$requests" --live "$live" --driver "$driver" --oha "${oha:-oha}"
echo
echo "flow serve after the measurements: RSS $(awk '/VmRSS/ {print $2 " kB"}' /proc/"$pid"/status)"
stop

echo
echo "## Summary ($(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $("$flow" --version))"
echo
cat summary.md
echo
echo "Command: \`scripts/bench-dashboard.sh $count $requests $live\`${FLOW:+ (FLOW=$FLOW)}${BENCH_DRIVER:+ (BENCH_DRIVER=$BENCH_DRIVER)}"
echo "Every figure: $work/results.json"
