"""Issue 11, finding 10: with DEBUG off and no DJANGO_SECRET_KEY, a process refuses to start on the
public development key and says how to fix it; DJANGO_ALLOW_DEV_SECRET_KEY=on (development, tests) lets it.

The settings decide at import, so these run `manage.py` as a real process, the way an operator does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import DEV_SECRET_KEY, Environment, django_secret_key

ROOT = Path(__file__).resolve().parents[2]
FLAG = "DJANGO_ALLOW_DEV_SECRET_KEY"
REAL_KEY = "k" * 20 + "-not-the-development-key-" + "k" * 20


def manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py with DEBUG off, no secret key and no flag, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SECRET_KEY", FLAG, "DJANGO_DEBUG"}}
    return subprocess.run([sys.executable, "-W", "ignore", "manage.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**base, "DJANGO_DEBUG": "off", **env})


def assert_refused(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "DJANGO_SECRET_KEY is not set" in proc.stderr and f"{FLAG}=on" in proc.stderr, proc.stderr
    assert "secrets.token_urlsafe" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_production_refuses_the_development_key():
    assert_refused(manage("check"))


def test_a_replica_does_not_start_on_the_development_key():
    proc = manage("rungrpc", "--host", "127.0.0.1", "--port", "0", METRICS_PORT="0")
    assert_refused(proc)
    assert "replica.started" not in proc.stdout + proc.stderr


def test_the_development_key_set_by_hand_is_refused_too():
    assert_refused(manage("check", DJANGO_SECRET_KEY=DEV_SECRET_KEY))


@pytest.mark.parametrize("env", [{FLAG: "on"}, {"DJANGO_SECRET_KEY": REAL_KEY}])
def test_the_flag_or_a_real_key_lets_it_start(env):
    proc = manage("check", **env)
    assert proc.returncode == 0, proc.stderr
    assert "DJANGO_SECRET_KEY is not set" not in proc.stderr


@pytest.mark.parametrize("env, key", [
    ({"DJANGO_SECRET_KEY": REAL_KEY}, REAL_KEY),
    ({"DJANGO_SECRET_KEY": REAL_KEY, FLAG: "on"}, REAL_KEY),
    ({FLAG: "on"}, DEV_SECRET_KEY),
    ({"DJANGO_DEBUG": "on"}, DEV_SECRET_KEY),
    ({"DJANGO_SECRET_KEY": DEV_SECRET_KEY, FLAG: "1"}, DEV_SECRET_KEY),
])
def test_which_key_is_used(env, key):
    assert django_secret_key(Environment.from_mapping(env)) == key


@pytest.mark.parametrize("env", [{}, {"DJANGO_SECRET_KEY": "  "}, {"DJANGO_SECRET_KEY": DEV_SECRET_KEY},
                                 {FLAG: "off"}, {"DJANGO_DEBUG": "off"}])
def test_no_key_without_the_flag_is_an_error(env):
    with pytest.raises(ValueError, match="DJANGO_SECRET_KEY is not set"):
        django_secret_key(Environment.from_mapping(env))
