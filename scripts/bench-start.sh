#!/usr/bin/env bash
# Start-up benchmark: `flow run ten.flowc` of a 10-step sequential `http` workflow as a
# whole process, against a local HTTP server on 127.0.0.1 (runtime/examples/http_ok.rs),
# on one store that every run adds to. Prints the wall time per process (min, p50, mean,
# p90 over RUNS runs; hyperfine's figures too when it is installed), `flow --version` as
# the floor of starting the binary at all, and the median of each phase as
# `FLOW_TIMINGS=1 flow run` reports it.
#
# Usage: scripts/bench-start.sh [RUNS] [full|process]   (defaults: 200, full)
# Needs bash 5 (EPOCHREALTIME) and python3; hyperfine is optional (apt-get install hyperfine).
#        FLOW=path/to/flow scripts/bench-start.sh       (measure another build)
set -euo pipefail

cd "$(dirname "$0")/.."
runs="${1:-200}"
durability="${2:-full}"
work="target/bench-start"
rm -rf "$work" && mkdir -p "$work"

echo "building flow and the local server (release)..." >&2
cargo build --release --quiet --bin flow
cargo build --release --quiet -p flow-runtime --example http_ok
flow="${FLOW:-target/release/flow}"

# The server stops when this script's end closes its stdin (or after 10 minutes).
coproc SERVER { exec target/release/examples/http_ok 600; }
read -r base <&"${SERVER[0]}"
echo "server: $base" >&2

{
  echo 'workflow ten(base: string) -> int {'
  echo '  step s0 = http.get(url: "${base}/step0")'
  for i in 1 2 3 4 5 6 7 8 9; do
    echo "  step s$i = http.get(url: \"\${base}/step$i\") after s$((i - 1))"
  done
  echo '  return s9.status'
  echo '}'
} > "$work/ten.flow"
"$flow" compile "$work/ten.flow" -o "$work/ten.flowc" >/dev/null
input="{\"base\": \"$base\"}"
run() { "$flow" run "$work/ten.flowc" --input "$input" --store "$work/flow.db" --quiet --durability "$durability"; }

# Warm up: the page cache, the store file, the server's connections.
for _ in $(seq 20); do run >/dev/null; done

stats() { # reads microseconds, one a line; prints min p50 mean p90 in ms
  sort -n | awk '{ v[NR] = $1; s += $1 } END {
    printf "min %.2f ms  p50 %.2f ms  mean %.2f ms  p90 %.2f ms  (n=%d)\n",
      v[1] / 1e3, v[int((NR + 1) / 2)] / 1e3, s / NR / 1e3, v[int(NR * 0.9)] / 1e3, NR }'
}
# bash's clock, read without starting a process (`date` would add a fork per reading).
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "${t#0}"; }

: > "$work/times"
for _ in $(seq "$runs"); do
  t0=$(now_us); run >/dev/null; t1=$(now_us)
  echo $((t1 - t0)) >> "$work/times"
done
printf 'flow run (%s): ' "$durability"; stats < "$work/times"

: > "$work/version"
for _ in $(seq "$runs"); do
  t0=$(now_us); "$flow" --version >/dev/null; t1=$(now_us)
  echo $((t1 - t0)) >> "$work/version"
done
printf 'flow --version: '; stats < "$work/version"

# Phases, in microseconds (median over the runs), in the order they happen.
: > "$work/phases"
for _ in $(seq "$runs"); do
  FLOW_TIMINGS=1 run 2>&1 >/dev/null | sed -n 's/^timings: //p' >> "$work/phases"
done
echo "phases (median, us):"
python3 - "$work/phases" <<'PY'
import statistics, sys
order, values = [], {}
for line in open(sys.argv[1]):
    for part in line.split():
        name, us = part.split("=")
        if name not in values:
            order.append(name)
            values[name] = []
        values[name].append(int(us.removesuffix("us")))
total = 0
for name in order:
    m = statistics.median(values[name])
    total += m
    print(f"  {name:<11}{m:>8.0f}")
print(f"  {'sum':<11}{total:>8.0f}")
PY

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 10 --runs "$runs" \
    "$flow run $work/ten.flowc --input '$input' --store $work/flow.db --quiet --durability $durability"
fi
