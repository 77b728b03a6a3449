"""instructions: ExecuteCommandSync cost in CPU instructions (callgrind Ir) per command, product vs bare relay.

Why: this machine's speed drifts 2-3x and CPU-time ratios move +-20 % run to run, so a change worth 1-5 %
is invisible in `latency`. The instructions a process executes hardly depend on what else the machine does
(what remains: work driven by the clock, e.g. the journal's 50 ms flush, shared by however many commands
came in meanwhile; see docs/benchmarks.md for the run-to-run spread).

Set-up as in `latency` (every feature on, a key per bot, the fake Centrifugo; `--env` applies), but with
2 replicas and 2 bare relays, each process under `valgrind --tool=callgrind` with instrumentation off
(start-up and warm-up run at valgrind's uninstrumented speed). Per concurrency (1, 8), mode (same, cross)
and side: instrumentation on in that side's two processes (`callgrind_control -i on`), --ir-commands
commands closed-loop (bots taken in turn), instrumentation off, dump, Ir summed over the side's
processes and divided by the acked commands. An idle window per side (instrumentation on, no commands,
as long as that side's average window, at least 10 s) gives the background Ir per second (lease beats,
timers, heartbeats); the corrected (`_net`) figures subtract idle Ir/s x the window's wall time.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, TypeVar

from ..cluster import wait_claims
from ..commands import Commands, Ending
from ..context import Context, cluster, fleet
from ..db import store_keys
from ..fleet import bot_key
from ..procs import FakeCentrifugoProcess
from ..relay import PREFIX as RELAY_PREFIX
from ..relay import relays
from ..report import table
from .latency import Plan, build_plan, features_env

REPLICAS = 2  # same = the replica holding the bot, cross = the other one
CONCURRENCY = (1, 8)
MODES = ("same", "cross")
WARMUP_COMMANDS = 200  # per side and mode, uninstrumented
IDLE_MIN_SECONDS = 10.0  # the idle window: that side's average window, at least this (periodic work averages out)
START_TIMEOUT = 600.0  # Django starting under valgrind takes a while on 2 cores
CALL_TIMEOUT = 30.0  # a command is slow while instrumented
T = TypeVar("T")


@dataclass(frozen=True)
class Side:
    name: str  # "product" or "relay"
    plan: Plan
    pids: list[int]


def valgrind(out_dir: Path) -> tuple[str, ...]:
    """Instrumentation off at start (--instr-atstart=no; --collect-atstart=no would leave collection off,
    which callgrind_control cannot switch on): start-up runs at valgrind's plain speed. A fixed hash seed:
    str hashes, so dict and set layouts, are the same every run."""
    binary = shutil.which("valgrind")
    if binary is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("valgrind (with callgrind_control) is not installed")
    return ("env", "PYTHONHASHSEED=0", binary, "-q", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/callgrind.%p")


async def callgrind_control(flag: str, pids: list[int]) -> None:
    process = await asyncio.create_subprocess_exec("callgrind_control", flag, *map(str, pids),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0 or output.count(b"OK") < len(pids):
        raise RuntimeError(f"callgrind_control {flag} {pids} failed: {output.decode(errors='replace')[-500:]}")


def dumps(out_dir: Path, pid: int) -> set[Path]:
    return set(out_dir.glob(f"callgrind.{pid}.*"))


def totals(path: Path) -> int | None:
    """The dump's `totals:` line (Ir); None while the file is still being written."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return None


async def dumped_ir(out_dir: Path, pids: list[int], before: dict[int, set[Path]]) -> int:
    """Dump every process and sum the Ir of each one's new dump file."""
    await callgrind_control("--dump", pids)
    total, until = 0, time.monotonic() + 60
    for pid in pids:
        while True:
            new = sorted(dumps(out_dir, pid) - before[pid])
            found = totals(new[-1]) if new else None
            if found is not None:
                total += found
                break
            if time.monotonic() > until:
                raise RuntimeError(f"no callgrind dump from pid {pid}")
            await asyncio.sleep(0.1)
    return total


async def instrumented(out_dir: Path, pids: list[int], work: Callable[[], Awaitable[T]]) -> tuple[T, int, float]:
    """Run `work` with instrumentation on in `pids`: its result, the Ir they executed, the wall seconds
    instrumentation was on."""
    before = {pid: dumps(out_dir, pid) for pid in pids}
    began = time.monotonic()
    await callgrind_control("--instr=on", pids)
    result = await work()
    await callgrind_control("--instr=off", pids)
    wall = time.monotonic() - began
    return result, await dumped_ir(out_dir, pids, before), wall


async def send(commands: Commands, plan: Plan, mode: str, concurrency: int, count: int) -> list[Ending]:
    """`count` commands closed-loop at `concurrency`, bots taken in turn (the same sequence every run)."""
    numbers = iter(range(count))
    endings: list[Ending] = []

    async def worker() -> None:
        for n in numbers:  # shared: each number is sent once
            client_id = plan.clients[n % len(plan.clients)]
            endings.append(await commands.execute(plan.target(client_id, mode), client_id, timeout=CALL_TIMEOUT))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return endings


