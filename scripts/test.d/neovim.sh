#!/usr/bin/env bash
# A real editor: Neovim (Debian's package, installed when missing) runs headless, its
# built-in LSP client drives `flow lsp` through a line being typed (open, edit, wait for
# diagnostics, hover, definition, completion, rename). editors/neovim/half_typed_test.lua
# holds the steps and prints one line per check.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v nvim >/dev/null 2>&1; then
  echo "installing neovim (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null
fi
source scripts/flow-bin.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLOW="$FLOW_BIN_DIR/flow" WORK="$work"
# Neovim 0.7 has no `-l`; `luafile` sources the test, which quits with its own status.
timeout 120 nvim --headless --clean -u NONE -c "luafile editors/neovim/half_typed_test.lua" 2>&1 | tee "$work/out.txt"
if grep -q '^FAIL' "$work/out.txt" || ! grep -q '^ok finishing the line clears the error' "$work/out.txt"; then
  echo "neovim: a check failed" >&2
  exit 1
fi
echo "neovim: $(grep -c '^ok ' "$work/out.txt") checks passed"
