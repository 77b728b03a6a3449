#!/usr/bin/env bash
# Create .venv with Python 3.12+ and install exactly requirements/dev.txt (the hashed lock: the service,
# its tests and tools), then the project itself, editable. Idempotent: it stamps the lock's and
# pyproject.toml's hashes; a changed lock rebuilds .venv from scratch (so nothing the lock dropped stays
# behind), a changed pyproject.toml alone reinstalls the project. Finds python3.13/3.12 on PATH or under
# pyenv's versions folder. README "Dependencies" says how the lock is made.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements/dev.txt"

is_supported() {
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && is_supported "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3 \
                   "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3 \
                   /usr/local/bin/python3.1[23] /usr/bin/python3.1[23]; do
    if [ -x "$candidate" ] && is_supported "$candidate"; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

LOCK_STAMP="$VENV/.lock-$(sha256sum "$LOCK" | cut -c1-16)"
PROJECT_STAMP="$VENV/.project-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ] || ! is_supported "$VENV/bin/python" || [ ! -f "$LOCK_STAMP" ]; then
  if ! PYTHON="$(find_python)"; then
    echo "bootstrap: no Python 3.12 or 3.13 found (PATH or pyenv versions); install one and retry." >&2
    exit 1
  fi
  echo "bootstrap: creating .venv with $PYTHON from requirements/dev.txt"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # Every package with its hash, none of their own requirements: the lock is the whole tree.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$LOCK"
  touch "$LOCK_STAMP"
fi

if [ ! -f "$PROJECT_STAMP" ]; then
  echo "bootstrap: installing the project into .venv"
  # The build backend (setuptools) comes from the lock, so nothing unhashed is fetched here.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  rm -f "$VENV"/.project-* "$VENV"/.installed-*
  touch "$PROJECT_STAMP"
fi
