"""The chart's extension points (issue #18): security contexts, extra env and
volumes, sidecars, scheduling, the web tier's Ingress/HTTPRoute and PDB, the
Secret checksum, and the chart as a subchart. Every check renders the real
chart with helm and validates the objects against the Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import pytest

from .k8s_helpers import CI_VALUES, K8S_VERSIONS, RELEASE, Helm, find, pod_specs

# Today's (and the default) restricted profile, exactly.
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def validate(docs: list[dict[str, Any]]) -> int:
    """Strict Kubernetes schema validation of the built-in kinds; returns how many were checked."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev dependency) ships the Kubernetes JSON schemas"
    )
    checked = 0
    for doc in docs:
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].startswith(
            ("apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")
        ):
            continue  # CRDs (ServiceMonitor, HTTPRoute) have no schema there
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    return checked


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def rejected(helm: Helm, *sets: str) -> str:
    proc = helm.run(*helm.template_cmd(values=(CI_VALUES,), sets=sets), check=False)
    assert proc.returncode != 0, f"accepted: {sets}"
    return proc.stderr


# --- security contexts -----------------------------------------------------------


@pytest.mark.parametrize("value_files", [(), (CI_VALUES,)], ids=["default", "ci"])
def test_defaults_are_exactly_todays_restricted_profile(helm: Helm, value_files: tuple) -> None:
    specs = dict(pod_specs(helm.render(values=value_files)))
    assert {RELEASE, f"{RELEASE}-migrate", f"{RELEASE}-test-grpc-health"} <= set(specs)
    for name, spec in specs.items():
        assert spec["securityContext"] == RESTRICTED_POD, name
        for container in all_containers(spec):
            assert container["securityContext"] == RESTRICTED_CONTAINER, f"{name}/{container['name']}"


def test_security_contexts_are_overridable(helm: Helm) -> None:
    docs = helm.render(
        values=(CI_VALUES,),
        sets=(
            "podSecurityContext.fsGroupChangePolicy=OnRootMismatch",
            "podSecurityContext.fsGroup=null",
            "containerSecurityContext.readOnlyRootFilesystem=false",
            "containerSecurityContext.capabilities.add={NET_BIND_SERVICE}",
        ),
    )
    validate(docs)
    specs = dict(pod_specs(docs))
    assert len(specs) == 4
    for name, spec in specs.items():
        assert spec["securityContext"] == {
            **{k: v for k, v in RESTRICTED_POD.items() if k != "fsGroup"},
            "fsGroupChangePolicy": "OnRootMismatch",
        }, name
        for container in spec["containers"]:
            assert container["securityContext"] == {
                **RESTRICTED_CONTAINER,
                "readOnlyRootFilesystem": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            }, name


@pytest.mark.parametrize(
    "setting",
    [
        "containerSecurityContext.privilegd=true",
        "containerSecurityContext.runAsUser=-1",
        "podSecurityContext.seccompProfile.type=Other",
        "podSecurityContext.readOnlyRootFilesystem=true",  # a container field
    ],
)
def test_schema_checks_security_contexts(helm: Helm, setting: str) -> None:
    rejected(helm, setting)
