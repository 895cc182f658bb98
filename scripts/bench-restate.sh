#!/usr/bin/env bash
# Runs submitted over HTTP, Flow against Restate, side by side in one run: the ten-step
# sequential workflow (each step a GET to one fast local HTTP server,
# runtime/examples/http_ok.rs, each result journaled) submitted by wrk with 500
# connections, each request held until its run ends (`flow serve`'s run API with
# `?wait=60s`; Restate's request-response ingress call). Prints completed runs per second,
# p50 and p99 for both, and the ratios against the goals (Flow at least 3x Restate's runs/s,
# p50 at most a third of Restate's).
#
# Restate is installed from npm under target/bench-restate (@restatedev/restate-server,
# whose package carries the server binary, and @restatedev/restate-sdk for the service, on
# Node with Promise.withResolvers shimmed); both engines run with their default
# durability, on the same two cores, one after the other.
#
# Usage: scripts/bench-restate.sh [DURATION] [CONNECTIONS]   (defaults 30s, 500; needs
#        wrk, node and npm)
set -euo pipefail

cd "$(dirname "$0")/.."
duration="${1:-30s}"
connections="${2:-500}"
root="$(pwd)"
work="$root/target/bench-restate"
mkdir -p "$work"
for tool in wrk node npm; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "building flow and the upstream (release)..." >&2
  cargo build --release --quiet --bin flow
  cargo build --release --quiet -p flow-runtime --example http_ok
fi
flow="${FLOW:-$root/target/release/flow}"

restate_server_version=1.7.12
restate_sdk_version=1.17.2
if [ ! -x "$work/node_modules/.bin/restate-server" ] \
  || ! grep -q "\"version\": \"$restate_sdk_version\"" "$work/node_modules/@restatedev/restate-sdk/package.json" 2>/dev/null; then
  echo "installing Restate $restate_server_version and its SDK $restate_sdk_version from npm..." >&2
  (cd "$work" && echo '{"private": true}' > package.json \
    && npm install --no-audit --no-fund --silent \
      "@restatedev/restate-server@$restate_server_version" "@restatedev/restate-sdk@$restate_sdk_version")
fi
cp scripts/bench-restate/service.mjs "$work/service.mjs"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # what, command...
  local what="$1"; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$what did not come up" >&2
  exit 1
}

# The upstream: answers every GET 200 at once; stops when its stdin closes.
coproc UPSTREAM { exec target/release/examples/http_ok 3600; }
pids+=("$UPSTREAM_PID")
read -r upstream <&"${UPSTREAM[0]}"
echo "upstream: $upstream" >&2

# wrk's script: POST the body, with the headers given in the environment.
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
LUA

# Runs wrk against URL; prints "runs/s p50_ms p99_ms non2xx errors".
load() { # url body key duration
  local out
  out=$(BODY="$2" KEY="$3" wrk -t2 -c"$connections" -d"$4" --timeout 60s --latency -s "$work/post.lua" "$1")
  echo "$out" > "$work/last-wrk.txt"
  python3 - "$work/last-wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
print(f"{rate:.0f} {p50:.1f} {p99:.1f} {non2xx.group(1) if non2xx else 0} {'yes' if errors else 'none'}")
PY
}

# ---- Flow
rm -rf "$work"/flow.db*
{
  echo 'workflow ten(base: string) -> int {'
  echo '  step s0 = http.get(url: "${base}/step0")'
  for i in 1 2 3 4 5 6 7 8 9; do
    echo "  step s$i = http.get(url: \"\${base}/step$i\") after s$((i - 1))"
  done
  echo '  return s9.status'
  echo '}'
} > "$work/ten.flow"
key=$("$flow" keys create --name bench --scope runs:write --store "$work/flow.db" 2>/dev/null)
"$flow" serve "$work/ten.flow" --store "$work/flow.db" --listen 127.0.0.1:0 \
  --rate-limit 1000000 > /dev/null 2> "$work/flow.log" &
pids+=("$!")
wait_for "flow serve" grep -q "listening on" "$work/flow.log"
flow_url=$(sed -n 's/.*listening on //p' "$work/flow.log" | head -1)
body="{\"base\": \"$upstream\"}"
echo "warming up flow..." >&2
load "$flow_url/api/v1/workflows/ten/runs?wait=60s" "$body" "$key" 5s > /dev/null
echo "measuring flow for $duration..." >&2
read -r flow_rate flow_p50 flow_p99 flow_non2xx flow_errors < <(load "$flow_url/api/v1/workflows/ten/runs?wait=60s" "$body" "$key" "$duration")
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
completed=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from runs where status='completed'\").fetchone()[0])" "$work/flow.db")

# ---- Restate
rm -rf "$work/restate-data"
(cd "$work" && RESTATE_BASE_DIR="$work/restate-data" RESTATE_LOG_FILTER=warn \
  exec node_modules/.bin/restate-server --no-logo --node-name bench > "$work/restate.log" 2>&1) &
pids+=("$!")
wait_for "restate-server" curl -sf http://127.0.0.1:9070/health
(cd "$work" && UPSTREAM="$upstream" PORT=9080 exec node service.mjs > "$work/service.log" 2>&1) &
pids+=("$!")
wait_for "the Restate service" bash -c "exec 3<>/dev/tcp/127.0.0.1/9080"
curl -sf -X POST http://127.0.0.1:9070/deployments -H 'content-type: application/json' \
  -d '{"uri": "http://127.0.0.1:9080"}' > /dev/null
wait_for "the ingress" curl -sf -X POST http://127.0.0.1:8080/bench/run -H 'content-type: application/json' -d '{}'
echo "warming up restate..." >&2
load http://127.0.0.1:8080/bench/run '{}' "" 5s > /dev/null
echo "measuring restate for $duration..." >&2
read -r restate_rate restate_p50 restate_p99 restate_non2xx restate_errors < <(load http://127.0.0.1:8080/bench/run '{}' "" "$duration")

echo
printf '%-8s %10s %10s %10s %8s %14s\n' engine "runs/s" "p50 ms" "p99 ms" non-2xx "socket errors"
printf '%-8s %10s %10s %10s %8s %14s\n' flow "$flow_rate" "$flow_p50" "$flow_p99" "$flow_non2xx" "$flow_errors"
printf '%-8s %10s %10s %10s %8s %14s\n' restate "$restate_rate" "$restate_p50" "$restate_p99" "$restate_non2xx" "$restate_errors"
echo "flow's store: $completed runs completed (warm-up included)"
python3 - "$flow_rate" "$restate_rate" "$flow_p50" "$restate_p50" <<'PY'
import sys
fr, rr, fp, rp = map(float, sys.argv[1:])
ratio = fr / rr if rr else float("inf")
p = rp / fp if fp else float("inf")
print(f"runs/s: flow {ratio:.2f}x restate (goal: at least 3x) {'met' if ratio >= 3 else 'NOT met'}")
print(f"p50: restate's is {p:.2f}x flow's (goal: at least 3x) {'met' if p >= 3 else 'NOT met'}")
PY
