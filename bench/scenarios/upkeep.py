"""upkeep: what idle streams cost the Redis bus, in Redis calls per second and bytes per client.

N idle bots (registered, then only a heartbeat every 30 s) on 3 replicas. Redis is sampled
(INFO commandstats, INFO memory, DBSIZE; summed over every master with --redis-url redis+cluster://)
with the replicas up and no bot (the base, over BASE_WINDOW s), then at each step of --clients once
all its bots hold a claim and a settling pause (--upkeep-settle) is over, at the start and the end
of a steady window (--upkeep-window):

- Redis calls per idle stream per second = calls in the window / window / streams, without the
  harness's own calls (INFO, DBSIZE); `net` also leaves out the base rate of the bot-less replicas.
  commandstats counts a Lua script's inner redis.call()s as well as the EVALSHA itself, and every
  command of a pipeline: calls, not round trips.
- Redis bytes per client = (used_memory at the window's end - used_memory of the base) / streams,
  and keys per client likewise from DBSIZE. `data_bytes_per_client` leaves out the growth of buffers
  (replication backlog, client buffers): bounded per server whatever the number of clients, they
  fill up with any writes, so on a cluster with replicas they add a fixed ~1 MB per master.

These are counts: they depend on the code, not on the machine's speed (as long as the bots keep
their streams: `reconnects` in the window must be 0).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from typing import Any

from ..cluster import Cluster, owner_pattern
from ..context import Context, cluster
from ..fleetctl import FleetProcess
from ..procs import CpuMeter
from ..redisbus import RedisBus, Sample, window_calls
from ..report import table

STARTUP_SETTLE = 10.0  # after the replicas are ready: their start-up writes are over
BASE_WINDOW = 30.0  # the bot-less replicas' own rate (6 ownership refresh rounds)
CONNECT_RATE = 1500.0  # new bots per second, over all load generator processes
CLAIM_TIMEOUT = 300.0


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit, for the harness and every child it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def run(ctx: Context) -> dict[str, Any]:
    nofile = raise_nofile()
    steps = sorted({s for s in ctx.options.client_steps if s > 0})
    fleets: list[FleetProcess] = []
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    async with cluster(ctx, "upkeep", ctx.options.replicas, redis_url=ctx.options.redis_url) as c:
        bus = await RedisBus(c.bus_url).open()
        try:
            ctx.log(f"upkeep: Redis nodes measured: {', '.join(n.name for n in bus.nodes)}")
            await asyncio.sleep(STARTUP_SETTLE)
            base = await measure(ctx, c, bus, fleets, 0, BASE_WINDOW)
            have = 0
            for step in steps:
                ctx.log(f"upkeep: growing to {step:,} idle bots")
                try:
                    grown = await grow(ctx, c, bus, fleets, have, step)
                except Exception as exc:  # the largest N that works is still a result
                    notes.append(f"growing to {step:,} failed: {type(exc).__name__}: {exc}")
                    ctx.log(f"upkeep: {notes[-1]}")
                    break
                have = step
                ctx.log(f"upkeep: {grown['connected']:,} bots connected, {grown['claims']:,} claims; "
                        f"settling {ctx.options.upkeep_settle:g} s, then a {ctx.options.upkeep_window:g} s window")
                await asyncio.sleep(ctx.options.upkeep_settle)
                row = await measure(ctx, c, bus, fleets, step, ctx.options.upkeep_window)
                row.update(grown)
                row["key_bytes"] = await bus.key_sizes(ctx.prefix)
                rows.append(row)
                if grown["connected"] < step:
                    notes.append(f"only {grown['connected']:,} of {step:,} bots connected")
                    break
        finally:
            await asyncio.gather(*(f.close() for f in fleets), return_exceptions=True)
            await bus.close()
    return assemble(ctx, base, rows, notes, nofile, bus)


async def grow(ctx: Context, c: Cluster, bus: RedisBus, fleets: list[FleetProcess], have: int,
               want: int) -> dict[str, Any]:
    """Bots have..want-1 connected, bot i on replica i % replicas and in load generator i // fleet_bots."""
    targets = [r.target for r in c.live]
    size = max(1, ctx.options.fleet_bots)
    while len(fleets) * size < want:
        process = FleetProcess(targets, channels=ctx.options.fleet_channels)
        fleets.append(await process.start())
    began = time.monotonic()
    parts = [(k, max(have, k * size), min(want, (k + 1) * size)) for k in range(len(fleets))]
    parts = [(k, lo, hi) for k, lo, hi in parts if hi > lo]
    rate = CONNECT_RATE / len(parts)
    answers = await asyncio.gather(*(fleets[k].connect(ctx.prefix, hi - lo, start=lo, rate=rate)
                                     for k, lo, hi in parts))
    connect_s = time.monotonic() - began
    claims = await bus.wait_keys(owner_pattern(ctx.prefix), want, CLAIM_TIMEOUT)
    stats = [await f.stats() for f in fleets]
    return {"connected": sum(s["connected"] for s in stats), "claims": claims,
            "connect_s": round(connect_s, 1), "claimed_s": round(time.monotonic() - began, 1),
            "connect_answers": answers}


