#!/usr/bin/env bash
# Set up (if needed) and run the benchmark harness; arguments go to bench/run.py
# (default: all scenarios). Results: bench/results/*.json and docs/latency.png.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  # The benchmark extras from their lock, hashed and without resolving (README "Dependencies").
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bench.txt
fi
exec .venv/bin/python bench/run.py "$@"
