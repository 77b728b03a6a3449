"""The web tier as an operator starts it: `uvicorn config.asgi:application` in its own process.

It shares the test session's database (DATABASE_URL is inherited), so users made in the test process can
log in. Everything it logs is kept in `log` for the tests to read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# The settings under test come from these; the test session's own values must not leak in.
WEB_ENV_NAMES = ("DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS", "DJANGO_DEBUG", "DJANGO_ENV",
                 "ENVIRONMENT", "ENV")


@dataclass
class WebTier:
    url: str
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def web_tier(**env: str) -> Iterator[WebTier]:
    """uvicorn config.asgi:application on a free loopback port, with `env` over the session's environment."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k not in WEB_ENV_NAMES}
    log_path = Path(tempfile.mkstemp(prefix="web-tier-", suffix=".log")[1])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off"],
            cwd=ROOT, env={**base, "METRICS_PORT": "0", **env}, stdout=log, stderr=subprocess.STDOUT)
    server = WebTier(f"http://127.0.0.1:{port}", log_path)
    try:
        until = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"web tier exited {proc.returncode}:\n{server.log}")
            try:
                httpx.get(f"{server.url}/", timeout=1)  # any HTTP answer means it serves
                break
            except httpx.TransportError:
                if time.monotonic() > until:
                    raise AssertionError(f"web tier not serving after 60 s:\n{server.log}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_path.unlink(missing_ok=True)
