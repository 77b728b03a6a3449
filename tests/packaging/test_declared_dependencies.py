"""Issue #18: every third-party package the code imports is declared in pyproject.toml (apps/, config/ and
manage.py in the runtime dependencies; tests/ and scripts/ may also use the dev extra, bench/ the bench
extra), and the hashed locks made by scripts/lock.sh pin all of it, consistently, and are what .venv holds.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENTS = ROOT / "requirements"
LOCAL = {"apps", "config", "tests", "bench", "scripts", "manage"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*groups: str) -> set[str]:
    project = PYPROJECT["project"]
    names = {canonical(Requirement(r).name) for r in project["dependencies"]}
    for group in groups:
        names |= {canonical(Requirement(r).name) for r in project["optional-dependencies"][group]}
    return names


def imported_top_level(*paths: str) -> dict[str, str]:
    """Top-level module -> one file importing it, for absolute imports outside the standard library."""
    found: dict[str, str] = {}
    files = []
    for path in paths:
        target = ROOT / path
        files += [target] if target.is_file() else sorted(target.rglob("*.py"))
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, str(file.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(("paths", "groups"), [
    (("apps", "config", "manage.py"), ()),
    (("tests", "scripts"), ("dev",)),
    (("bench",), ("dev", "bench")),
], ids=["runtime", "tests-and-scripts", "bench"])
def test_every_imported_package_is_declared(paths: tuple[str, ...], groups: tuple[str, ...]):
    allowed = declared(*groups)
    providers = metadata.packages_distributions()
    undeclared = {}
    for module, where in imported_top_level(*paths).items():
        if module in ("matplotlib",) and "bench" in groups and module not in providers:
            continue  # bench extra, installed by bench/run.sh only
        dists = {canonical(d) for d in providers.get(module, [])}
        if not dists & allowed:
            undeclared[module] = (where, sorted(dists))
    assert undeclared == {}, "imported but not declared in pyproject.toml: module -> (a file, distributions)"


def pins(lock: str) -> dict[str, tuple[str, str, frozenset[str]]]:
    """name -> (version, marker, hashes) of a `uv pip compile --generate-hashes` file."""
    text = re.sub(r"\\\n\s*", " ", (REQUIREMENTS / lock).read_text())
    result = {}
    for line in text.splitlines():
        if not line or line[0] in " #-":
            continue
        requirement, _, rest = line.partition(" --hash=")
        spec, _, marker = requirement.partition(";")
        name, _, version = spec.strip().partition("==")
        name = canonical(re.sub(r"\[.*\]", "", name))
        hashes = frozenset(re.findall(r"sha256:([0-9a-f]{64})", rest))
        result[name] = (version.strip(), marker.strip(), hashes)
    return result


LOCKS = {"runtime.txt": (), "dev.txt": ("dev",), "bench.txt": ("dev", "bench")}


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_pins_every_declared_package_with_hashes(lock: str):
    pinned = pins(lock)
    assert set(declared(*LOCKS[lock])) - set(pinned) == set()
    assert [name for name, (version, _, hashes) in pinned.items() if not version or not hashes] == []
    excluded = {canonical(line.split("#")[0].strip())
                for line in (REQUIREMENTS / "lean-excludes.txt").read_text().splitlines()
                if line.split("#")[0].strip()}
    assert excluded & set(pinned) == set()
    assert "bash scripts/lock.sh" in (REQUIREMENTS / lock).read_text().splitlines()[1]


def test_locks_agree_so_the_tests_run_the_images_packages():
    """Same versions and hashes (markers may widen: a bench package needs tzdata everywhere)."""
    runtime, dev, bench = ({name: (version, hashes) for name, (version, _, hashes) in pins(lock).items()}
                           for lock in ("runtime.txt", "dev.txt", "bench.txt"))
    assert {name: dev.get(name) for name in runtime} == runtime
    assert {name: bench.get(name) for name in dev} == dev


def test_venv_holds_exactly_the_dev_lock():
    """scripts/bootstrap.sh installed .venv from requirements/dev.txt, and nothing else of note is there."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv ({sys.prefix})")
    expected = {name: version for name, (version, marker, _) in pins("dev.txt").items()
                if not marker or Marker(marker).evaluate()}
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    assert {name: installed.get(name) for name in expected} == expected
    extra = set(installed) - set(expected) - set(pins("bench.txt")) - {"pip", "crypto-grpc"}
    assert extra == set(), "installed in .venv but not in requirements/dev.txt (or bench.txt)"
