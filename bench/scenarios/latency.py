"""latency: ExecuteCommandSync percentiles, same-replica vs cross-replica, at rising concurrency, against
a bare relay in the same run (#17).

`same`: the caller asks the replica that holds the bot's stream; `cross`: it asks another one.
Closed loop: `c` callers each send a command to a random connected bot, wait for the ack, repeat,
for --duration seconds per step. Throughput is acked commands per second over the step.

The product runs with every feature on at its defaults (CRYPTO_AUTH on: a key per bot and the operator
token on every call; the journal, metrics, INFO logs,
Centrifugo publishing to a fake in its own process; the database from --database-url). Next to it run as
many bare relays (bench/relay.py) with their own fleet of the same size from a second load generator;
each step alternates product and relay REPEATS times (A B A B) and every figure is also given as a
ratio product / relay, with replica CPU per acked command for both.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import floors, profiling
from ..cluster import KEY_PREFIX, Cluster, owners, redis_calls, wait_claims
from ..commands import Commands, Ending
from ..context import Context, cluster, fleet, meter
from ..db import store_keys
from ..fleet import bot_key
from ..procs import CpuMeter, FakeCentrifugoProcess, Replica
from ..relay import PREFIX as RELAY_PREFIX
from ..relay import RelayProcess, relays
from ..report import check, table, targets_table
from ..stats import summary_ms

WARMUP_SECONDS = 2.0
FLOOR_SECONDS = 3.0  # per floor (gRPC unary, Redis hop)
PROFILE_CONCURRENCY = 32
REPEATS = 2  # each step: product and relay alternating, A B A B, --duration split between the turns


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


async def build_plan(ctx: Context, c: Cluster, count: int, prefix: str = "",
                     holders: Sequence[Replica | RelayProcess] | None = None, key_prefix: str = KEY_PREFIX) -> Plan:
    """Who holds each of the `count` bots named `prefix`NNNNNN (default: the run's prefix, on the cluster's
    live replicas); the bare relays' bots: their prefix, the relays and RELAY_PREFIX's owner keys."""
    redis = c.redis_client()
    holders = c.live if holders is None else holders
    try:
        clients = [f"{prefix or ctx.prefix}{i:06d}" for i in range(count)]
        owned = await owners(redis, clients, key_prefix=key_prefix)
    finally:
        await redis.aclose()
    by_name = {h.name: h.target for h in holders}
    mapping = {cid: by_name[name] for cid, name in owned.items() if name in by_name}
    return Plan([cid for cid in clients if cid in mapping], mapping, [h.target for h in holders])


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
             redis_ops: Counter[str], system: str = "product") -> dict[str, Any]:
    """One step's figures; `cpu` is cores used per process over `wall` (replicas named r1.. or relay-1..)."""
    acked = [e.seconds for e in endings if e.acked]
    replicas = sum(v for k, v in cpu.items() if k not in ("redis", "loadgen", "caller"))
    kinds = Counter(e.kind for e in endings if not e.acked)
    redis_ops.pop("info", None)
    per_cmd = {k: round(v / max(1, len(endings)), 2) for k, v in redis_ops.most_common() if v}
    return {"system": system, "mode": mode, "concurrency": concurrency, **summary_ms(acked),
            "redis_ops_per_cmd": round(sum(redis_ops.values()) / max(1, len(endings)), 2), "redis_ops": per_cmd,
            "acked_per_s": round(len(acked) / wall, 1), "failed": sum(kinds.values()), "failures": dict(kinds),
            "cpu": cpu, "cpu_replicas": round(replicas, 2),
            "replica_cpu_ms_per_cmd": round(1000 * replicas / max(1, len(acked)) * wall, 3),
            "cpu_loadgen": cpu.get("loadgen", 0.0), "cpu_caller": cpu.get("caller", 0.0),
            "cpu_redis": cpu.get("redis", 0.0)}


