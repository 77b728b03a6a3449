"""memory: RSS per idle stream on one replica at rising stream counts.

VmRSS of the replica process (/proc/<pid>/status) is read after a warm-up of WARM streams (first
use of the ORM, gRPC and Redis paths allocates once) and again at each step once the replica is
quiet (connect-time writes done); per-stream = (RSS(step) - RSS(warm)) / (step - WARM).
Bots heartbeat every 30 s as real bots do; nothing else flows. Measured once per gRPC transport
(--memory-transports): the default HTTP/2 server, and "ph2_server" (GRPC_EXPERIMENTS, opt-in).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..cluster import Cluster, wait_claims
from ..context import Context, cluster, fleet
from ..fleetctl import FleetProcess
from ..procs import CpuMeter, Replica, rss_kb
from ..report import check, table, targets_table

WARM = 100
QUIET_CORES = 0.05  # idle: done
BUSY_CORES = 0.6  # below this with a flat RSS: only heartbeat upkeep is left
FLAT_KB = 1024
QUIET_TIMEOUT = 90.0
DEFAULT = "default"  # the transport gRPC uses without GRPC_EXPERIMENTS


async def quiet(replica: Replica, timeout: float = QUIET_TIMEOUT) -> float:
    """Wait until connect-time work is over: the replica idles, or its RSS stays flat (within FLAT_KB)
    for 3 s while it uses less than BUSY_CORES (10k bots heartbeating keep it slightly busy); seconds waited."""
    began = time.monotonic()
    history = [rss_kb(replica.pid)]
    while time.monotonic() - began < timeout:
        meter = CpuMeter({"r": replica.pid}).start()
        await asyncio.sleep(1.0)
        cores = meter.stop()["r"]
        history.append(rss_kb(replica.pid))
        flat = len(history) >= 4 and max(history[-4:]) - min(history[-4:]) <= FLAT_KB
        if cores < QUIET_CORES or (flat and cores < BUSY_CORES):
            break
    return time.monotonic() - began


async def grow_to(ctx: Context, c: Cluster, f: FleetProcess, have: int, want: int) -> dict[str, Any]:
    began = time.monotonic()
    answer = await f.connect(ctx.prefix, want - have, start=have, rate=1000.0)
    claimed = await wait_claims(c, ctx.prefix, want, timeout=180)
    attached_s = time.monotonic() - began
    settle_s = await quiet(c.live[0])
    return {"streams": claimed, "requested": want, "connect_s": answer["seconds"], "attached_s": round(attached_s, 2),
            "settle_s": round(settle_s, 1), "rss_kb": rss_kb(c.live[0].pid)}


async def run(ctx: Context) -> dict[str, Any]:
    variants = [await measure(ctx, transport) for transport in ctx.options.memory_transports]
    return assemble(variants)


async def measure(ctx: Context, transport: str) -> dict[str, Any]:
    """One replica grown to each step; `transport` is a GRPC_EXPERIMENTS value ("default": none)."""
    steps = sorted(s for s in ctx.options.memory_steps if s > WARM)
    env = {} if transport == DEFAULT else {"GRPC_EXPERIMENTS": transport}
    rows: list[dict[str, Any]] = []
    async with cluster(ctx, f"memory-{transport}", 1, **env) as c:
        replica = c.live[0]
        await quiet(replica)
        empty_kb = rss_kb(replica.pid)
        async with fleet(ctx, [replica.target]) as f:
            warm = await grow_to(ctx, c, f, 0, WARM)
            have = warm["streams"]
            for step in steps:
                ctx.log(f"memory ({transport}): growing to {step} streams")
                rows.append(await grow_to(ctx, c, f, have, step))
                have = rows[-1]["streams"]
                rows[-1]["fleet_rss_kb"] = rss_kb(f.pid)
            fleet_stats = await f.stats()
    for r in rows:
        r["transport"] = transport
        r["per_stream_kb"] = round((r["rss_kb"] - warm["rss_kb"]) / max(1, r["streams"] - warm["streams"]), 2)
        r["rss_mb"] = round(r["rss_kb"] / 1024, 1)
    return {"transport": transport, "empty_rss_kb": empty_kb, "warm": warm, "steps": rows,
            "loadgen": {k: v for k, v in fleet_stats.items() if k != "outages"}}


def assemble(variants: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for v in variants for r in v["steps"]]
    checks = [check(f"RSS per idle stream at {r['streams']:,} ({r['transport']})", "<= 20 KB", r["per_stream_kb"],
                    r["per_stream_kb"] <= 20) for r in rows]
    columns = ["transport", "streams", "rss_mb", "per_stream_kb", "connect_s", "attached_s", "settle_s"]
    bases = "; ".join(f"{v['transport']}: {v['empty_rss_kb'] / 1024:.1f} MB with no stream, "
                      f"{v['warm']['rss_kb'] / 1024:.1f} MB with {v['warm']['streams']} (the base)" for v in variants)
    text = table(rows, columns, f"replica RSS ({bases})")
    text += "\n\n" + targets_table(checks)
    return {"params": {"warm": WARM, "steps": sorted({r["requested"] for r in rows}),
                       "transports": [v["transport"] for v in variants]},
            "variants": variants, "targets": checks, "table": text}
