"""Plain manifests in deploy/k8s/manifests: in sync with the chart, and valid."""

from __future__ import annotations

import os
import subprocess

import pytest

from .k8s_helpers import K8S_VERSIONS, MANIFESTS, RELEASE, RENDER_SCRIPT, SECRET_VARS, Helm, load_docs, pod_specs

FILES = ("crypto-grpc.yaml", "crypto-grpc-migrate.yaml")


def test_manifests_are_up_to_date(helm: Helm) -> None:
    proc = subprocess.run(
        ["bash", str(RENDER_SCRIPT), "--check"],
        env={**helm.env, "HELM": str(helm.bin)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stale manifests; run scripts/render_manifests.sh\n{proc.stderr[-3000:]}"


def test_manifest_files_are_the_only_ones() -> None:
    assert sorted(os.listdir(MANIFESTS)) == sorted(FILES)


def test_main_manifest_has_no_hooks_and_migrate_manifest_only_the_job() -> None:
    main = load_docs((MANIFESTS / "crypto-grpc.yaml").read_text())
    kinds = {d["kind"] for d in main}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    assert "Job" not in kinds and "Pod" not in kinds
    assert all("helm.sh/hook" not in d["metadata"].get("annotations", {}) for d in main)
    (job,) = load_docs((MANIFESTS / "crypto-grpc-migrate.yaml").read_text())
    assert job["kind"] == "Job" and job["metadata"]["name"] == f"{RELEASE}-migrate"


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("name", FILES)
def test_manifests_match_kubernetes_schemas(name: str, k8s_version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev dependency) ships the Kubernetes JSON schemas"
    )
    for doc in load_docs((MANIFESTS / name).read_text()):
        kubernetes_validate.validate(doc, k8s_version, strict=True)


def test_manifests_reference_secrets_by_name_only() -> None:
    for name in FILES:
        docs = load_docs((MANIFESTS / name).read_text())
        assert not [d for d in docs if d["kind"] == "Secret"]
        for _, spec in pod_specs(docs):
            for container in spec["containers"]:
                for entry in container.get("env", []):
                    if entry["name"] in SECRET_VARS:
                        assert set(entry) == {"name", "valueFrom"}
                        assert "secretKeyRef" in entry["valueFrom"]
