#!/usr/bin/env bash
# The dashboard in a real browser: Debian's Chromium and chromedriver (installed when
# missing) driven over WebDriver by selenium (from PyPI, into target/selenium-venv, kept
# between runs) against a real `flow serve` with a real store. tests/browser/dashboard.py
# holds the checks and prints one line per check; one browser serves them all. The
# screenshots of every page go to target/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
version=4.51.0
venv=target/selenium-venv
if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$version"
fi
source scripts/flow-bin.sh
rm -rf target/screenshots
export FLOW="$FLOW_BIN_DIR/flow" SCREENSHOTS="$PWD/target/screenshots"
export CHROMIUM="$(command -v chromium)" CHROMEDRIVER="$(command -v chromedriver)"
# Selenium must not look for drivers on the network: the paths are given.
export SE_OFFLINE=true
timeout 900 "$venv/bin/python" tests/browser/dashboard.py
echo "dashboard: $(ls target/screenshots | wc -l) screenshots in target/screenshots/"
