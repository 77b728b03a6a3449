"""What every scenario gets: the options, a scratch folder, a unique client-id prefix, and start-up helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cluster import Cluster
from .fleetctl import FleetProcess
from .procs import CpuMeter


@dataclass(frozen=True)
class Options:
    replicas: int = 3
    clients: int = 1000
    database_url: str = ""
    duration: float = 5.0  # seconds per measured latency step
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    fleet_channels: int = 4
    ingest_clients: int = 100
    ingest_messages: int = 20_000  # in all, per variant
    ingest_seconds: float = 60.0  # cap on the sending phase
    memory_steps: tuple[int, ...] = (1000, 5000, 10000)
    memory_transports: tuple[str, ...] = ("default", "ph2_server")  # "default" or a GRPC_EXPERIMENTS value
    load_concurrency: int = 8  # background commands in flight during failover / rollout
    profile: bool = False
    profile_native: bool = False  # py-spy --native: C frames too
    replica_env: tuple[tuple[str, str], ...] = ()
    redis_url: str = ""  # external Redis / redis+cluster:// seeds; "" = a local redis-server per cluster
    client_steps: tuple[int, ...] = (3000,)  # upkeep: idle bots, grown step by step
    upkeep_window: float = 60.0  # upkeep: measured steady window, seconds
    upkeep_settle: float = 35.0  # upkeep: pause after the last bot connected, before the window
    fleet_bots: int = 15_000  # bots per load generator process (more bots: more processes)
    ir_commands: int = 300  # instructions: commands per measured window
    ir_bots: int = 10  # instructions: connected bots per side


@dataclass
class Context:
    options: Options
    stamp: str
    workdir: Path
    prefix: str = field(default="")
    log_events: dict[str, dict[str, int]] = field(default_factory=dict)  # cluster -> "LEVEL event" -> count

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"bench-{self.stamp.replace('-', '')}-"

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.options.database_url.startswith("postgres") else "sqlite"

    @property
    def results_dir(self) -> Path:
        from .report import RESULTS

        RESULTS.mkdir(parents=True, exist_ok=True)
        return RESULTS

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@contextlib.asynccontextmanager
async def cluster(ctx: Context, name: str, replicas: int, redis_url: str = "", *, wrapper: tuple[str, ...] = (),
                  ready_timeout: float = 90.0, **env: str) -> AsyncIterator[Cluster]:
    """redis-server (unless redis_url names one) + migrated database + `replicas` ready replica processes
    (their command lines prefixed by `wrapper`); all stopped on exit (an external Redis is left running)."""
    started = Cluster(ctx.scratch(name), ctx.options.database_url, dict(ctx.options.replica_env), redis_url,
                      wrapper=wrapper, ready_timeout=ready_timeout)
    try:
        ctx.log(f"{name}: {'starting redis-server and ' if not redis_url else ''}migrating the database")
        await started.start()
        ctx.log(f"{name}: starting {replicas} replica(s)")
        await started.add_replicas(replicas, **env)
        yield started
    finally:
        started.close()
        ctx.log_events[name] = started.log_events()


@contextlib.asynccontextmanager
async def fleet(ctx: Context, targets: list[str], track: bool = False, receipts: bool = False,
                key_secret: str = "") -> AsyncIterator[FleetProcess]:
    process = FleetProcess(targets, channels=ctx.options.fleet_channels, track=track, receipts=receipts,
                           key_secret=key_secret)
    await process.start()
    try:
        yield process
    finally:
        await process.close()


def meter(c: Cluster, f: FleetProcess) -> CpuMeter:
    """CPU of every replica, Redis, the load generator and this harness (the caller)."""
    assert c.redis is not None and c.redis.process is not None
    pids = {r.name: r.pid for r in c.live}
    pids.update(redis=c.redis.process.pid, loadgen=f.pid, caller=os.getpid())
    return CpuMeter(pids)


def machine() -> dict[str, Any]:
    import grpc

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "grpcio": grpc.__version__,
            "platform": platform.platform(), "cpu_loop_ms": cpu_loop_ms()}


def cpu_loop_ms(n: int = 2_000_000) -> float:
    """A fixed pure-Python loop, timed: how fast this machine is right now (its speed drifts by 2x)."""
    began = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return round((time.perf_counter() - began) * 1000, 1)
