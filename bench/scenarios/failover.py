"""failover: kill -9 one replica under command load; how long until all its bots are routable again?

Bots reconnect to another replica after a jittered 50-250 ms pause. Right after the kill the
harness sends each of the dead replica's bots an ExecuteCommandSync through a live replica and
repeats until one is acked (each bounded): a bot is "routable again" when that first ack returns.
Meanwhile --load-concurrency callers keep sending commands to random bots through live replicas;
their endings are counted (acked / explicit error / lost), and the bots' own record of what they
received shows whether a command reported as failed was delivered after all.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from ..cluster import wait_claims
from ..commands import Commands, Ending, Load, account
from ..context import Context, cluster, fleet
from ..report import check, table, targets_table
from ..stats import summary_s
from .latency import build_plan

STEADY_SECONDS = 3.0
AFTER_SECONDS = 3.0
PROBE_LIMIT = 20.0


async def probe(commands: Commands, client_id: str, targets: list[str], since: float) -> dict[str, Any]:
    """Send until acked: seconds from `since` to the first ack, and how the earlier attempts ended."""
    failures: Counter[str] = Counter()
    failed: list[dict[str, object]] = []
    while time.monotonic() - since < PROBE_LIMIT:
        ending = await commands.execute(random.choice(targets), client_id, timeout=5.0)
        if ending.acked:
            return {"client": client_id, "seconds": ending.finished - since, "failures": failures,
                    "failed": failed}
        failures[ending.kind] += 1
        failed.append(ending.describe(since))
        await asyncio.sleep(0.05)
    return {"client": client_id, "seconds": None, "failures": failures, "failed": failed}


def delivery_check(endings: list[Ending], received: set[str]) -> dict[str, int]:
    """Acked but never seen by a bot (impossible if correct), and failed-but-delivered."""
    return {"acked_not_received": sum(1 for e in endings if e.acked and e.command_id not in received),
            "failed_but_delivered": sum(1 for e in endings if not e.acked and e.command_id in received)}


def window_counts(endings: list[Ending], start: float, end: float) -> dict[str, int]:
    """Calls that were in flight at some point of [start, end]."""
    inside = [e for e in endings if e.finished >= start and e.finished - e.seconds <= end]
    return dict(Counter(e.kind for e in inside))


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    async with cluster(ctx, "failover", opts.replicas) as c:
        targets = [r.target for r in c.live]
        async with fleet(ctx, targets, track=True) as f:
            await f.connect(ctx.prefix, opts.clients)
            claimed = await wait_claims(c, ctx.prefix, opts.clients)
            plan = await build_plan(ctx, c, opts.clients)
            victim = c.live[0]
            victims = [cid for cid in plan.clients if plan.owner_target[cid] == victim.target]
            serving = list(targets)
            commands = Commands()
            load = Load(commands, plan.clients, lambda: serving)
            try:
                load.start(opts.load_concurrency)
                await asyncio.sleep(STEADY_SECONDS)
                ctx.log(f"failover: kill -9 {victim.name} holding {len(victims)} of {claimed} bots")
                killed_at = time.monotonic()
                victim.kill9()
                serving.remove(victim.target)
                await f.set_targets(serving)
                probes = await asyncio.gather(*(probe(commands, cid, list(serving), killed_at) for cid in victims))
                recovered_at = time.monotonic()
                await asyncio.sleep(AFTER_SECONDS)
                await load.stop()
                reclaimed = await wait_claims(c, ctx.prefix, opts.clients, timeout=30)
            finally:
                await commands.close()
            stats = await f.stats()
            received = set((await f.request("received_ids"))["ids"])
        stats["replica_targets"] = {r.target: r.name for r in c.replicas}
    return assemble(ctx, claimed, reclaimed, victim.name, probes, load, killed_at, recovered_at, stats, received)


def assemble(ctx: Context, claimed: int, reclaimed: int, victim: str, probes: list[dict[str, Any]], load: Load,
             killed_at: float, recovered_at: float, stats: dict[str, Any], received: set[str]) -> dict[str, Any]:
    times = [p["seconds"] for p in probes if p["seconds"] is not None]
    never = [p["client"] for p in probes if p["seconds"] is None]
    routable = summary_s(times)
    failover_s = max(times) if times and not never else float("nan")
    first_attempts: Counter[str] = Counter()
    for p in probes:
        first_attempts.update(p["failures"])
    during = window_counts(load.endings, killed_at, recovered_at)
    rows = [{"what": "bots of the killed replica", "count": len(probes)},
            {"what": "routable again: p50 s", "count": routable["p50_s"]},
            {"what": "routable again: p99 s", "count": routable["p99_s"]},
            {"what": "routable again: max s (failover time)", "count": failover_s},
            {"what": "never routable within 20 s", "count": len(never)},
            {"what": "bot-side reconnect outage max s", "count": max(stats["outages"], default=float("nan"))}]
    load_rows = [{"calls": "during failover", **totals(during)}, {"calls": "whole run", **totals(load.counts())}]
    checks = [check("failover: kill -9 until all its bots are routable", "<= 2 s", failover_s, failover_s <= 2.0)]
    consistency = delivery_check(load.endings, received)
    text = table(rows, ["what", "count"], f"failover: kill -9 of {victim} ({claimed} bots on {ctx.options.replicas} "
                                           f"replicas, {ctx.options.load_concurrency} commands in flight)")
    text += "\n\n" + table(load_rows, ["calls", "acked", "explicit_error", "lost", "kinds"],
                           "background ExecuteCommandSync load")
    text += f"\nprobe attempts before the first ack: {dict(first_attempts) or 'none'}"
    text += f"\nconsistency: {consistency}"
    text += "\n\n" + targets_table(checks)
    return {"params": {"replicas": ctx.options.replicas, "clients": ctx.options.clients,
                       "load_concurrency": ctx.options.load_concurrency},
            "connected": claimed, "reclaimed_after": reclaimed, "victim": victim, "victim_bots": len(probes),
            "routable": routable, "failover_s": failover_s, "never_routable": never,
            "probe_failures_before_ack": dict(first_attempts), "load_during": during, "load_total": load.counts(),
            "consistency": consistency,
            "load_not_acked": [e.describe(killed_at) for e in load.endings if not e.acked],
            "probe_not_acked": [f for p in probes for f in p["failed"]], "replicas": stats.pop("replica_targets"),
            "loadgen": {k: v for k, v in stats.items() if k != "outages"},
            "outages": summary_s(stats["outages"]), "targets": checks, "table": text}


def totals(kinds: dict[str, int]) -> dict[str, Any]:
    out: Counter[str] = Counter({"acked": 0, "explicit_error": 0, "lost": 0})
    for kind, n in kinds.items():
        out[account(kind)] += n
    return {**out, "kinds": ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))}
