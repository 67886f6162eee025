#!/usr/bin/env bash
# Makes sure a headless Chromium is installed for the web page's browser tests: uses one that is there
# (CHROMIUM_PATH, Debian's chromium), else installs Debian's package where apt-get is allowed, else says so.
# Never fails the run: without a browser the browser tests skip with a message.
set -uo pipefail

have() {
  for p in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$p" ] && [ -x "$p" ]; then return 0; fi
  done
  return 1
}

if have; then exit 0; fi

if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || sudo -n true 2>/dev/null; }; then
  as_root=""
  [ "$(id -u)" = "0" ] || as_root="sudo -n"
  echo "chromium not found; installing Debian's chromium with apt-get" >&2
  $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium >/dev/null
fi

if have; then exit 0; fi
echo "No Chromium found and it could not be installed: the web browser tests will be skipped." >&2
echo "Install it with 'sudo apt-get install chromium' or set CHROMIUM_PATH." >&2
exit 0
