#!/usr/bin/env bash
# Set up with the test extra, install the browser for the end-to-end test, and run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped (with CI=true it fails)" >&2
fi
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
