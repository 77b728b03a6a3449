#!/usr/bin/env bash
# Regenerate the hashed locks from pyproject.toml (README "Dependencies"):
#   requirements/runtime.txt   the service (Dockerfile)
#   requirements/dev.txt       the service, its tests and tools (scripts/bootstrap.sh: .venv, CI)
#   requirements/bench.txt     dev.txt plus the benchmark extras (bench/run.sh)
# Each pins the whole tree with every wheel's and sdist's sha256, for Python 3.12 and newer on any
# platform (one universal resolution), less requirements/lean-excludes.txt. uv is pinned and lives in a
# throw-away venv under .tools/, never in .venv. Arguments go to uv (e.g. --upgrade, --upgrade-package X).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION=0.13.9
TOOL="$ROOT/.tools/lock-venv"
if [ ! -x "$TOOL/bin/uv" ] || [ "$("$TOOL/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  PYTHON="${PYTHON:-$(command -v python3)}"
  rm -rf "$TOOL"
  "$PYTHON" -m venv "$TOOL"
  "$TOOL/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
compile() {  # output, extras...
  local out="$1"; shift
  local extras=()
  for extra in "$@"; do extras+=(--extra "$extra"); done
  UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$TOOL/bin/uv" pip compile --quiet \
    pyproject.toml requirements/build.in "${extras[@]}" \
    --excludes requirements/lean-excludes.txt \
    --universal --python-version 3.12 --generate-hashes --no-strip-extras \
    --output-file "$out" "${LOCK_ARGS[@]}"
}
LOCK_ARGS=("$@")
compile requirements/runtime.txt
compile requirements/dev.txt dev
compile requirements/bench.txt dev bench
echo "lock: $(grep -c '^[a-z0-9]' requirements/runtime.txt) runtime, $(grep -c '^[a-z0-9]' requirements/dev.txt) dev," \
     "$(grep -c '^[a-z0-9]' requirements/bench.txt) bench packages pinned"
