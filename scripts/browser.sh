#!/usr/bin/env bash
# Install what the browser tests (tests/web) need: Debian's chromium and its chromedriver. Idempotent
# and quiet: nothing happens when both are on PATH. Where they cannot be installed (no apt-get, not
# root and no password-less sudo, apt fails) it says why, writes the reason to
# tests/results/browser-setup.txt and exits 0: the browser tests then skip with that reason.
# CRYPTO_SKIP_BROWSER_INSTALL=1 skips the install.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MARKER="$ROOT/tests/results/browser-setup.txt"
PACKAGES=(chromium chromium-driver)
mkdir -p "$ROOT/tests/results"

installed() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
cannot() { echo "browser: $*; the browser tests (tests/web) will skip" >&2; echo "$*" >"$MARKER"; exit 0; }

if installed; then rm -f "$MARKER"; exit 0; fi
[ "${CRYPTO_SKIP_BROWSER_INSTALL:-}" = "1" ] && cannot "not installed: CRYPTO_SKIP_BROWSER_INSTALL=1"
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get here: install chromium and chromedriver by hand"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
  else cannot "not root and no password-less sudo: run 'apt-get install -y ${PACKAGES[*]}' as root"; fi
fi

echo "browser: installing ${PACKAGES[*]} with apt-get (once)"
LOG="$(mktemp)"
export DEBIAN_FRONTEND=noninteractive
apt_install() { "${SUDO[@]}" apt-get install -y -q "${PACKAGES[@]}" >>"$LOG" 2>&1; }
# A fresh machine may have no package lists yet (or stale ones): update once and try again.
apt_install || { "${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1; apt_install; }
if installed; then
  rm -f "$MARKER" "$LOG"
  echo "browser: $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2) ready"
else
  reason="apt-get install ${PACKAGES[*]} failed: $(tail -n 3 "$LOG" | tr '\n' ' ')"
  rm -f "$LOG"
  cannot "$reason"
fi
