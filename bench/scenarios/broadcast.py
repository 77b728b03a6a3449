"""broadcast: pause every bot of a fleet over the replicas with ONE BroadcastCommand, against one
ExecuteCommandSync per bot (32 in flight) on the same fleet in the same run.

For each fleet size in --clients (e.g. 1000,3000; bots added to one fleet step by step) the
harness sends BROADCASTS broadcasts (selector all_connected, a pause the bench bots ack at once) and
times each from the call to its summary; every bot must be acked. Redis calls per broadcast come from
INFO commandstats around one broadcast (the harness' own INFO call excluded). Then the same fleet gets
one ExecuteCommandSync per bot, 32 in flight, round-robin over the replicas: the time until the last ack.
The floor, in the same run: as many bare relays (bench/relay.py) with a second fleet of the same size,
a bare broadcast alternating with the product's (A B A B); `vs_bare` is product p50 / bare p50.
CPU seconds per broadcast are reported per process (replicas, Redis, the load generator's bots, the
caller), so a slow broadcast shows whose work it waited for. With --profile, py-spy samples the
caller's replica and the load generator during extra broadcasts at the largest size.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import grpc

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc

from .. import profiling
from ..cluster import RoundTrips, wait_claims
from ..commands import CALLER_OPTIONS, Commands
from ..context import Context, cluster, fleet, meter
from ..procs import OPERATOR_TOKEN
from ..relay import PREFIX as RELAY_PREFIX
from ..relay import relays
from ..report import check, table, targets_table
from ..stats import summary_s

BROADCASTS = 5  # per fleet size
IN_FLIGHT = 32  # the per-bot baseline's concurrency
PROFILED = 6.0  # seconds of broadcasts under py-spy (--profile)


async def one_broadcast(stub: pb2_grpc.CryptoStreamingServiceStub, n: int) -> tuple[float, pb2.BroadcastSummary]:
    request = pb2.BroadcastCommandRequest(
        selector=pb2.ClientSelector(all_connected=True),
        command=pb2.DjangoCommand(pause=pb2.PauseClientCommand(reason=f"bench broadcast {n}")))
    began = time.perf_counter()
    summary = pb2.BroadcastSummary()
    async for result in stub.BroadcastCommand(request, metadata=(("authorization", f"Bearer {OPERATOR_TOKEN}"),),
                                              timeout=60):
        if result.WhichOneof("result") == "summary":
            summary = result.summary
    return time.perf_counter() - began, summary


async def per_bot(commands: Commands, targets: list[str], clients: list[str]) -> tuple[float, int]:
    """Seconds until every bot acked one ExecuteCommandSync, IN_FLIGHT at a time; and how many acked."""
    queue = list(clients)
    acked = 0

    async def worker(i: int) -> None:
        nonlocal acked
        while queue:
            client_id = queue.pop()
            ending = await commands.execute(targets[(i + len(queue)) % len(targets)], client_id, timeout=30)
            acked += ending.acked

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(IN_FLIGHT)))
    return time.perf_counter() - began, acked


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    steps = sorted(set(opts.client_steps))
    rows: list[dict[str, Any]] = []
    bare_prefix = ctx.prefix + "bare-"
    async with cluster(ctx, "broadcast", opts.replicas) as c, relays(c.bus_url, opts.replicas) as bare:
        targets = [r.target for r in c.live]
        async with fleet(ctx, targets) as f, fleet(ctx, [r.target for r in bare]) as bare_fleet:
            channel = grpc.aio.insecure_channel(targets[0], options=CALLER_OPTIONS)
            bare_channel = grpc.aio.insecure_channel(bare[0].target, options=CALLER_OPTIONS)
            stub = pb2_grpc.CryptoStreamingServiceStub(channel)
            bare_stub = pb2_grpc.CryptoStreamingServiceStub(bare_channel)
            commands = Commands()
            connected = 0
            profiles: dict[str, Any] = {}
            try:
                for size in steps:
                    await f.connect(ctx.prefix, size - connected, start=connected)
                    await bare_fleet.connect(bare_prefix, size - connected, start=connected)
                    connected = size
                    claimed = await wait_claims(c, ctx.prefix, size)
                    await wait_claims(c, bare_prefix, size, key_prefix=RELAY_PREFIX)
                    await one_broadcast(stub, -1)  # warm-up: channels, Lua scripts loaded
                    await one_broadcast(bare_stub, -1)
                    times, bare_times, summaries, cpu = [], [], [], Counter[str]()
                    for n in range(BROADCASTS):  # product and bare relay alternating, A B A B
                        async with RoundTrips(c.bus_url) as watch:
                            used = meter(c, f).start()
                            seconds, summary = await one_broadcast(stub, n)
                            cpu.update({k: v * seconds for k, v in used.stop().items()})
                        times.append(seconds)
                        summaries.append((summary.targeted, summary.acked, len(watch.calls)))
                        seconds, summary = await one_broadcast(bare_stub, n)
                        bare_times.append(seconds if summary.acked == size else float("inf"))
                    ctx.log(f"broadcast: {size} bots, one broadcast p50 {median(times):.3f} s, "
                            f"bare relay {median(bare_times):.3f} s")
                    baseline_s, baseline_acked = await per_bot(
                        commands, targets, [f"{ctx.prefix}{i:06d}" for i in range(size)])
                    spread = summary_s(times)
                    rows.append({"bots": size, "claimed": claimed, "broadcasts": BROADCASTS,
                                 "targeted": min(s[0] for s in summaries), "acked_min": min(s[1] for s in summaries),
                                 "p50_s": spread["p50_s"], "p99_s": spread["p99_s"],
                                 "bare_p50_s": round(median(bare_times), 3),
                                 "vs_bare": round(spread["p50_s"] / median(bare_times), 2),
                                 "redis_calls": sorted(s[2] for s in summaries)[len(summaries) // 2],
                                 "cpu_s_per_broadcast": {k: round(v / BROADCASTS, 3) for k, v in sorted(cpu.items())},
                                 "per_bot_rpcs_s": round(baseline_s, 3), "per_bot_acked": baseline_acked,
                                 "speedup": round(baseline_s / spread["p50_s"], 1) if spread["p50_s"] else None})
                if opts.profile:
                    profiles = await profile(ctx, stub, {"replica": c.live[0].pid, "other_replica": c.live[1].pid,
                                                         "loadgen": f.pid})
            finally:
                await commands.close()
                await channel.close()
                await bare_channel.close()
    result = assemble(ctx, rows)
    if opts.profile:
        result["profile"] = profiles
    return result


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


async def profile(ctx: Context, stub: pb2_grpc.CryptoStreamingServiceStub, pids: dict[str, int]) -> dict[str, Any]:
    """py-spy on the caller's replica and on the load generator during PROFILED broadcasts back to back."""
    outs = {name: ctx.scratch("broadcast") / f"profile-{name}.txt" for name in pids}
    spies = [profiling.start(pid, outs[name], PROFILED + 2) for name, pid in pids.items()]
    if None in spies:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    await asyncio.sleep(0.5)
    began = time.monotonic()
    n = 0
    while time.monotonic() - began < PROFILED:
        await one_broadcast(stub, 1000 + n)
        n += 1
    for spy in spies:
        await asyncio.to_thread(profiling.finish, spy)
    found: dict[str, Any] = {"broadcasts": n}
    for name, out in outs.items():
        if out.exists():
            kept = ctx.results_dir / f"broadcast-profile-{name}-{ctx.stamp}.txt"
            kept.write_bytes(out.read_bytes())
            found[name] = {"collapsed_stacks": str(kept), **profiling.summarize(out)}
    return found


