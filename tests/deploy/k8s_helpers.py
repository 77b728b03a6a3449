"""Shared helpers for the Kubernetes deployment tests (paths, helm, rendered objects)."""

from __future__ import annotations

import base64
import json
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


# Resources the stand-in API server advertises: every kind the chart renders.
_API_RESOURCES: dict[str, list[tuple[str, str]]] = {
    "v1": [("configmaps", "ConfigMap"), ("secrets", "Secret"), ("services", "Service"),
           ("serviceaccounts", "ServiceAccount"), ("pods", "Pod")],
    "apps/v1": [("deployments", "Deployment")],
    "batch/v1": [("jobs", "Job")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "networking.k8s.io/v1": [("ingresses", "Ingress"), ("networkpolicies", "NetworkPolicy")],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor")],
    "gateway.networking.k8s.io/v1": [("httproutes", "HTTPRoute")],
}


class SecretsAPI:
    """A read-only stand-in for the Kubernetes API server, on 127.0.0.1, that
    answers what `helm template --dry-run=server` asks: version, discovery,
    GETs of objects (404 unless a Secret was put), and the list of Helm's
    release Secrets (empty). It lets the chart's `lookup` of Secrets run in a
    real helm, offline. `requests` records every path asked for."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                api.requests.append(self.path)
                code, body = api._answer(self.path.split("?", 1)[0])
                self._send(code, body)

            def _refuse(self) -> None:
                api.requests.append(f"{self.command} {self.path}")
                self._send(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405})

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "SecretsAPI":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Store a Secret; data values are plain text (base64-encoded here, as the API does)."""
        self.secrets[(namespace, name)] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
            "users": [{"name": "stand-in", "user": {"token": "stand-in"}}],
            "contexts": [{"name": "stand-in",
                          "context": {"cluster": "stand-in", "user": "stand-in", "namespace": namespace}}],
            "current-context": "stand-in",
        }))
        return path

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/version":
            return 200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for group_version in _API_RESOURCES:
                if "/" in group_version:
                    version = {"groupVersion": group_version, "version": group_version.split("/")[1]}
                    groups.append({"name": group_version.split("/")[0], "versions": [version],
                                   "preferredVersion": version})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        for group_version, resources in _API_RESOURCES.items():
            if path == ("/api/v1" if group_version == "v1" else f"/apis/{group_version}"):
                return 200, {
                    "kind": "APIResourceList",
                    "groupVersion": group_version,
                    "resources": [{"name": name, "singularName": "", "namespaced": True, "kind": kind,
                                   "verbs": ["get", "list"]} for name, kind in resources],
                }
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "secrets":
            if len(parts) == 5:  # Helm's release history: none
                return 200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": []}
            data = self.secrets.get((parts[3], parts[5]))
            if data is not None:
                return 200, {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                             "metadata": {"name": parts[5], "namespace": parts[3]}, "data": data}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                     "code": 404, "message": f"{path} not found"}
