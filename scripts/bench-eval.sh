#!/usr/bin/env bash
# End-to-end benchmark: `flow eval` against jq and jaq on the same 1,000,000-record JSON
# file (sum, average, filter-and-count, group-by). Installs jq (apt) and jaq (cargo)
# when missing, builds flow in release mode, prints each time (best of 3) and the
# ratios. Usage: scripts/bench-eval.sh [RECORDS]   (default 1000000)
set -euo pipefail

cd "$(dirname "$0")/.."
records="${1:-1000000}"
data="target/bench-eval/records-${records}.json"
mkdir -p target/bench-eval

if ! command -v jq >/dev/null; then
    echo "installing jq (apt)..." >&2
    apt-get install -y -qq jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
fi
if ! command -v jaq >/dev/null; then
    echo "installing jaq (cargo install jaq)..." >&2
    cargo install --quiet jaq
fi
echo "building flow (release)..." >&2
cargo build --release --quiet --bin flow
flow=target/release/flow

if [ ! -s "$data" ]; then
    echo "writing $records records to $data..." >&2
    python3 - "$records" "$data" <<'PY'
import json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
countries = ["RU", "DE", "FR", "US", "JP"]
with open(path, "w") as f:
    f.write("[")
    for i in range(n):
        if i:
            f.write(",")
        f.write(json.dumps({
            "id": i,
            "name": "user%d" % i,
            "country": countries[i % 5],
            "value": round(random.uniform(0, 1000), 2),
            "adults": random.randint(1, 4),
            "tags": ["a", "b"] if i % 3 else ["c"],
        }, separators=(",", ":")))
    f.write("]")
PY
fi
echo "input: $data ($(du -h "$data" | cut -f1))"

best_of_3() {
    local best=""
    for _ in 1 2 3; do
        local start end t
        start=$(date +%s.%N)
        "$@" >/dev/null
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    printf '%.3f' "$best"
}

names=("sum" "average" "filter-and-count" "group-by")
flow_exprs=(
    'input.map(r, r.value).sum()'
    'input.map(r, r.value).avg()'
    'input.count(r, r.country == "RU" && r.adults > 1)'
    'input.group_by(r, r.country).transformMap(k, v, size(v))'
)
jq_exprs=(
    'map(.value) | add'
    'map(.value) | add / length'
    'map(select(.country == "RU" and .adults > 1)) | length'
    'group_by(.country) | map({key: .[0].country, value: length}) | from_entries'
)

printf '\n%-18s %10s %10s %10s %12s %12s\n' "task" "flow (s)" "jq (s)" "jaq (s)" "jq/flow" "jaq/flow"
for i in "${!names[@]}"; do
    f=$(best_of_3 "$flow" eval -c "${flow_exprs[$i]}" --input "$data")
    q=$(best_of_3 jq -c "${jq_exprs[$i]}" "$data")
    a=$(best_of_3 jaq -c "${jq_exprs[$i]}" "$data")
    printf '%-18s %10s %10s %10s %11.1fx %11.1fx\n' "${names[$i]}" "$f" "$q" "$a" \
        "$(echo "$q / $f" | bc -l)" "$(echo "$a / $f" | bc -l)"
done
