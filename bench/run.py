"""Benchmark harness: start a local cluster, drive it, print tables, write bench/results/<scenario>-<stamp>.json.

    .venv/bin/python bench/run.py [latency ingest memory failover rollout] [--replicas 3] [--clients 1000] ...
    .venv/bin/python bench/run.py upkeep --clients 3000,30000     # Redis cost of idle streams (run by name)
    .venv/bin/python bench/run.py instructions [--ir-commands 300]  # callgrind Ir per command, product vs relay

Everything runs on 127.0.0.1 and stops by itself (each scenario has a time budget; every child
process dies with the harness). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # the harness forks children while gRPC runs
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.context import Context, Options, machine  # noqa: E402
from bench.plot import latency_png  # noqa: E402
from bench.report import write_json  # noqa: E402
from config.env import split_list  # noqa: E402

SCENARIOS = ("latency", "ingest", "memory", "failover", "rollout", "upkeep", "broadcast", "instructions")
DEFAULT_SCENARIOS = SCENARIOS[:5]  # upkeep (minutes of idle streams), broadcast and instructions run when named


def int_list(raw: str) -> tuple[int, ...]:
    return tuple(int(x) for x in raw.split(",") if x.strip())


def env_pair(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="scenario",
                   help=f"any of: {' '.join(SCENARIOS)} (default: {' '.join(DEFAULT_SCENARIOS)})")
    p.add_argument("--replicas", type=int, default=3, help="replicas for latency, failover, rollout")
    p.add_argument("--clients", type=int_list, default=None,
                   help="connected bots for latency, failover, rollout (default 1000; the first of a list); "
                        "upkeep, broadcast: the steps, e.g. 3000,30000 or 1000,3000 (default 3000)")
    p.add_argument("--database-url", default="", help="PostgreSQL URL; default: a fresh SQLite file per scenario")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per latency step")
    p.add_argument("--concurrency", type=int_list, default=(1, 8, 32, 64), help="latency steps (commands in flight)")
    p.add_argument("--ingest-clients", type=int, default=100, help="bots sending as fast as they can in ingest")
    p.add_argument("--ingest-messages", type=int, default=20_000, help="messages sent per ingest variant")
    p.add_argument("--ingest-seconds", type=float, default=60.0, help="cap on an ingest variant's sending time")
    p.add_argument("--memory-steps", type=int_list, default=(1000, 5000, 10000), help="idle streams on one replica")
    p.add_argument("--memory-transports", type=split_list, default=("default", "ph2_server"),
                   help="memory: gRPC transports to measure ('default' or a GRPC_EXPERIMENTS value)")
    p.add_argument("--load-concurrency", type=int, default=8, help="commands in flight during failover/rollout")
    p.add_argument("--fleet-channels", type=int, default=4, help="load generator channels per replica")
    p.add_argument("--profile", action="store_true", help="latency: py-spy a replica during an extra same and cross step; ingest: py-spy round 0 of off and receipts; broadcast: py-spy two replicas and the load generator")
    p.add_argument("--profile-native", action="store_true", help="with --profile: sample C frames too (py-spy --native)")
    p.add_argument("--plot", default=str(ROOT / "docs" / "latency.png"), help="latency plot path ('' = none)")
    p.add_argument("--budget", type=float, default=900.0, help="hard time limit per scenario, seconds")
    p.add_argument("--redis-url", default="",
                   help="upkeep: use this Redis instead of a local redis-server (redis://h:p/0, or "
                        "redis+cluster://h:p,h:p: every master is measured); the replicas get it as REDIS_URL")
    p.add_argument("--redis-cluster", action="store_true",
                   help="start a local Redis Cluster (3 masters, 1 replica each) for the run and use it as "
                        "--redis-url")
    p.add_argument("--upkeep-window", type=float, default=60.0, help="upkeep: measured steady window, seconds")
    p.add_argument("--upkeep-settle", type=float, default=35.0,
                   help="upkeep: pause after the last bot connected, before the window (bots' first heartbeat "
                        "comes 15-30 s after connecting)")
    p.add_argument("--fleet-bots", type=int, default=15_000, help="upkeep: bots per load generator process")
    p.add_argument("--ir-commands", type=int, default=300,
                   help="instructions: commands per measured window (each mode, concurrency and side)")
    p.add_argument("--ir-bots", type=int, default=10, help="instructions: connected bots per side")
    p.add_argument("--env", type=env_pair, action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for every replica (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (replica logs, database)")
    args = p.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    return args


def options(args: argparse.Namespace) -> Options:
    return Options(replicas=args.replicas, clients=(args.clients or (1000,))[0], database_url=args.database_url,
                   duration=args.duration, concurrency=args.concurrency, fleet_channels=args.fleet_channels,
                   ingest_clients=args.ingest_clients, ingest_messages=args.ingest_messages,
                   ingest_seconds=args.ingest_seconds,
                   memory_steps=args.memory_steps, memory_transports=args.memory_transports,
                   load_concurrency=args.load_concurrency, profile=args.profile or args.profile_native, profile_native=args.profile_native,
                   replica_env=tuple(args.env), redis_url=args.redis_url,
                   client_steps=args.clients or (3000,), upkeep_window=args.upkeep_window,
                   upkeep_settle=args.upkeep_settle, fleet_bots=args.fleet_bots,
                   ir_commands=args.ir_commands, ir_bots=args.ir_bots)


async def run_one(name: str, ctx: Context, budget: float, plot: str) -> dict[str, Any]:
    module = importlib.import_module(f"bench.scenarios.{name}")
    began = time.monotonic()
    ctx.log_events.clear()
    result: dict[str, Any] = await asyncio.wait_for(module.run(ctx), budget)
    result["seconds"] = round(time.monotonic() - began, 1)
    result["replica_log_events"] = dict(ctx.log_events)
    events = {f"{cluster}: {event}": n for cluster, found in ctx.log_events.items() for event, n in found.items()}
    if events:
        result["table"] += "\nreplica log warnings/errors: " + ", ".join(f"{k} x{v}" for k, v in events.items())
    if name == "latency" and plot:
        why_not = latency_png(result, Path(plot))
        result["plot"] = why_not or plot
    return result


async def run_all(names: list[str], ctx: Context, args: argparse.Namespace) -> int:
    failures = 0
    for name in names:
        try:
            result = await run_one(name, ctx, args.budget, args.plot)
        except Exception as exc:  # one broken scenario does not hide the others' numbers
            failures += 1
            print(f"\n== {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc()
            continue
        payload = {"scenario": name, "stamp": ctx.stamp, "command": shlex.join([sys.executable, *sys.argv]),
                   "machine": machine(), **result}
        path = write_json(name, ctx.stamp, payload)
        print(f"\n== {name} ({result['seconds']} s; CPU check loop {payload['machine']['cpu_loop_ms']} ms)\n"
              f"{result['table']}", flush=True)
        if result.get("plot"):
            print(f"plot: {result['plot']}")
        print(f"json: {path.relative_to(ROOT)}", flush=True)
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    names = list(dict.fromkeys(args.scenarios)) or list(DEFAULT_SCENARIOS)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="crypto-bench-"))
    topology = None
    if args.redis_cluster:  # the test suite's real cluster, so both measure the same set-up
        from tests.support.redis_topologies import RedisClusterSet

        topology = RedisClusterSet().start()
        args.redis_url = topology.url
    ctx = Context(options(args), stamp, workdir)
    try:
        return asyncio.run(run_all(names, ctx, args))
    finally:
        if topology is not None:
            topology.stop()
        if args.keep:
            print(f"scratch kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
