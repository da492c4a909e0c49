#!/usr/bin/env bash
# System packages the tests need that pip cannot install: Debian's Chromium, for the browser tests
# (tests/test_browser.py) and bench/bench_map.py. Installs only when missing, and only as root with apt-get;
# otherwise it says what is missing and the browser tests skip (or fail in CI, where GEO_REQUIRE_ALL=1).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing chromium from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "system-deps: /usr/bin/chromium is missing; as root run: apt-get install chromium" >&2
fi
