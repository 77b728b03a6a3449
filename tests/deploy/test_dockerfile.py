"""Static checks of the Dockerfile (no Docker engine is needed or assumed)."""

from __future__ import annotations

import re
import shlex

from .k8s_helpers import ROOT, Helm, find, RELEASE

DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text().splitlines()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instr in instructions(DOCKERFILE):
        if instr[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instr)
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def test_multi_stage_on_python_312_slim() -> None:
    assert len(stages()) >= 2
    assert "ARG PYTHON_VERSION=3.12" in DOCKERFILE
    for stage in stages():
        assert stage[0][1].startswith("python:${PYTHON_VERSION}-slim")


def test_final_stage_runs_as_fixed_non_root_uid() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users == ["10001:10001"]


def test_final_stage_has_no_build_tools() -> None:
    runs = " ".join(args for word, args in final_stage() if word == "RUN")
    for tool in ("apt-get", "build-essential", "gcc", "pip install"):
        assert tool not in runs


def test_environment_for_read_only_root() -> None:
    env = " ".join(args for word, args in final_stage() if word == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env


def test_static_files_collected_at_build_time() -> None:
    build_runs = " ".join(args for stage in stages()[:-1] for word, args in stage if word == "RUN")
    assert "pip install --no-deps --no-build-isolation ." in build_runs
    assert "manage.py collectstatic --noinput" in build_runs


def test_default_command_is_the_grpc_server() -> None:
    (cmd,) = [args for word, args in final_stage() if word == "CMD"]
    assert cmd == '["python", "manage.py", "rungrpc"]'
    assert shlex.split(cmd.strip("[]").replace(",", " ")) == ["python", "manage.py", "rungrpc"]


def test_image_installs_the_hashed_runtime_lock_without_resolving() -> None:
    build = [instr for stage in stages()[:-1] for instr in stage]
    runs = [args for word, args in build if word == "RUN"]
    assert "pip install --require-hashes --no-deps -r requirements/runtime.txt" in runs
    # The lock is installed before the whole context is copied, so a code change keeps that layer.
    copies = [args for word, args in build if word == "COPY"]
    assert copies.index("requirements/runtime.txt requirements/runtime.txt") < copies.index(". .")


def test_dockerignore_is_an_allow_list() -> None:
    rules = [line.strip() for line in DOCKERIGNORE if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "manage.py", "apps", "config", "protos", "requirements"}


def test_chart_uid_matches_image_uid(helm: Helm) -> None:
    pod = find(helm.render(), "Deployment", RELEASE)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert "--uid 10001" in DOCKERFILE