async def profile_step(ctx: Context, commands: Commands, plan: Plan, replica: Replica,
                       seconds: float, mode: str = "cross", system: str = "product") -> dict[str, Any]:
    """py-spy one replica (or bare relay) through a step; busy_ms_per_cmd compares the two sides."""
    out = ctx.scratch("latency") / f"profile-{system}-{replica.name}-{mode}.txt"
    spy = profiling.start(replica.pid, out, seconds + 1, native=ctx.options.profile_native)
    if spy is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    await asyncio.sleep(0.5)
    endings, wall = await closed_loop(commands, plan, mode, PROFILE_CONCURRENCY, seconds)
    await asyncio.to_thread(profiling.finish, spy)
    if not out.exists():
        return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
    kept = ctx.results_dir / f"latency-profile-{system}-{mode}-{ctx.stamp}.txt"
    kept.write_bytes(out.read_bytes())
    acked = sum(1 for e in endings if e.acked)
    found = profiling.summarize(out)
    return {"system": system, "replica": replica.name, "mode": mode, "concurrency": PROFILE_CONCURRENCY,
            "acked_per_s_while_profiled": round(acked / wall, 1), "collapsed_stacks": str(kept),
            "busy_ms_per_cmd": round(found["busy_samples"] * 1000 / profiling.RATE / max(1, acked), 3), **found}


async def measure(commands: Commands, plan: Plan, mode: str, concurrency: int, seconds: float, cpu: CpuMeter,
                  redis: Any) -> tuple[list[Ending], float, dict[str, float], Counter[str]]:
    calls = await redis_calls(redis)
    cpu.start()
    endings, wall = await closed_loop(commands, plan, mode, concurrency, seconds)
    shares = cpu.stop()
    return endings, wall, shares, await redis_calls(redis) - calls


def pooled(runs: list[tuple[list[Ending], float, dict[str, float], Counter[str]]]
           ) -> tuple[list[Ending], float, dict[str, float], Counter[str]]:
    """A step measured in several turns, as one: endings and walls added, CPU shares weighted by wall."""
    endings = [e for run in runs for e in run[0]]
    wall = sum(run[1] for run in runs)
    names = runs[0][2].keys()
    cpu = {k: round(sum(run[2][k] * run[1] for run in runs) / wall, 3) for k in names}
    calls: Counter[str] = Counter()
    for run in runs:
        calls.update(run[3])
    return endings, wall, cpu, calls


