"""The Redis behind the bus, as the harness measures it: one server, or every master of a Redis Cluster.

    redis://127.0.0.1:6379/0                     one server (what bench/cluster.py starts)
    redis+cluster://h1:7000,h2:7001[,...]        seeds of a Redis Cluster; masters found with CLUSTER NODES

A sample is INFO commandstats + INFO memory + DBSIZE, summed over the nodes. The harness counts the
commands it sends itself (INFO, DBSIZE, SCAN, ...) per node, so a window's call counts can exclude them:
INFO's own call is counted in commandstats only after it answers, so the calls a window includes are
exactly those sent from its start sample (inclusive) to its end sample (exclusive).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Node:
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


BUFFERS = ("mem_replication_backlog", "mem_clients_slaves", "mem_clients_normal")


@dataclass
class Sample:
    calls: Counter[str]  # command -> calls so far, summed over the nodes
    used_memory: int  # bytes, summed
    keys: int  # DBSIZE, summed
    own: Counter[str]  # commands the harness had sent before this sample (this sample's excluded)
    per_node: dict[str, dict[str, int]] = field(default_factory=dict)
    # bytes of used_memory in buffers, not data: the replication backlog (capped at repl-backlog-size
    # per master, filled by any writes) and client buffers (replication links, connections)
    buffers: int = 0


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def parse_seeds(url: str) -> tuple[list[Node], dict[str, Any]]:
    """Seeds and connection options (username, password, ssl) of a redis+cluster:// URL."""
    scheme, _, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, _, hosts = netloc.rpartition("@")
    options: dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        options.update(username=unquote(user) or None, password=unquote(password) or None)
    if scheme.startswith("rediss"):
        options["ssl"] = True
    seeds = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            raise ValueError(f"seed {part!r} in {url!r} has no host:port")
        seeds.append(Node(host.strip("[]"), int(port)))
    return seeds, options


def masters_from(cluster_nodes: str, seed: Node) -> list[Node]:
    """Masters that serve slots, from CLUSTER NODES text ("<id> <ip:port@cport[,hostname]> <flags> ...")."""
    found = []
    for line in cluster_nodes.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address, flags = fields[1], set(fields[2].split(","))
        if "master" not in flags or flags & {"fail", "noaddr", "handshake"} or len(fields) == 8:
            continue  # a master with no slot range listed holds no data
        host, _, port = address.split("@", 1)[0].rpartition(":")
        found.append(Node(host or seed.host, int(port)))
    return sorted(set(found), key=lambda n: (n.host, n.port))


class RedisBus:
    """One plain client per node (the masters of a cluster), opened once so no connection
    handshake (HELLO, CLIENT SETINFO) lands inside a measured window."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        self.nodes: list[Node] = []
        self.clients: dict[Node, aioredis.Redis] = {}
        self.own: Counter[str] = Counter()  # commands sent by the harness, all nodes

    async def open(self) -> RedisBus:
        if not self.cluster:
            client = aioredis.Redis.from_url(self.url)
            kwargs = client.connection_pool.connection_kwargs
            node = Node(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)))
            self.nodes, self.clients = [node], {node: client}
        else:
            seeds, options = parse_seeds(self.url)
            self.nodes = await self._discover(seeds, options)
            self.clients = {n: aioredis.Redis(host=n.host, port=n.port, **options) for n in self.nodes}
        for client in self.clients.values():
            await client.ping()  # connect now; PING is counted like any own command
        self.own["ping"] += len(self.clients)
        return self

    async def _discover(self, seeds: list[Node], options: dict[str, Any]) -> list[Node]:
        errors = []
        for seed in seeds:
            client = aioredis.Redis(host=seed.host, port=seed.port, **options)
            try:
                raw = await client.execute_command("CLUSTER", "NODES")
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                masters = masters_from(text, seed)
                if masters:
                    return masters
                errors.append(f"{seed.name}: no master with slots")
            except Exception as exc:  # try the next seed
                errors.append(f"{seed.name}: {type(exc).__name__}: {exc}")
            finally:
                await client.aclose()
        raise RuntimeError(f"no Redis Cluster master found from {self.url}: {'; '.join(errors)}")

    async def sample(self) -> Sample:
        """commandstats, used_memory and DBSIZE of every node, summed."""
        own = Counter(self.own)
        calls: Counter[str] = Counter()
        used = keys = buffers = 0
        per_node = {}
        for node, client in self.clients.items():
            info = await client.info("commandstats")
            memory = await client.info("memory")
            size = int(await client.dbsize())
            self.own.update(info=2, dbsize=1)
            node_calls = Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()
                                  if isinstance(v, dict) and "calls" in v})
            calls += node_calls
            used += int(memory["used_memory"])
            buffers += sum(int(memory.get(name, 0)) for name in BUFFERS)
            keys += size
            per_node[node.name] = {"calls": sum(node_calls.values()), "used_memory": int(memory["used_memory"]),
                                   "keys": size}
        return Sample(calls, used, keys, own, per_node, buffers)

    async def count_keys(self, pattern: str) -> int:
        """Keys matching pattern on all nodes (SCAN; counted as own commands)."""
        total = 0
        for client in self.clients.values():
            cursor = 0
            while True:
                cursor, found = await client.scan(cursor, match=pattern, count=5000)
                self.own["scan"] += 1
                total += len(found)
                if cursor == 0:
                    break
        return total

    async def key_sizes(self, client_prefix: str, per_node: int = 60) -> dict[str, dict[str, float]]:
        """MEMORY USAGE of some keys naming a bench client (id = client_prefix + digits), averaged per kind
        of key ("crypto:owner:{id}", ...): where the bytes per client go."""
        id_pattern = re.compile(re.escape(client_prefix) + r"\d+")
        sizes: dict[str, list[int]] = {}
        for client in self.clients.values():
            cursor, seen = 0, 0
            while seen < per_node:
                cursor, found = await client.scan(cursor, match=f"*{client_prefix}*", count=1000)
                self.own["scan"] += 1
                for raw in found[:per_node - seen]:
                    key = raw.decode()
                    usage = await client.memory_usage(key, samples=0)
                    self.own["memory|usage"] += 1
                    if usage is not None:
                        sizes.setdefault(id_pattern.sub("{id}", key), []).append(int(usage))
                        seen += 1
                if cursor == 0:
                    break
        return {kind: {"sampled": len(v), "avg_bytes": round(sum(v) / len(v), 1)} for kind, v in sorted(sizes.items())}

    async def wait_keys(self, pattern: str, expected: int, timeout: float) -> int:
        """Poll until `expected` keys match (or the timeout); the count seen last."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        seen = 0
        while loop.time() < until:
            seen = await self.count_keys(pattern)
            if seen >= expected:
                break
            await asyncio.sleep(1.0)
        return seen

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()), return_exceptions=True)


def window_calls(start: Sample, end: Sample) -> tuple[Counter[str], Counter[str]]:
    """(calls by command in the window without the harness's own, the harness's own calls in it)."""
    own = Counter(end.own)
    own.subtract(start.own)
    delta = Counter(end.calls)
    delta.subtract(start.calls)
    delta.subtract(own)
    return +delta, +own
