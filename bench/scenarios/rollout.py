"""rollout: a full rolling restart under command load; every command accounted for.

For each old replica in turn: start a new one, wait until grpc.health.v1 `readiness` is SERVING,
add it to the bots' and callers' target lists, take the old one out of them, SIGTERM it and wait
for it to exit (the replica drains: its streams end UNAVAILABLE over drain_window and the bots
reconnect elsewhere after a jittered 50-250 ms pause). --load-concurrency callers send
ExecuteCommandSync to random bots through the serving replicas all along. Every call ends as
acked, an explicit error (error ack or a status other than DEADLINE_EXCEEDED), or lost (the
caller's deadline passed, or the server gave up waiting for the ack).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..cluster import Cluster, wait_claims
from ..commands import Commands, Load
from ..context import Context, cluster, fleet
from ..fleetctl import FleetProcess
from ..procs import Replica
from ..report import check, table, targets_table
from ..stats import summary_s
from .failover import delivery_check, totals

STEADY_SECONDS = 3.0
AFTER_SECONDS = 3.0


async def replace(ctx: Context, c: Cluster, f: FleetProcess, old: Replica, serving: list[str]) -> dict[str, Any]:
    began = time.monotonic()
    new = c.new_replica()
    ready_s = await new.wait_ready()
    serving.append(new.target)
    serving.remove(old.target)
    await f.set_targets(list(serving))
    ctx.log(f"rollout: {new.name} ready in {ready_s:.1f} s; SIGTERM {old.name}")
    stopping = time.monotonic()
    old.terminate()
    code = await old.wait_exit(60.0)
    return {"old": old.name, "new": new.name, "new_ready_s": round(ready_s, 2),
            "old_exit_s": round(time.monotonic() - stopping, 2), "old_exit_code": code,
            "step_s": round(time.monotonic() - began, 2)}


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    async with cluster(ctx, "rollout", opts.replicas) as c:
        serving = [r.target for r in c.live]
        async with fleet(ctx, list(serving), track=True) as f:
            await f.connect(ctx.prefix, opts.clients)
            claimed = await wait_claims(c, ctx.prefix, opts.clients)
            clients = [f"{ctx.prefix}{i:06d}" for i in range(opts.clients)]
            commands = Commands()
            load = Load(commands, clients, lambda: serving)
            try:
                load.start(opts.load_concurrency)
                await asyncio.sleep(STEADY_SECONDS)
                began = time.monotonic()
                steps = [await replace(ctx, c, f, old, serving) for old in list(c.live)]
                rollout_s = time.monotonic() - began
                await asyncio.sleep(AFTER_SECONDS)
                await load.stop()
                reclaimed = await wait_claims(c, ctx.prefix, opts.clients, timeout=30)
            finally:
                await commands.close()
            stats = await f.stats()
            received = set((await f.request("received_ids"))["ids"])
        stats["replica_targets"] = {r.target: r.name for r in c.replicas}
    return assemble(ctx, claimed, reclaimed, steps, rollout_s, load, began, stats, received)


def assemble(ctx: Context, claimed: int, reclaimed: int, steps: list[dict[str, Any]], rollout_s: float, load: Load,
             began: float, stats: dict[str, Any], received: set[str]) -> dict[str, Any]:
    accounting = totals(load.counts())
    outages = summary_s(stats["outages"])
    consistency = delivery_check(load.endings, received)
    checks = [check("commands lost in the rollout", "0", accounting["lost"], accounting["lost"] == 0)]
    text = table(steps, ["old", "new", "new_ready_s", "old_exit_s", "old_exit_code", "step_s"],
                 f"rolling restart of {ctx.options.replicas} replicas with {claimed} bots, "
                 f"{ctx.options.load_concurrency} commands in flight ({rollout_s:.1f} s)")
    text += "\n\n" + table([{"calls": "whole run", **accounting}],
                           ["calls", "acked", "explicit_error", "lost", "kinds"], "ExecuteCommandSync accounting")
    text += (f"\nbot outages (stream end -> next stream open): {outages['n']} outages, p50 {outages['p50_s']} s, "
             f"p99 {outages['p99_s']} s, longest {outages['max_s']} s; bots still down at the end: "
             f"{stats['still_down']}; claims at the end: {reclaimed}/{claimed}")
    text += f"\nstream endings seen by bots: {stats['ends']}"
    text += f"\nconsistency: {consistency}"
    text += "\n\n" + targets_table(checks)
    return {"params": {"replicas": ctx.options.replicas, "clients": ctx.options.clients,
                       "load_concurrency": ctx.options.load_concurrency},
            "connected": claimed, "reclaimed_after": reclaimed, "steps": steps, "rollout_s": round(rollout_s, 2),
            "accounting": accounting, "load_total": load.counts(), "outages": outages,
            "longest_outage_s": outages["max_s"], "worst_outages": stats["worst_outages"],
            "consistency": consistency, "not_acked": [e.describe(began) for e in load.endings if not e.acked],
            "replicas": stats.pop("replica_targets"),
            "loadgen": {k: v for k, v in stats.items() if k != "outages"}, "targets": checks, "table": text}
