#!/usr/bin/env bash
# The run API against its own OpenAPI document with a schema-driven fuzzer written by
# others: schemathesis (from PyPI, into target/schemathesis-venv, kept between runs)
# generates requests for the operations of `server/openapi.json` (examples, boundary
# values, random data, and chains of calls that follow one answer's ids into the next
# request) and sends them, with an admin key, to a real `flow serve` of the examples on
# 127.0.0.1. It fails on any 5xx, on a status, content type, header or body the document
# does not give for the operation, and on an operation that answers a request without
# a key or with a wrong one. Webhook deliveries are fuzzed on random paths: unsigned,
# they can only reach the refusals and the unmatched (tests/serve.rs sends signed ones).
#
# Left out: the rollback operation, because each call deploys a version again under the
# other operations' feet (tests/serve_api.rs covers it, malformed versions included).
#
# FLOW_FUZZ_EXAMPLES (default 100 for each operation) and FLOW_FUZZ_SEED (default 1)
# explore further; with the defaults the run takes about 40 s on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

version=4.32.5
venv=target/schemathesis-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$version"; then
  # Like the emulators (scripts/services/), a tool that cannot be installed is said and
  # skipped rather than failing the suite; tests/openapi.rs still holds the document to
  # the routes.
  rm -rf "$venv"
  if ! { python3 -m venv "$venv" &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"; }; then
    echo "openapi: cannot install schemathesis from PyPI; the API fuzzing is skipped"
    rm -rf "$venv"
    exit 0
  fi
fi
st="$root/$venv/bin/st"

source scripts/flow-bin.sh
flow="$FLOW_BIN_DIR/flow"

# The server runs in the scratch directory, so what the examples' runs write (the sales
# report's dashboard under target/) stays there; the examples are linked in, so their
# relative paths (examples/data/sales.json) resolve and some runs complete.
scratch=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
ln -s "$root/examples" "$scratch/examples"
mkdir "$scratch/target"
cd "$scratch"

key=$("$flow" keys create --name fuzz --scope admin --store flow.db 2>/dev/null)
# A rate limit far above what the fuzzer sends: a 429 would be documented, but a test
# that meets one tests nothing else.
"$flow" serve examples --listen 127.0.0.1:0 --store flow.db --rate-limit 100000 \
  > serve.out 2> serve.log &
server_pid=$!
base=
for _ in $(seq 1 600); do
  base=$(grep -o 'listening on http://[0-9.:]*' serve.log | grep -o 'http://.*' || true)
  [[ -n "$base" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$base" ]]; then
  echo "openapi: the server did not start" >&2
  cat serve.log >&2
  exit 1
fi

# Schemathesis keeps a cache (.schemathesis/) where it runs: here, the scratch directory.
# Its request timeout is above the server's own (60 s), so a `?wait=` held that long is
# answered by the server, not cut by the client.
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,response_schema_conformance
checks+=,missing_required_header,ignored_auth
status=0
"$st" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks "$checks" \
  --exclude-operation-id rollback \
  --max-examples "${FLOW_FUZZ_EXAMPLES:-100}" \
  --seed "${FLOW_FUZZ_SEED:-1}" \
  --request-timeout 70 \
  --no-color || status=$?

# A panic in a handler drops its connection, which the fuzzer may see only as a network
# error; the server's log says what it was.
if grep -q 'panicked' serve.log; then
  echo "openapi: the server panicked:" >&2
  grep -A5 'panicked' serve.log >&2
  status=1
fi
exit "$status"
