#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, starts the
# emulators and local servers they talk to, runs every test and stops what it started.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    Rust tests only (no emulators, no editor packaging)
#
# Each stage prints a header; the script stops at the first failing stage and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
stage() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
started=$(date +%s)

# Emulators and servers the integration tests use; each script in scripts/services/
# starts one in the background, exports the variables tests read, and registers its
# own cleanup. Tests that need a service it could not start say so and skip.
export FLOW_TEST_SERVICES_DIR="${FLOW_TEST_SERVICES_DIR:-$PWD/target/test-services}"
mkdir -p "$FLOW_TEST_SERVICES_DIR"
cleanup() {
  # A service whose process may change (a server the tests restart) leaves a stop script.
  for stop in "$FLOW_TEST_SERVICES_DIR"/*.stop; do
    [[ -f "$stop" ]] && bash "$stop" >/dev/null 2>&1 || true
    rm -f "$stop"
  done
  for pidfile in "$FLOW_TEST_SERVICES_DIR"/*.pid; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}
trap cleanup EXIT
if [[ $quick -eq 0 ]]; then
  # The PostgreSQL store's tests fail, rather than skip, when its server did not start.
  export FLOW_TEST_REQUIRE_POSTGRES=1
  for service in scripts/services/*.sh; do
    [[ -f "$service" ]] || continue
    stage "starting $(basename "$service" .sh)"
    # shellcheck source=/dev/null
    source "$service"
  done
fi

stage "cargo test (workspace)"
cargo test --workspace --no-fail-fast

# The stages below use the binaries `cargo test` just built (the root package's
# integration tests need both), so the workspace is compiled once.
export FLOW_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug"

stage "CEL conformance (../shared/conformance/cel when present, else the vendored copy)"
"$FLOW_BIN_DIR/cel-conformance" --min-pass 95

stage "CEL conformance: the project's own cases (tests/conformance/flow-cel), every one must pass"
"$FLOW_BIN_DIR/cel-conformance" tests/conformance/flow-cel --min-pass 100

stage "flow check and flow fmt --check: examples and the standard library"
"$FLOW_BIN_DIR/flow" check examples stdlib/modules
"$FLOW_BIN_DIR/flow" fmt --check examples stdlib/modules

if [[ $quick -eq 0 ]]; then
  for extra in scripts/test.d/*.sh; do
    [[ -f "$extra" ]] || continue
    stage "$(basename "$extra" .sh)"
    bash "$extra"
  done
fi

printf '\nall stages passed in %ss\n' "$(( $(date +%s) - started ))"
