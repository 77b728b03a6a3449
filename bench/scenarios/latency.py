"""latency: ExecuteCommandSync percentiles, same-replica vs cross-replica, at rising concurrency.

`same`: the caller asks the replica that holds the bot's stream; `cross`: it asks another one.
Closed loop: `c` callers each send a command to a random connected bot, wait for the ack, repeat,
for --duration seconds per step. Throughput is acked commands per second over the step.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .. import floors, profiling
from ..cluster import Cluster, owners, redis_calls, wait_claims
from ..commands import Commands, Ending
from ..context import Context, cluster, fleet, meter
from ..procs import Replica
from ..report import check, table, targets_table
from ..stats import summary_ms

WARMUP_SECONDS = 2.0
FLOOR_SECONDS = 3.0  # per floor (gRPC unary, Redis hop)
PROFILE_CONCURRENCY = 32


@dataclass(frozen=True)
class Plan:
    """Who owns which bot, so each call can pick the same or another replica."""

    clients: list[str]
    owner_target: dict[str, str]
    targets: list[str]

    def target(self, client_id: str, mode: str) -> str:
        home = self.owner_target[client_id]
        if mode == "same":
            return home
        return random.choice([t for t in self.targets if t != home])


async def build_plan(ctx: Context, c: Cluster, count: int) -> Plan:
    redis = c.redis_client()
    try:
        clients = [f"{ctx.prefix}{i:06d}" for i in range(count)]
        owned = await owners(redis, clients)
    finally:
        await redis.aclose()
    by_name = {r.name: r.target for r in c.live}
    mapping = {cid: by_name[name] for cid, name in owned.items() if name in by_name}
    return Plan([cid for cid in clients if cid in mapping], mapping, [r.target for r in c.live])


async def closed_loop(commands: Commands, plan: Plan, mode: str, concurrency: int,
                      seconds: float) -> tuple[list[Ending], float]:
    until = time.monotonic() + seconds
    endings: list[Ending] = []

    async def worker() -> None:
        while time.monotonic() < until:
            client_id = random.choice(plan.clients)
            endings.append(await commands.execute(plan.target(client_id, mode), client_id, timeout=10.0))

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return endings, time.monotonic() - began


def step_row(mode: str, concurrency: int, endings: list[Ending], wall: float, cpu: dict[str, float],
             redis_ops: Counter[str]) -> dict[str, Any]:
    acked = [e.seconds for e in endings if e.acked]
    kinds = Counter(e.kind for e in endings if not e.acked)
    redis_ops.pop("info", None)
    per_cmd = {k: round(v / max(1, len(endings)), 2) for k, v in redis_ops.most_common() if v}
    return {"mode": mode, "concurrency": concurrency, **summary_ms(acked),
            "redis_ops_per_cmd": round(sum(redis_ops.values()) / max(1, len(endings)), 2), "redis_ops": per_cmd,
            "acked_per_s": round(len(acked) / wall, 1), "failed": sum(kinds.values()), "failures": dict(kinds),
            "cpu": cpu, "cpu_replicas": round(sum(v for k, v in cpu.items() if k.startswith("r")), 2),
            "replica_cpu_ms_per_cmd": round(1000 * sum(v for k, v in cpu.items() if k.startswith("r"))
                                            / max(1, len(acked)) * wall, 2),
            "cpu_loadgen": cpu.get("loadgen", 0.0), "cpu_caller": cpu.get("caller", 0.0),
            "cpu_redis": cpu.get("redis", 0.0)}


async def profile_step(ctx: Context, commands: Commands, plan: Plan, replica: Replica,
                       seconds: float) -> dict[str, Any]:
    out = ctx.scratch("latency") / f"profile-{replica.name}.txt"
    spy = profiling.start(replica.pid, out, seconds + 1)
    if spy is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    await asyncio.sleep(0.5)
    endings, wall = await closed_loop(commands, plan, "cross", PROFILE_CONCURRENCY, seconds)
    await asyncio.to_thread(profiling.finish, spy)
    if not out.exists():
        return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
    kept = ctx.results_dir / f"latency-profile-{ctx.stamp}.txt"
    kept.write_bytes(out.read_bytes())
    acked = sum(1 for e in endings if e.acked)
    return {"replica": replica.name, "mode": "cross", "concurrency": PROFILE_CONCURRENCY,
            "acked_per_s_while_profiled": round(acked / wall, 1), "collapsed_stacks": str(kept),
            **profiling.summarize(out)}


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    async with cluster(ctx, "latency", opts.replicas) as c:
        async with fleet(ctx, [r.target for r in c.live]) as f:
            ctx.log(f"latency: connecting {opts.clients} bots")
            await f.connect(ctx.prefix, opts.clients)
            claimed = await wait_claims(c, ctx.prefix, opts.clients)
            plan = await build_plan(ctx, c, opts.clients)
            ctx.log(f"latency: {claimed} claims, {len(plan.clients)} bots routable; warming up")
            commands = Commands()
            redis = c.redis_client()
            try:
                await closed_loop(commands, plan, "cross", 8, WARMUP_SECONDS)
                assert c.redis is not None
                ctx.log("latency: measuring the gRPC and Redis floors")
                floor = await floors.measure(c.redis.url, FLOOR_SECONDS)
                rows = []
                for concurrency in opts.concurrency:
                    for mode in ("same", "cross"):
                        calls = await redis_calls(redis)
                        cpu = meter(c, f).start()
                        endings, wall = await closed_loop(commands, plan, mode, concurrency, opts.duration)
                        shares = cpu.stop()
                        calls = await redis_calls(redis) - calls
                        rows.append(step_row(mode, concurrency, endings, wall, shares, calls))
                        ctx.log(f"latency: {mode} c={concurrency}: p50 {rows[-1]['p50_ms']} ms, "
                                f"{rows[-1]['acked_per_s']} acked/s")
                profile = await profile_step(ctx, commands, plan, c.live[0], max(8.0, opts.duration)) \
                    if opts.profile else None
            finally:
                await commands.close()
                await redis.aclose()
            fleet_stats = await f.stats()
    return assemble(ctx, rows, claimed, fleet_stats, profile, floor)


def step(rows: list[dict[str, Any]], mode: str, concurrency: int) -> dict[str, Any]:
    return next(r for r in rows if r["mode"] == mode and r["concurrency"] == concurrency)


def ratio(rows: list[dict[str, Any]], concurrency: int, key: str) -> float:
    same, cross = step(rows, "same", concurrency), step(rows, "cross", concurrency)
    return round(cross[key] / same[key], 2) if same[key] else float("nan")


def floor_view(rows: list[dict[str, Any]], concurrency: int, floor: dict[str, Any]) -> dict[str, Any]:
    """The measured floors next to the c=1 figures: what the cross path adds beyond its two Redis hops, and
    the cross/same ratio a service with no code of its own on the cross path would still show."""
    same, cross = step(rows, "same", concurrency)["p50_ms"], step(rows, "cross", concurrency)["p50_ms"]
    unary, hop = floor["grpc_unary"]["p50_ms"], floor["redis_hop"]["p50_ms"]
    return {"grpc_unary_p50_ms": unary, "redis_hop_p50_ms": hop, "same_p50_ms": same, "cross_p50_ms": cross,
            "same_minus_unary_ms": round(same - unary, 3), "cross_minus_same_ms": round(cross - same, 3),
            "two_hops_ms": round(2 * hop, 3), "ratio_floor": round((same + 2 * hop) / same, 2) if same else None}


def floor_text(view: dict[str, Any]) -> str:
    return (f"floors (this run): bare grpc.aio unary call p50 {view['grpc_unary_p50_ms']} ms, redis-py pub/sub "
            f"hop p50 {view['redis_hop_p50_ms']} ms. Same-replica p50 is the unary floor + "
            f"{view['same_minus_unary_ms']} ms (one stream round trip and the service); cross adds "
            f"{view['cross_minus_same_ms']} ms, of which {view['two_hops_ms']} ms are its two Redis hops. "
            f"Cross/same ratio with zero service code on the cross path: {view['ratio_floor']}")


def assemble(ctx: Context, rows: list[dict[str, Any]], claimed: int, fleet_stats: dict[str, Any],
             profile: dict[str, Any] | None, floor: dict[str, Any]) -> dict[str, Any]:
    opts = ctx.options
    low = min(opts.concurrency)
    cross_low = step(rows, "cross", low)
    best = max(r["acked_per_s"] for r in rows)
    checks = [
        check(f"cross-replica p50 (c={low})", "<= 1.5 ms", cross_low["p50_ms"], cross_low["p50_ms"] <= 1.5),
        check(f"cross-replica p99 (c={low})", "<= 5 ms", cross_low["p99_ms"], cross_low["p99_ms"] <= 5),
        check(f"cross/same p50 ratio (c={low})", "<= 1.3", ratio(rows, low, "p50_ms"),
              ratio(rows, low, "p50_ms") <= 1.3),
        check("acked commands/s cluster-wide (best step)", ">= 3,000", best, best >= 3000),
    ]
    for r in rows:
        r["cross_same_p50_ratio"] = ratio(rows, r["concurrency"], "p50_ms")
    columns = ["mode", "concurrency", "n", "p50_ms", "p90_ms", "p99_ms", "max_ms", "acked_per_s", "failed",
               "cpu_replicas", "replica_cpu_ms_per_cmd", "redis_ops_per_cmd", "cpu_redis", "cpu_loadgen", "cpu_caller"]
    text = table(rows, columns, f"ExecuteCommandSync latency, {opts.replicas} replicas, {claimed} connected bots "
                                f"(cpu = cores used over the step)")
    text += "\n\n" + targets_table(checks)
    view = floor_view(rows, low, floor)
    text += "\n\n" + floor_text(view)
    if profile and "self" in profile:
        text += "\n\n" + table(profile["self"][:12], ["where", "samples", "pct"],
                               f"py-spy, replica {profile['replica']} (cross, c={profile['concurrency']}): self time")
        text += "\n\n" + table(profile["packages"][:10], ["where", "samples", "pct"], "self time by package")
        text += "\n\n" + table(profile["project_inclusive"][:15], ["where", "samples", "pct"],
                               "project functions, inclusive (apps/, config/)")
    return {"params": {"replicas": opts.replicas, "clients": opts.clients, "duration_s": opts.duration,
                       "concurrency": list(opts.concurrency), "database": ctx.database_kind},
            "connected": claimed, "steps": rows, "targets": checks, "floors": {**floor, "view": view},
            "loadgen": fleet_stats, "profile": profile, "table": text}