async def run(ctx: Context) -> dict[str, Any]:
    opts = ctx.options
    out_dir = ctx.scratch("instructions/callgrind")
    wrapper = valgrind(out_dir)
    bots, count = opts.ir_bots, opts.ir_commands
    bare_prefix = ctx.prefix + "bare-"
    fake = await FakeCentrifugoProcess().start()
    try:
        ctx.log(f"instructions: starting {REPLICAS} replicas and {REPLICAS} relays under callgrind")
        async with cluster(ctx, "instructions", REPLICAS, wrapper=wrapper, ready_timeout=START_TIMEOUT,
                           **features_env(fake, dict(opts.replica_env))) as c, \
                relays(c.bus_url, REPLICAS, wrapper, START_TIMEOUT) as bare:
            secret = uuid.uuid4().hex
            await store_keys(c.database_url, [(cid, bot_key(secret, cid))
                                              for cid in (f"{ctx.prefix}{i:06d}" for i in range(bots))])
            async with fleet(ctx, [r.target for r in c.live], key_secret=secret) as f, \
                    fleet(ctx, [r.target for r in bare]) as bf:
                await f.connect(ctx.prefix, bots)
                await bf.connect(bare_prefix, bots)
                await wait_claims(c, ctx.prefix, bots)
                await wait_claims(c, bare_prefix, bots, key_prefix=RELAY_PREFIX)
                sides = [Side("product", await build_plan(ctx, c, bots), [r.pid for r in c.live]),
                         Side("relay", await build_plan(ctx, c, bots, bare_prefix, bare, RELAY_PREFIX),
                              [r.pid for r in bare])]
                commands = Commands(caller_ids=False)
                try:
                    ctx.log(f"instructions: {len(sides[0].plan.clients)} + {len(sides[1].plan.clients)} bots "
                            f"routable; warming up ({WARMUP_COMMANDS} commands per side and mode)")
                    for side in sides:
                        for mode in MODES:
                            await send(commands, side.plan, mode, 8, WARMUP_COMMANDS)
                    windows: list[dict[str, Any]] = []
                    for concurrency in CONCURRENCY:
                        for mode in MODES:
                            for side in sides:  # product, relay, one after the other
                                endings, ir, wall = await instrumented(
                                    out_dir, side.pids,
                                    lambda: send(commands, side.plan, mode, concurrency, count))  # noqa: B023
                                acked = sum(e.acked for e in endings)
                                windows.append({"side": side.name, "mode": mode, "concurrency": concurrency,
                                                "ir": ir, "wall_s": round(wall, 2), "acked": acked,
                                                "failed": len(endings) - acked})
                                ctx.log(f"instructions: {side.name} {mode} c={concurrency}: "
                                        f"{ir / max(1, acked):,.0f} Ir/cmd ({acked} acked, {wall:.1f} s)")
                    idle = {}
                    for side in sides:
                        seconds = max(IDLE_MIN_SECONDS, mean(w["wall_s"] for w in windows if w["side"] == side.name))
                        _, ir, wall = await instrumented(out_dir, side.pids,
                                                         lambda: asyncio.sleep(seconds))  # noqa: B023
                        idle[side.name] = {"ir": ir, "wall_s": round(wall, 2), "ir_per_s": round(ir / wall)}
                        ctx.log(f"instructions: {side.name} idle: {ir / wall:,.0f} Ir/s")
                finally:
                    await commands.close()
    finally:
        await fake.stop()
    return assemble(ctx, windows, idle)


def per_command(window: dict[str, Any], idle_ir_per_s: float) -> tuple[float, float]:
    """Raw and idle-corrected Ir per acked command."""
    acked = max(1, window["acked"])
    return window["ir"] / acked, (window["ir"] - idle_ir_per_s * window["wall_s"]) / acked


def assemble(ctx: Context, windows: list[dict[str, Any]], idle: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for concurrency in CONCURRENCY:
        for mode in MODES:
            product, relay = (next(w for w in windows if w["side"] == side and w["mode"] == mode
                                   and w["concurrency"] == concurrency) for side in ("product", "relay"))
            p_raw, p_net = per_command(product, idle["product"]["ir_per_s"])
            r_raw, r_net = per_command(relay, idle["relay"]["ir_per_s"])
            rows.append({"mode": mode, "concurrency": concurrency, "product_ir_per_cmd": round(p_raw),
                         "relay_ir_per_cmd": round(r_raw), "ratio": round(p_raw / r_raw, 4),
                         "product_ir_per_cmd_idle_corrected": round(p_net),
                         "relay_ir_per_cmd_idle_corrected": round(r_net),
                         "ratio_idle_corrected": round(p_net / r_net, 4),
                         "failed": product["failed"] + relay["failed"]})
    shown = [{"mode": r["mode"], "concurrency": r["concurrency"], "product": r["product_ir_per_cmd"],
              "relay": r["relay_ir_per_cmd"], "ratio": f"{r['ratio']:.3f}",
              "product_net": r["product_ir_per_cmd_idle_corrected"], "relay_net": r["relay_ir_per_cmd_idle_corrected"],
              "ratio_net": f"{r['ratio_idle_corrected']:.3f}", "failed": r["failed"]} for r in rows]
    opts = ctx.options
    text = table(shown, ["mode", "concurrency", "product", "relay", "ratio", "product_net", "relay_net", "ratio_net",
                         "failed"],
                 f"callgrind instructions (Ir) per acked ExecuteCommandSync: {REPLICAS} replicas (every feature on) vs "
                 f"{REPLICAS} bare relays, {opts.ir_bots} bots each, {opts.ir_commands} commands per window; "
                 f"_net = less idle Ir/s x the window's wall time")
    text += "\n\n" + table(windows, ["side", "mode", "concurrency", "ir", "acked", "failed", "wall_s"], "windows")
    text += "\n\n" + table([{"side": k, **v} for k, v in idle.items()], ["side", "ir", "wall_s", "ir_per_s"],
                           "idle (instrumentation on, no commands)")
    return {"params": {"replicas": REPLICAS, "bots": opts.ir_bots, "commands": opts.ir_commands,
                       "concurrency": list(CONCURRENCY), "warmup_commands": WARMUP_COMMANDS,
                       "replica_env": dict(opts.replica_env), "database": ctx.database_kind},
            "rows": rows, "windows": windows, "idle": idle, "table": text}