async def measure(ctx: Context, c: Cluster, bus: RedisBus, fleets: list[FleetProcess], streams: int,
                  seconds: float) -> dict[str, Any]:
    """One steady window: Redis sampled at its start and end, CPU of every process over it."""
    replicas = {r.name: r.pid for r in c.live}
    pids = dict(replicas)
    if c.redis is not None and c.redis.process is not None:
        pids["redis"] = c.redis.process.pid
    pids.update({f"loadgen{k}": f.pid for k, f in enumerate(fleets)})
    before = [await f.stats() for f in fleets]
    meter = CpuMeter(pids).start()
    start = await bus.sample()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    end = await bus.sample()
    window = time.monotonic() - t0
    cpu = meter.stop()
    after = [await f.stats() for f in fleets]
    calls, own = window_calls(start, end)
    reconnects = sum(a["connects"] - b["connects"] for a, b in zip(after, before, strict=True))
    connected = sum(a["connected"] for a in after)
    ends: Counter[str] = Counter()
    for a in after:
        ends.update(a["ends"])
    return {"streams": connected if fleets else 0, "requested": streams, "window_s": round(window, 2),
            "calls": dict(calls.most_common()), "own_calls": dict(own), "start": sample_dict(start),
            "end": sample_dict(end), "reconnects": reconnects,
            "stream_ends": dict(ends), "cpu": cpu, "cpu_replicas": round(sum(cpu[k] for k in replicas), 3),
            "cpu_redis": cpu.get("redis", float("nan")),
            "cpu_loadgen": round(sum(v for k, v in cpu.items() if k.startswith("loadgen")), 3)}


def sample_dict(s: Sample) -> dict[str, Any]:
    return {"used_memory": s.used_memory, "buffers": s.buffers, "keys": s.keys, "calls_total": sum(s.calls.values()),
            "per_node": s.per_node}


def derive(row: dict[str, Any], base: dict[str, Any]) -> None:
    """The per-stream figures of a step, against the bot-less base."""
    streams = row["streams"]
    total = sum(row["calls"].values())
    row["redis_calls_s"] = round(total / row["window_s"], 1)
    base_rate = sum(base["calls"].values()) / base["window_s"]
    row["calls_per_stream_s"] = round(total / row["window_s"] / streams, 4) if streams else float("nan")
    row["net_per_stream_s"] = round((total / row["window_s"] - base_rate) / streams, 4) if streams else float("nan")
    used = row["end"]["used_memory"] - base["end"]["used_memory"]
    keys = row["end"]["keys"] - base["end"]["keys"]
    row["used_memory_mb"] = round(row["end"]["used_memory"] / 2**20, 1)
    row["bytes_per_client"] = round(used / streams, 1) if streams else float("nan")
    data = used - (row["end"]["buffers"] - base["end"]["buffers"])
    row["data_bytes_per_client"] = round(data / streams, 1) if streams else float("nan")
    row["keys"] = row["end"]["keys"]
    row["keys_per_client"] = round(keys / streams, 3) if streams else float("nan")


def assemble(ctx: Context, base: dict[str, Any], rows: list[dict[str, Any]], notes: list[str],
             nofile: tuple[int, int], bus: RedisBus) -> dict[str, Any]:
    base["redis_calls_s"] = round(sum(base["calls"].values()) / base["window_s"], 1)
    base["used_memory_mb"] = round(base["end"]["used_memory"] / 2**20, 1)
    base["keys"] = base["end"]["keys"]
    for row in rows:
        derive(row, base)
    columns = ["streams", "window_s", "redis_calls_s", "calls_per_stream_s", "net_per_stream_s", "used_memory_mb",
               "bytes_per_client", "data_bytes_per_client", "keys", "keys_per_client", "reconnects", "cpu_replicas", "cpu_redis",
               "cpu_loadgen"]
    mode = "Redis Cluster, masters " if bus.cluster else "one redis-server "
    title = (f"idle streams on {ctx.options.replicas} replicas, {mode}{', '.join(n.name for n in bus.nodes)}; "
             f"heartbeat 30 s; the first row is the base (replicas up, no bot)")
    text = table([base, *rows], columns, title)
    commands = Counter[str]()
    for r in [base, *rows]:
        commands.update(r["calls"])
    breakdown = []
    for command, _ in commands.most_common():
        line: dict[str, Any] = {"command": command, "base /s": base["calls"].get(command, 0) / base["window_s"]}
        for r in rows:
            rate = r["calls"].get(command, 0) / r["window_s"]
            line[f"{r['streams']:,} /s"] = rate
            line[f"{r['streams']:,} /stream/s"] = rate / r["streams"] if r["streams"] else float("nan")
        breakdown.append(line)
    columns = list(breakdown[0]) if breakdown else ["command"]
    text += "\n\n" + table(breakdown, columns, "Redis calls by command (harness's own INFO/DBSIZE left out)")
    own = Counter[str]()
    for r in [base, *rows]:
        own.update(r["own_calls"])
    text += f"\nleft out as the measurement's own calls: {dict(own)}; RLIMIT_NOFILE {nofile[0]}/{nofile[1]}"
    if rows:
        kinds = "; ".join(f"{kind} {v['avg_bytes']:.0f} B" for kind, v in rows[-1]["key_bytes"].items())
        text += f"\nMEMORY USAGE per key (sampled at {rows[-1]['streams']:,}): {kinds}"
    if notes:
        text += "\n" + "\n".join(f"note: {n}" for n in notes)
    for r in rows:
        r.pop("connect_answers", None)
    return {"params": {"replicas": ctx.options.replicas, "steps": list(ctx.options.client_steps),
                       "window_s": ctx.options.upkeep_window, "settle_s": ctx.options.upkeep_settle,
                       "base_window_s": BASE_WINDOW, "fleet_bots": ctx.options.fleet_bots,
                       "fleet_channels": ctx.options.fleet_channels, "redis_url": bus.url,
                       "redis_nodes": [n.name for n in bus.nodes], "rlimit_nofile": list(nofile)},
            "base": base, "steps": rows, "notes": notes, "table": text}
