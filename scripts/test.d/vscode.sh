#!/usr/bin/env bash
# The VS Code extension: npm dependencies from its lock file, TextMate grammar tests,
# packaging into a .vsix. Needs node and npm (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v npm >/dev/null 2>&1; then
  echo "installing node and npm (Debian packages)"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
editors/vscode/test.sh
