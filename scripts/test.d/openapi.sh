#!/usr/bin/env bash
# The run API against its own OpenAPI document with a schema-driven fuzzer written by
# others: schemathesis (from PyPI, into target/schemathesis-venv) generates requests for
# every operation of `server/openapi.json` and sends them, with an admin key, to a real
# `flow serve` of the examples on 127.0.0.1. It fails on any 5xx and on any answer that
# does not match the document. The rollback operation is left out (it would replace the
# deployment the other operations are fuzzed against), and webhook deliveries are
# covered by tests/serve.rs instead (a fuzzer cannot sign them). Schemathesis warns that
# it mostly generates deployments the server refuses: random bytes are not artefacts.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/schemathesis-venv
if [[ ! -x "$venv/bin/st" ]]; then
  # Like the emulators (scripts/services/), a tool that cannot be installed is said and
  # skipped rather than failing the suite; tests/openapi.rs still holds the document to
  # the routes.
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "schemathesis==4.32.5"; }; then
    echo "openapi: cannot install schemathesis from PyPI; the API fuzzing is skipped"
    rm -rf "$venv"
    exit 0
  fi
fi

cargo build --quiet
flow="$PWD/target/debug/flow"
scratch=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

key=$("$flow" keys create --name fuzz --scope admin --store "$scratch/flow.db" 2>/dev/null)
"$flow" serve examples --listen 127.0.0.1:0 --store "$scratch/flow.db" --rate-limit 100000 \
  > "$scratch/out.log" 2> "$scratch/serve.log" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q "listening on" "$scratch/serve.log" && break
  sleep 0.1
done
base=$(grep -o 'http://[0-9.:]*' "$scratch/serve.log" | tail -1)
[[ -n "$base" ]] || { cat "$scratch/serve.log"; exit 1; }

# Run from the scratch directory: schemathesis keeps a cache (.schemathesis/) where it runs.
cd "$scratch"
"$OLDPWD/$venv/bin/st" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --exclude-operation-id rollback \
  --exclude-operation-id deliver \
  --max-examples 30 \
  --request-timeout 30 \
  --generation-deterministic \
  --no-color
