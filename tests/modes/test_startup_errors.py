"""A wrong REDIS_URL stops the replica at start-up naming what is wrong; an unreachable one is named
in an error line while the replica serves NOT_SERVING and keeps trying."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel://127.0.0.1:26379", "missing master name"),
    ("redis+cluster://127.0.0.1:7000/3", "db"),
    ("mongodb://127.0.0.1:27017", "redis+sentinel"),  # the message lists the schemes it accepts
])
def test_a_wrong_url_stops_the_replica_naming_the_problem(url, problem):
    env = replica_env(f"{url}", os.environ["DATABASE_URL"], REDIS_PASSWORD="s3cret-pw", GRPC_PORT=str(free_port()))
    out = subprocess.run([sys.executable, "-W", "ignore", "manage.py", "rungrpc", "--host", "127.0.0.1"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "REDIS_URL" in out.stderr and problem in out.stderr, out.stderr[-1500:]
    assert "s3cret-pw" not in out.stderr + out.stdout


def test_an_unreachable_sentinel_is_named_at_start_up():
    port = free_port()
    url = f"redis+sentinel://:pw-not-logged@127.0.0.1:{port}/mymaster/0"
    log = Path(tempfile.mkdtemp(prefix="crypto-unreachable-")) / "replica.log"
    replica = ReplicaProcess("unreachable", replica_env(url, os.environ["DATABASE_URL"]), log).start()
    try:
        until = time.monotonic() + 40
        while "bus.redis_unreachable" not in log.read_text() and time.monotonic() < until:
            assert replica.process.poll() is None, replica.log_tail()
            time.sleep(0.2)
        line = next(line for line in log.read_text().splitlines() if "bus.redis_unreachable" in line)
        assert f"127.0.0.1:{port}" in line and "mymaster" in line, line
        assert "pw-not-logged" not in log.read_text()
        assert replica.process.poll() is None  # still up, NOT_SERVING, retrying
    finally:
        replica.kill()
