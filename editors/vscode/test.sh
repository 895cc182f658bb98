#!/usr/bin/env bash
# Tests the VS Code extension: installs its npm dependencies exactly as locked, runs the
# TextMate grammar tests over tests/grammar/, checks the client's syntax and packages the
# extension into flow.vsix (which must succeed).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
npm test
npm run package
test -s flow.vsix
echo "editors/vscode: grammar tests passed, flow.vsix packaged"
