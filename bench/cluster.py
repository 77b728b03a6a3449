"""A local cluster for one benchmark run: redis-server, a migrated database, N replica processes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis

from apps.crypto.grpc.services.bus.keys import Keys

from .procs import OPERATOR_TOKEN, RedisProcess, Replica, free_port, run_checked

KEY_PREFIX = "crypto"
LOG_EVENT = re.compile(r" (WARNING|ERROR|CRITICAL) \S+ (?:replica=\S+ )?([a-z_]+(?:\.[a-z_]+)+)")
BASE_ENV = {
    "CRYPTO_AUTH": "off",
    "CRYPTO_OPERATOR_TOKENS": OPERATOR_TOKEN,
    "CRYPTO_ENABLE_PING": "off",
    "LOG_LEVEL": "WARNING",
    "METRICS_PORT": "0",  # no Prometheus listener by default (replicas would share a port); latency turns it on per replica
    "CENTRIFUGO_API_URL": "",
    "CENTRIFUGO_API_KEY": "",
    "PYTHONUNBUFFERED": "1",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_ALLOW_DEV_SECRET_KEY": "on",  # local benchmark cluster: the public development key is fine
}


@dataclass
class Cluster:
    """Owns everything it starts; close() stops it all (replicas first, then Redis)."""

    workdir: Path
    database_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    redis_url: str = ""  # an external Redis (or redis+cluster:// seeds) instead of a local redis-server
    redis: RedisProcess | None = None
    replicas: list[Replica] = field(default_factory=list)
    wrapper: tuple[str, ...] = ()  # prefix of every replica's command line (the instructions scenario: valgrind)
    ready_timeout: float = 90.0  # seconds a new replica gets to report SERVING
    _serial: int = 0

    async def start(self) -> Cluster:
        if not self.redis_url:
            self.redis = RedisProcess(self.workdir).start()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        await run_checked([sys.executable, "-W", "ignore", "manage.py", "migrate", "--noinput", "-v0"],
                          self.env(), timeout=180, what="manage.py migrate")
        return self

    @property
    def bus_url(self) -> str:
        """The REDIS_URL the replicas get."""
        if self.redis_url:
            return self.redis_url
        assert self.redis is not None
        return self.redis.url

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
        env.update(BASE_ENV)
        env.update(REDIS_URL=self.bus_url, DATABASE_URL=self.database_url)
        env.update(self.extra_env)
        env.update(extra)
        if env.get("METRICS_PORT") == "auto":  # metrics on: each replica its own free port
            env["METRICS_PORT"] = str(free_port())
        return env

    def new_replica(self, **extra_env: str) -> Replica:
        """Start a replica process (not yet ready: await replica.wait_ready())."""
        self._serial += 1
        name = f"r{self._serial}"
        replica = Replica(name, self.env(**extra_env), self.workdir / f"{name}.log", wrapper=self.wrapper)
        self.replicas.append(replica.start())
        return replica

    async def add_replicas(self, count: int, **extra_env: str) -> list[Replica]:
        started = [self.new_replica(**extra_env) for _ in range(count)]
        for replica in started:
            await replica.wait_ready(self.ready_timeout)
        return started

    @property
    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def redis_client(self) -> aioredis.Redis:
        """A client of the one Redis server (not for redis+cluster://: see bench/redisbus.py)."""
        if self.redis is None:
            return aioredis.Redis.from_url(self.bus_url)
        return aioredis.Redis(host="127.0.0.1", port=self.redis.port)

    def stop_replicas(self) -> None:
        for replica in self.replicas:
            replica.terminate()
        for replica in self.replicas:
            replica.stop()

    def log_events(self) -> dict[str, int]:
        """WARNING and ERROR events in the replicas' logs, counted by "LEVEL event" (journal.dropped, ...)."""
        events: Counter[str] = Counter()
        for replica in self.replicas:
            if replica.log_path.exists():
                for match in LOG_EVENT.finditer(replica.log_path.read_text(errors="replace")):
                    events[f"{match[1]} {match[2]}"] += 1
        events.pop("WARNING auth.disabled", None)  # CRYPTO_AUTH=off is the harness's choice
        return dict(events)

    def close(self) -> None:
        self.stop_replicas()
        if self.redis is not None:
            self.redis.stop()


async def owners(redis: aioredis.Redis, client_ids: list[str], key_prefix: str = KEY_PREFIX) -> dict[str, str]:
    """client_id -> replica name holding its claim ("" when unclaimed), from crypto:owner:{id} keys
    (relay:owner:{id} for the bare relays)."""
    result: dict[str, str] = {}
    for start in range(0, len(client_ids), 1000):
        chunk = client_ids[start:start + 1000]
        values = await redis.mget([Keys(key_prefix).owner(c) for c in chunk])
        for client_id, raw in zip(chunk, values, strict=True):
            result[client_id] = raw.decode().rpartition("|")[0] if raw else ""
    return result


def owner_pattern(prefix: str, key_prefix: str = KEY_PREFIX) -> str:
    """SCAN pattern of the claims of clients whose ids start with prefix (braces are literal in globs)."""
    return Keys(key_prefix).owner(prefix).removesuffix("}") + "*"


async def count_claims(redis: aioredis.Redis, prefix: str, key_prefix: str = KEY_PREFIX) -> int:
    """How many of the bench's clients (ids starting with prefix) have a live claim."""
    count = 0
    async for _ in redis.scan_iter(match=owner_pattern(prefix, key_prefix), count=2000):
        count += 1
    return count


async def wait_claims(c: Cluster, prefix: str, expected: int, timeout: float = 120.0,
                      key_prefix: str = KEY_PREFIX) -> int:
    """Poll until `expected` bots with this prefix hold a claim (or the timeout); the count seen."""
    redis = c.redis_client()
    try:
        until = time.monotonic() + timeout
        claimed = 0
        while time.monotonic() < until:
            claimed = await count_claims(redis, prefix, key_prefix)
            if claimed >= expected:
                break
            await asyncio.sleep(0.25)
        return claimed
    finally:
        await redis.aclose()


async def redis_calls(redis: aioredis.Redis) -> Counter[str]:
    """Calls per Redis command so far (INFO commandstats), e.g. {"publish": 1234, "evalsha": 567}.
    These count the commands a Lua script runs too; RoundTrips counts what clients sent."""
    stats = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
                    if isinstance(v, dict) and "calls" in v})


UPKEEP = ("PING", "CLIENT", "HELLO", "INFO")  # connection chatter and the harness' own INFO


class RoundTrips:
    """The commands clients send to Redis (MONITOR; not those a script runs) while the block runs, less
    connection chatter and the replicas' lease beats: `async with RoundTrips(url) as watch: ...`, then watch.calls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[str, str]] = []
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    item = monitor.next_command()
                except (redis.RedisError, ValueError):
                    break
                if item.get("client_type") == "lua":
                    continue
                name, _, args = item["command"].partition(" ")
                self.seen.append((name.upper(), args))
        client.close()

    async def __aenter__(self) -> RoundTrips:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.2)  # the last replies' commands reach the monitor
        self._stop.set()
        await asyncio.to_thread(redis.Redis.from_url(self.url).ping)  # wakes the monitor so it sees stop
        await asyncio.to_thread(self._thread.join, 5)

    @property
    def calls(self) -> list[tuple[str, str]]:
        return [(name, args) for name, args in self.seen
                if name not in UPKEEP and not (name == "HSET" and ":replicas" in args)]