def features_env(fake: FakeCentrifugoProcess, given: dict[str, str]) -> dict[str, str]:
    """Every feature on, at its defaults: what #17 compares with the bare relay. A feature set with --env
    keeps that value (e.g. --env LOG_LEVEL=WARNING measures what INFO logs cost)."""
    features = {"CRYPTO_AUTH": "on", "LOG_LEVEL": "INFO", "METRICS_PORT": "auto", "CENTRIFUGO_API_URL": fake.url,
                "CENTRIFUGO_API_KEY": fake.api_key}
    return {k: v for k, v in features.items() if k not in given}


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    fake = await FakeCentrifugoProcess().start()
    bare_prefix = ctx.prefix + "bare-"
    try:
        async with cluster(ctx, "latency", opts.replicas, **features_env(fake, dict(opts.replica_env))) as c, \
                relays(c.bus_url, opts.replicas) as bare:
            secret = uuid.uuid4().hex  # every product bot gets its own API key (bot auth on)
            await store_keys(c.database_url, [(cid, bot_key(secret, cid))
                                              for cid in (f"{ctx.prefix}{i:06d}" for i in range(opts.clients))])
            async with fleet(ctx, [r.target for r in c.live], key_secret=secret) as f, \
                    fleet(ctx, [r.target for r in bare]) as bf:
                ctx.log(f"latency: connecting {opts.clients} bots to the product and as many to the bare relays")
                await f.connect(ctx.prefix, opts.clients)
                await bf.connect(bare_prefix, opts.clients)
                claimed = await wait_claims(c, ctx.prefix, opts.clients)
                await wait_claims(c, bare_prefix, opts.clients, key_prefix=RELAY_PREFIX)
                plan = await build_plan(ctx, c, opts.clients)
                bare_plan = await build_plan(ctx, c, opts.clients, bare_prefix, bare, RELAY_PREFIX)
                ctx.log(f"latency: {claimed} claims, {len(plan.clients)} bots routable "
                        f"({len(bare_plan.clients)} on the relays); warming up")
                commands = Commands(caller_ids=False)  # as an outside client that leaves command_id empty
                redis = c.redis_client()
                assert c.redis is not None and c.redis.process is not None
                product_cpu = meter(c, f)
                bare_cpu = CpuMeter({**{r.name: r.pid for r in bare}, "redis": c.redis.process.pid,
                                     "loadgen": bf.pid, "caller": os.getpid()})
                try:
                    await closed_loop(commands, plan, "cross", 8, WARMUP_SECONDS)
                    await closed_loop(commands, bare_plan, "cross", 8, WARMUP_SECONDS)
                    ctx.log("latency: measuring the gRPC and Redis floors")
                    floor = await floors.measure(c.redis.url, FLOOR_SECONDS)
                    rows, bare_rows = [], []
                    turn = opts.duration / REPEATS
                    for concurrency in opts.concurrency:
                        for mode in ("same", "cross"):
                            product_runs, bare_runs = [], []
                            for _ in range(REPEATS):  # A B A B
                                product_runs.append(await measure(commands, plan, mode, concurrency, turn,
                                                                  product_cpu, redis))
                                bare_runs.append(await measure(commands, bare_plan, mode, concurrency, turn,
                                                               bare_cpu, redis))
                            rows.append(step_row(mode, concurrency, *pooled(product_runs)))
                            bare_rows.append(step_row(mode, concurrency, *pooled(bare_runs), system="bare relay"))
                            ctx.log(f"latency: {mode} c={concurrency}: p50 {rows[-1]['p50_ms']} ms "
                                    f"(relay {bare_rows[-1]['p50_ms']}), {rows[-1]['acked_per_s']} acked/s "
                                    f"(relay {bare_rows[-1]['acked_per_s']})")
                    profile = {f"{system}-{mode}": await profile_step(ctx, commands, chosen, where,
                                                                      max(8.0, opts.duration), mode, system)
                               for mode in ("same", "cross")
                               for system, chosen, where in (("product", plan, c.live[0]),
                                                             ("bare relay", bare_plan, bare[0]))
                               } if opts.profile else None
                finally:
                    await commands.close()
                    await redis.aclose()
                fleet_stats = await f.stats()
    finally:
        await fake.stop()
    return assemble(ctx, rows, bare_rows, claimed, fleet_stats, profile, floor)


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


