"""CPU per command of the CommandJournal, alone, at a steady rate against a real database.

Drives a journal the way ExecuteCommandSync does (accepted, then delivery and outcome of each command
`--lag` commands later) at `--rate` commands/s, and splits its CPU per command into: the three calls
(event-loop thread), the flush's part of the loop thread (grouping, thread handoffs; the loop thread's
CPU less a run without a journal and less the calls) and the writer thread (everything else in the
process: row preparation, SQL, commit). With `--old FILE` (a records.py of another commit, e.g. from
`git show <commit>:apps/crypto/grpc/services/records.py`; `--old-bulk` its bulk.py) both are run,
alternating, in one process so their ratio holds on a machine whose speed drifts.

    DJANGO_ALLOW_DEV_SECRET_KEY=on .venv/bin/python -m bench.journal --old /tmp/records_old.py --rounds 3
    ... --database-url postgres://postgres@127.0.0.1:5432/crypto_bench   (a database that exists)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup(database_url: str | None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='journal-bench-')}/b.sqlite3"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def load(path: str, name: str = "_records_bench") -> ModuleType:
    """Another records.py (or bulk.py), imported as a sibling of the real one (its relative imports resolve)."""
    name = f"apps.crypto.grpc.services.{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class NoJournal:
    """Same calls, nothing kept: the pacing's own cost, subtracted from the journal's runs."""

    def start(self, spawn: Any) -> None: ...
    async def close(self) -> None: ...
    def accepted(self, *args: Any) -> None: ...
    def delivery(self, *args: Any) -> None: ...
    def outcome(self, *args: Any) -> None: ...


async def drive(journal: Any, rate: int, seconds: float, lag: int) -> dict[str, float]:
    from apps.crypto.grpc.generated import common_pb2
    from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
    from apps.crypto.grpc.services.bus.outcomes import Delivery

    journal.start(lambda coro, name: asyncio.get_running_loop().create_task(coro, name=name))
    tick, calls, sent = 0.01, 0.0, 0
    per_tick = max(1, round(rate * tick))
    waiting: list[pb2.DjangoCommand] = []
    loop_start, process_start = time.thread_time(), time.process_time()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        commands = []
        for _ in range(per_tick):
            command = pb2.DjangoCommand(command_id=uuid.uuid4().hex, ping=pb2.PingCommand(sequence=sent))
            command.timestamp.GetCurrentTime()
            commands.append(command)
            sent += 1
        finishing = (waiting + commands)[:max(0, len(waiting) + len(commands) - lag)]
        acks = [common_pb2.CommandAck(command_id=c.command_id, success=True, message="pong") for c in finishing]
        begin = time.thread_time()
        for command in commands:
            journal.accepted("bench-bot", command, "operator:bench", "r1", True)
        waiting += commands
        for command, ack in zip(finishing, acks):
            journal.delivery(command.command_id, Delivery(True, routed_to="r2"))
            journal.outcome(ack, False)
        calls += time.thread_time() - begin
        del waiting[:len(finishing)]
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    await journal.close()
    loop, process = time.thread_time() - loop_start, time.process_time() - process_start
    return {"n": sent, "calls": calls, "loop": loop, "other": process - loop}


def micro(total: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    """µs per command: calls, the flush's loop-thread part, the writer thread, and their sum."""
    n = total["n"]
    calls = total["calls"] / n * 1e6
    loop_flush = (total["loop"] - total["calls"] - (base["loop"] - base["calls"]) * n / base["n"]) / n * 1e6
    thread = (total["other"] - base["other"] * n / base["n"]) / n * 1e6
    return {"calls": calls, "loop_flush": loop_flush, "thread": thread, "total": calls + loop_flush + thread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--lag", type=int, default=4, help="commands in flight between accepted and outcome")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", help="records.py to compare against")
    parser.add_argument("--old-bulk", help="the bulk.py that --old writes with (default: the current one)")
    parser.add_argument("--only", choices=("old", "new"), help="run one journal (e.g. under strace -c -f)")
    parser.add_argument("--interval", type=float, help="the journals' flush interval (default: their own)")
    parser.add_argument("--database-url")
    parser.add_argument("--profile", help="cProfile the current journal's run into this file")
    args = parser.parse_args()
    setup(args.database_url)
    from apps.crypto.grpc.services import records

    kinds: dict[str, Any] = {"new": records.CommandJournal}
    if args.old:
        old = load(args.old)
        if args.old_bulk:
            old.insert_many = load(args.old_bulk, "_bulk_bench").insert_many  # type: ignore[attr-defined]
        kinds = {"old": old.CommandJournal, **kinds}
    print(f"{args.rate} commands/s, {args.seconds:g} s per run, µs of CPU per command "
          "(calls | flush on loop | writer thread | total)")
    if args.only:
        kinds = {args.only: kinds[args.only]}
    if args.interval is not None:
        kinds = {k: (lambda cls: lambda: cls(interval=args.interval))(cls) for k, cls in kinds.items()}
    for round_ in range(args.rounds):
        base = asyncio.run(drive(NoJournal(), args.rate, args.seconds, args.lag))
        for kind, journal in kinds.items():
            if args.profile and kind == "new":
                import cProfile

                with cProfile.Profile() as profile:
                    result = asyncio.run(drive(journal(), args.rate, args.seconds, args.lag))
                profile.dump_stats(args.profile)
            else:
                result = asyncio.run(drive(journal(), args.rate, args.seconds, args.lag))
            m = micro(result, base)
            print(f"round {round_} {kind:4} n={int(result['n'])} " + " | ".join(f"{m[k]:6.1f}" for k in m))


if __name__ == "__main__":
    main()
