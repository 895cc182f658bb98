#!/usr/bin/env bash
# The runtime end to end from the command line: the README's main job (the sales report
# over a JSON file, no account, no server) and the `test` blocks of the examples and of
# the runtime's fixtures, each on a scratch store.
set -euo pipefail
cd "$(dirname "$0")/../.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

source scripts/flow-bin.sh
flow="$FLOW_BIN_DIR/flow"

$flow run examples/sales_report.flow --quiet --store "$scratch/flow.db" \
  --input "{\"output\": \"$scratch/sales_dashboard.json\"}" > "$scratch/out.txt"
grep -q '^\[sales\] ' "$scratch/out.txt"
test -s "$scratch/sales_dashboard.json"
$flow runs list --store "$scratch/flow.db"

$flow test examples runtime/tests/inputs
