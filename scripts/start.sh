#!/usr/bin/env bash
# Set up, ingest the shipped corpus if the knowledge base is empty, and start the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kb app "$@"
