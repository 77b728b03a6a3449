#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Each run keeps a JSON summary and the
# full log under tests/results/<timestamp>/. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
bash scripts/browser.sh  # chromium and chromedriver for tests/web (apt); where impossible they skip, saying why
RUN="$ROOT/tests/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN"
set +e
"$ROOT/.venv/bin/python" -m pytest -W ignore --junitxml="$RUN/junit.xml" "$@" 2>&1 | tee "$RUN/pytest.log"
STATUS=${PIPESTATUS[0]}
set -e
"$ROOT/.venv/bin/python" "$ROOT/tests/summarize.py" "$RUN/junit.xml" "$RUN/summary.json" || true
echo "results: $RUN"
exit "$STATUS"
