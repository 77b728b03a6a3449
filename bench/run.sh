#!/usr/bin/env bash
# Set up (if needed) and run the benchmark harness; arguments go to bench/run.py
# (default: all scenarios). Results: bench/results/*.json and docs/latency.png.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev,bench]"
fi
exec .venv/bin/python bench/run.py "$@"
