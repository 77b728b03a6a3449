"""Shared helpers for the Kubernetes deployment tests (paths, helm, rendered objects)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "crypto-grpc"
CI_VALUES = CHART / "ci" / "ci-values.yaml"
MANIFESTS = ROOT / "deploy" / "k8s" / "manifests"
FETCH_SCRIPT = ROOT / "scripts" / "fetch_k8s_tools.sh"
RENDER_SCRIPT = ROOT / "scripts" / "render_manifests.sh"
TOOLS_BIN = ROOT / ".tools" / "bin"
RELEASE = "crypto-grpc"

# Kubernetes versions the rendered objects are validated against: the chart's
# minimum (kubeVersion >= 1.30) and the version of the fetched helm/kubectl.
K8S_VERSIONS = ("1.30.0", "1.35.0")

SECRET_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "CENTRIFUGO_API_KEY",
    "CRYPTO_OPERATOR_TOKENS",
)

# Value sets rendered by the tests: chart defaults, and defaults + ci-values.yaml.
VALUE_SETS: dict[str, tuple[Path, ...]] = {"default": (), "ci": (CI_VALUES,)}


@dataclass
class Helm:
    bin: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin), *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def template_cmd(self, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[str]:
        cmd = ["template", RELEASE, str(CHART)]
        for path in values:
            cmd += ["-f", str(path)]
        for item in sets:
            cmd += ["--set", item]
        return cmd

    def template(self, *args: str, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> str:
        return self.run(*self.template_cmd(values, sets), *args).stdout

    def render(self, *args: str, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        return load_docs(self.template(*args, values=values, sets=sets))

    def render_chart(self, chart: Path, release: str, *args: str) -> list[dict[str, Any]]:
        """Objects `helm template` renders for another chart (e.g. one using this chart as a subchart)."""
        return load_docs(self.run("template", release, str(chart), *args).stdout)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (kubectl and the API server do too)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {sorted(duplicates)}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def load_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc]


def merged_values(value_files: tuple[Path, ...]) -> dict[str, Any]:
    """Chart defaults deep-merged with value files, as helm does."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in value_files:
        _deep_merge(merged, yaml.safe_load(path.read_text()))
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) for every object that runs pods."""
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]
        elif doc["kind"] in {"Deployment", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}
