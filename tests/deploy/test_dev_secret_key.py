"""Issue 11, finding 10, deployed: every app container gets DJANGO_SECRET_KEY from the Secret, never
optional, and nothing in the chart or the image turns on the development-key flag."""

from __future__ import annotations

from typing import Any

from .k8s_helpers import Helm, env_of, pod_specs
from .test_dockerfile import DOCKERFILE, final_stage, instructions, stages

FLAG = "DJANGO_ALLOW_DEV_SECRET_KEY"


def app_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every container of the Deployments (gRPC, web) and the migrate Job: they all load the settings.
    (The `helm test` Pod only speaks gRPC health.)"""
    return [(name, container) for name, spec in pod_specs(docs)
            for container in spec.get("initContainers", []) + spec["containers"]
            if not name.endswith("-test-grpc-health")]


def test_every_app_container_reads_the_secret_key_from_the_secret(docs: list[dict[str, Any]],
                                                                   values: dict[str, Any]) -> None:
    containers = app_containers(docs)
    assert len(containers) >= 2, [name for name, _ in containers]
    for name, container in containers:
        entry = env_of(container).get("DJANGO_SECRET_KEY")
        assert entry is not None, f"{name}/{container['name']} has no DJANGO_SECRET_KEY"
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == values["secret"]["name"] and not ref.get("optional", False)
        assert FLAG not in env_of(container)


def test_no_rendered_object_mentions_the_flag(helm: Helm) -> None:
    assert FLAG not in helm.template(sets=("web.enabled=true",))


def test_schema_refuses_an_optional_secret_key(helm: Helm) -> None:
    proc = helm.run(*helm.template_cmd(sets=("secret.optional={DJANGO_SECRET_KEY}",)), check=False)
    assert proc.returncode != 0 and "optional" in proc.stderr


def test_schema_refuses_the_flag_in_extra_env(helm: Helm) -> None:
    proc = helm.run(*helm.template_cmd(sets=(f"extraEnv[0].name={FLAG},extraEnv[0].value=on",)), check=False)
    assert proc.returncode != 0 and "extraEnv" in proc.stderr


def test_image_sets_the_flag_only_for_the_build_time_collectstatic() -> None:
    build_runs = [args for stage in stages()[:-1] for word, args in stage if word == "RUN"]
    assert [run for run in build_runs if FLAG in run] == [
        next(run for run in build_runs if "manage.py collectstatic" in run)]
    assert f"{FLAG}=on python manage.py collectstatic" in " ".join(build_runs)
    assert not [args for word, args in instructions(DOCKERFILE) if word in {"ENV", "ARG"} and FLAG in args]
    assert not [args for word, args in final_stage() if FLAG in args]

