#!/usr/bin/env bash
# Installs what the real-browser test of the pages needs (crates/api/tests/api/
# browser.rs): Debian's Chromium, and axe-core from tools/browser-test's
# package-lock (npm ci). Does nothing that is already done; the test itself
# downloads nothing. With OFFNDAT_SKIP_BROWSER=1 it installs nothing (the test
# then skips itself, loudly).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${OFFNDAT_SKIP_BROWSER:-}" == "1" ]]; then
  echo "browser-setup: OFFNDAT_SKIP_BROWSER=1, not installing Chromium or axe-core (the browser test will be SKIPPED)"
  exit 0
fi

chromium="${OFFNDAT_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "browser-setup: installing Debian's chromium"
  sudo_cmd=()
  if [[ "$(id -u)" != "0" ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
fi

lock=tools/browser-test/package-lock.json
installed=tools/browser-test/node_modules/.package-lock.json
if [[ ! -f tools/browser-test/node_modules/axe-core/axe.min.js || "$lock" -nt "$installed" ]]; then
  echo "browser-setup: npm ci in tools/browser-test"
  npm ci --prefix tools/browser-test --no-audit --no-fund --loglevel=error
fi