def ratios(rows: list[dict[str, Any]], bare_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Product / bare relay for every step (latency and CPU: lower is better; acked/s: higher is)."""
    out = []
    for r, b in zip(rows, bare_rows, strict=True):
        def over(key: str) -> float | None:
            return round(r[key] / b[key], 2) if b.get(key) else None
        out.append({"mode": r["mode"], "concurrency": r["concurrency"], "p50": over("p50_ms"), "p99": over("p99_ms"),
                    "acked_per_s": over("acked_per_s"), "cpu_per_cmd": over("replica_cpu_ms_per_cmd"),
                    "product_cpu_ms": r["replica_cpu_ms_per_cmd"], "relay_cpu_ms": b["replica_cpu_ms_per_cmd"]})
    return out


def ratio_checks(table_: list[dict[str, Any]], low: int, busy: int) -> list[dict[str, Any]]:
    """#17's figures: latency at the lowest concurrency, throughput and CPU at `busy` (32) in flight."""
    def at(mode: str, concurrency: int) -> dict[str, Any]:
        return next(r for r in table_ if r["mode"] == mode and r["concurrency"] == concurrency)

    def ok(value: float | None, test: Any) -> bool:
        return value is not None and test(value)

    cross, same, loaded = at("cross", low), at("same", low), at("cross", busy)
    return [
        check(f"cross-replica p50 / relay (c={low})", "<= 1.10", cross["p50"], ok(cross["p50"], lambda v: v <= 1.10)),
        check(f"cross-replica p99 / relay (c={low})", "<= 1.25", cross["p99"], ok(cross["p99"], lambda v: v <= 1.25)),
        check(f"same-replica p50 / relay (c={low})", "<= 1.10", same["p50"], ok(same["p50"], lambda v: v <= 1.10)),
        check(f"acked commands/s / relay (cross, c={busy})", ">= 0.90", loaded["acked_per_s"],
              ok(loaded["acked_per_s"], lambda v: v >= 0.90)),
        check(f"replica CPU per command / relay (cross, c={busy})", "<= 1.15", loaded["cpu_per_cmd"],
              ok(loaded["cpu_per_cmd"], lambda v: v <= 1.15)),
    ]


def assemble(ctx: Context, rows: list[dict[str, Any]], bare_rows: list[dict[str, Any]], claimed: int,
             fleet_stats: dict[str, Any], profile: dict[str, Any] | None, floor: dict[str, Any]) -> dict[str, Any]:
    opts = ctx.options
    low = min(opts.concurrency)
    busy = 32 if 32 in opts.concurrency else max(opts.concurrency)
    versus = ratios(rows, bare_rows)
    checks = ratio_checks(versus, low, busy)
    for r in rows:
        r["cross_same_p50_ratio"] = ratio(rows, r["concurrency"], "p50_ms")
    columns = ["system", "mode", "concurrency", "n", "p50_ms", "p90_ms", "p99_ms", "max_ms", "acked_per_s", "failed",
               "cpu_replicas", "replica_cpu_ms_per_cmd", "redis_ops_per_cmd", "cpu_redis", "cpu_loadgen", "cpu_caller"]
    merged = [row for pair in zip(rows, bare_rows, strict=True) for row in pair]
    text = table(merged, columns, f"ExecuteCommandSync latency, {opts.replicas} replicas (every feature on) and "
                                  f"{opts.replicas} bare relays, {claimed} connected bots each "
                                  f"(cpu = cores used over the step; A B A B)")
    text += "\n\n" + table(versus, ["mode", "concurrency", "p50", "p99", "acked_per_s", "cpu_per_cmd",
                                     "product_cpu_ms", "relay_cpu_ms"], "product / bare relay, same run")
    text += "\n\n" + targets_table(checks)
    view = floor_view(rows, low, floor)
    text += "\n\n" + floor_text(view)
    for found in (profile or {}).values():
        if "self" not in found:
            continue
        text += "\n\n" + table(found["self"][:12], ["where", "samples", "pct"],
                               f"py-spy, {found['system']} {found['replica']} ({found['mode']}, "
                               f"c={found['concurrency']}, {found['busy_ms_per_cmd']} busy ms per command): self time")
        text += "\n\n" + table(found["packages"][:10], ["where", "samples", "pct"], "self time by package")
        text += "\n\n" + table(found["project_inclusive"][:15], ["where", "samples", "pct"],
                               "project functions, inclusive (apps/, config/)")
    return {"params": {"replicas": opts.replicas, "clients": opts.clients, "duration_s": opts.duration,
                       "concurrency": list(opts.concurrency), "database": ctx.database_kind, "repeats": REPEATS},
            "connected": claimed, "steps": rows, "bare_relay_steps": bare_rows, "versus_relay": versus,
            "targets": checks, "floors": {**floor, "view": view}, "loadgen": fleet_stats, "profile": profile,
            "table": text}
