"""Processes the harness starts (redis-server, migrate, replicas, fake Centrifugo) and how to measure them.

Every child is started through `guarded()`, which sets PR_SET_PDEATHSIG(SIGKILL) between fork and exec
(setpriv, else a tiny Python shim; no preexec_fn, which is unsafe in a process running gRPC threads):
if the harness dies, nothing it started outlives it. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.ports import free_port
from tests.support.redis_server import redis_binary  # one way to find redis-server

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
OPERATOR_TOKEN = "bench-operator-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


SHIM = ("import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL); "
        "os.execvp(sys.argv[1], sys.argv[1:])")


def guarded(args: list[str]) -> list[str]:
    """The same command, killed by the kernel when the harness process ends."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "KILL", "--", *args]
    return [sys.executable, "-c", SHIM, *args]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    """VmRSS from /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class CpuMeter:
    """CPU share (1.0 = one full core) of named processes over a window."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self._t0)
        return {name: round((cpu_seconds(pid) - self._start[name]) / wall, 3) for name, pid in self.pids.items()}


@dataclass
class RedisProcess:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisProcess:
        args = [redis_binary(), "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--loglevel", "warning", "--maxclients", "10000"]
        self.process = subprocess.Popen(guarded(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGKILL, 5)


def stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Signal one process we started (by its pid) and reap it; escalate to SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


async def health_status(target: str, service: str = "readiness", timeout: float = 1.0) -> int | None:
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return int(reply.status)
    except grpc.aio.AioRpcError:
        return None


@dataclass
class Replica:
    """One `manage.py rungrpc` process."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    wrapper: tuple[str, ...] = ()  # a command line prefix, e.g. valgrind (the pid stays the replica's)

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Replica:
        env = {**self.env, "REPLICA_ID": self.name, "GRPC_PORT": str(self.port)}
        args = [*self.wrapper, sys.executable, "-W", "ignore", "manage.py", "rungrpc", "--host", HOST]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(guarded(args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        return self

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until grpc.health.v1 `readiness` is SERVING."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive:
                raise RuntimeError(f"replica {self.name} exited:\n{self.log_tail()}")
            if await health_status(self.target) == health_pb2.HealthCheckResponse.SERVING:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise RuntimeError(f"replica {self.name} not ready after {timeout:g}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        until = time.monotonic() + timeout
        while self.alive and time.monotonic() < until:
            await asyncio.sleep(0.05)
        return self.process.poll() if self.process else None

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, 30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


async def run_checked(args: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    """Run a short command to completion (bounded); raise with its output when it fails."""
    process = await asyncio.create_subprocess_exec(*guarded(args), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{what} did not finish within {timeout:g}s") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {process.returncode}):\n{text[-3000:]}")
    return text


@dataclass
class FakeCentrifugoProcess:
    """tests/support/fake_centrifugo.py as a child process (its CPU stays out of the replica)."""

    api_key: str = "bench-centrifugo-key"
    url: str = ""
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> FakeCentrifugoProcess:
        args = [sys.executable, "-W", "ignore", "-m", "tests.support.fake_centrifugo", self.api_key]
        self.process = await asyncio.create_subprocess_exec(*guarded(args), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                                                            stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        self.url = line.decode().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake Centrifugo did not start: {self.url!r}")
        return self

    async def stats(self) -> str:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(b"stats\n")
        await self.process.stdin.drain()
        return (await asyncio.wait_for(self.process.stdout.readline(), 10)).decode().strip()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
            await asyncio.wait_for(self.process.wait(), 5)
        except (TimeoutError, ConnectionError):
            self.process.kill()
            await self.process.wait()