def assemble(ctx: Context, rows: list[dict[str, Any]]) -> dict[str, Any]:
    checks = []
    for r in rows:
        checks.append(check(f"{r['bots']} bots: every bot acked in every broadcast", f"{r['bots']}",
                            r["acked_min"], r["acked_min"] == r["bots"]))
        if r["bots"] >= 3000:
            checks.append(check(f"{r['bots']} bots: one broadcast, all acked (p50)", "< 0.5 s", r["p50_s"],
                                r["p50_s"] < 0.5))
        checks.append(check(f"{r['bots']} bots: faster than one ExecuteCommandSync per bot", ">= 10x",
                            r["speedup"], (r["speedup"] or 0) >= 10))
    text = table(rows, ["bots", "claimed", "broadcasts", "targeted", "acked_min", "p50_s", "p99_s", "bare_p50_s",
                        "vs_bare", "redis_calls",
                        "per_bot_rpcs_s", "per_bot_acked", "speedup"],
                 f"broadcast: pause all over {ctx.options.replicas} replicas vs one RPC per bot ({IN_FLIGHT} in flight)")
    return {"params": {"replicas": ctx.options.replicas, "broadcasts": BROADCASTS, "in_flight": IN_FLIGHT},
            "rows": rows, "targets": checks, "table": text + "\n\n" + targets_table(checks)}
