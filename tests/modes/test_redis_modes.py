"""The bus on a Redis Cluster (sharded pub/sub) and on Sentinel: routing, listing and a Redis failover
under command traffic, with real replica processes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field

import grpc

from apps.crypto.grpc.services.bus.keys import Keys
from tests.cluster.test_routing import check_every_replica_reaches_every_client, connect, wait_routable
from tests.support.cluster import OPERATOR_TOKEN, ROOT
from tests.support.operator import Operator
from tests.support.redis_topologies import RedisClusterSet

DEADLINE = 8.0  # each command's gRPC deadline during the failover
BOTS = 12


async def test_every_replica_reaches_every_client(replicas):
    await check_every_replica_reaches_every_client(replicas)


async def test_list_clients_asks_every_replica(replicas, topology):
    bots = [await connect(replica) for replica in replicas]
    operator = Operator(OPERATOR_TOKEN)
    try:
        for bot in bots:
            await wait_routable(operator, replicas[0].target, bot.client_id)
        env = {**replicas[0].env, "REDIS_URL": topology.url}
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-W", "ignore", "manage.py", "list_clients",
                                                       "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                                      timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        listed = {row["client_id"]: row["replica"] for row in rows}
        for bot, replica in zip(bots, replicas):
            assert listed.get(bot.client_id) == replica.replica_id
    finally:
        for bot in bots:
            await bot.__aexit__()
        await operator.close()


@dataclass
class Traffic:
    """Commands sent to random bots through random replicas, each with its outcome and duration."""

    outcomes: list[tuple[str, float, str, float]] = field(default_factory=list)  # (id, seconds, outcome, started)
    running: bool = True

    async def worker(self, n: int, operator: Operator, replicas, bots) -> None:
        for i in range(10_000):
            if not self.running:
                return
            bot, replica = random.choice(bots), random.choice(replicas)
            command_id, started = f"fo-{n}-{i}", time.monotonic()
            try:
                ack = await operator.execute(replica.target, bot.client_id, command_id, timeout=DEADLINE)
                outcome = "acked" if ack.success else f"failed: {ack.error}"
            except grpc.aio.AioRpcError as exc:
                outcome = f"{exc.code().name}: {exc.details()}"
            self.outcomes.append((command_id, time.monotonic() - started, outcome, started))
            await asyncio.sleep(0.02)


async def test_failover_under_traffic_recovers_and_no_command_hangs(replicas, topology):
    """Kill the master serving some clients' keys (cluster: its replica is promoted; Sentinel: a
    failover): every client is routable again, every command sent meanwhile is acked or explicitly
    failed before its deadline, and no bot runs a command twice."""
    operator = Operator(OPERATOR_TOKEN)
    bots = [await connect(replicas[n % len(replicas)]) for n in range(BOTS)]
    traffic = Traffic()
    try:
        for bot in bots:
            await wait_routable(operator, replicas[0].target, bot.client_id)
        workers = [asyncio.create_task(traffic.worker(n, operator, replicas, bots)) for n in range(4)]
        await asyncio.sleep(1.0)
        killed_at = time.monotonic()
        if isinstance(topology, RedisClusterSet):
            victim = topology.master_for_key(Keys().owner(bots[0].client_id))
            await asyncio.to_thread(topology.kill, victim)
            promoted = await asyncio.to_thread(topology.wait_promoted, victim, 30)
        else:
            await asyncio.to_thread(topology.kill_master)
            promoted = await asyncio.to_thread(topology.wait_failover, 30)
        recovered = await all_routable(operator, replicas, bots, killed_at, timeout=30)
        await asyncio.sleep(1.0)
        traffic.running = False
        await asyncio.gather(*workers)
        print(f"\n{type(topology).__name__}: redis failover {promoted:.2f}s, every client routable again "
              f"{recovered:.2f}s after the kill; {len(traffic.outcomes)} commands: "
              f"{summary(traffic.outcomes)}; slowest answer {max(o[1] for o in traffic.outcomes):.2f}s")
        hung = [o for o in traffic.outcomes if o[1] >= DEADLINE - 0.5 or o[2].startswith("DEADLINE_EXCEEDED")]
        assert not hung, hung[:5]
        unknown = [o for o in traffic.outcomes if o[2].startswith("UNKNOWN")]
        assert not unknown, unknown[:5]
        after = [o for o in traffic.outcomes if o[3] >= killed_at + recovered]
        assert after and all(o[2] == "acked" for o in after), [o for o in after if o[2] != "acked"][:5]
        for bot in bots:  # a re-sent copy is marked retry; no bot gets one command twice otherwise
            firsts = [c.command_id for c in bot.commands if not c.retry and c.command_id.startswith("fo-")]
            assert len(firsts) == len(set(firsts)), bot.client_id
        for replica in replicas:
            assert replica.process.poll() is None, replica.log_tail()
    finally:
        traffic.running = False
        for bot in bots:
            await bot.__aexit__()
        await operator.close()


async def all_routable(operator: Operator, replicas, bots, since: float, timeout: float) -> float:
    """Seconds from `since` until one round of commands reaches every bot, each through another replica."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        results = await asyncio.gather(*(operator.execute(replicas[(n + 1) % len(replicas)].target, bot.client_id,
                                                          timeout=3) for n, bot in enumerate(bots)),
                                       return_exceptions=True)
        if all(not isinstance(r, BaseException) and r.success for r in results):
            return time.monotonic() - since
        await asyncio.sleep(0.1)
    raise AssertionError(f"not every client routable within {timeout}s of the kill")


def summary(outcomes: list[tuple[str, float, str, float]]) -> str:
    counts: dict[str, int] = {}
    for _, _, outcome, _ in outcomes:
        key = outcome.split(":")[0] if not outcome.startswith("failed") else "failed ack"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
