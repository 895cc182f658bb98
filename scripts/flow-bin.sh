# Sourced by the test scripts: sets FLOW_BIN_DIR to a directory holding debug builds of
# `flow` and `cel-conformance`. scripts/test.sh sets it to the binaries `cargo test`
# built (a plain `cargo build` would compile the workspace a second time, with the
# features the tests' dependencies do not add); a script run alone builds them here.
if [[ -z "${FLOW_BIN_DIR:-}" ]]; then
  cargo build --quiet --bins
  FLOW_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug"
fi
export FLOW_BIN_DIR
