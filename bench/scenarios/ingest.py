"""ingest: client messages per second one replica persists: receipts off and on, then Centrifugo on.

--ingest-clients bots on one replica send --ingest-messages in all (a 4:3:3 mix of wallet updates
on 4 wallets per bot (upserts), transactions (a new row each) and heartbeats), as fast as their
streams take them, the last message of each bot a transaction. A stream's messages are persisted in order, so once every
transaction row exists every message before it has been handled: the rate is messages / (first
send -> last row present). "on" starts tests/support/fake_centrifugo.py in its own process and
points CENTRIFUGO_API_URL/CENTRIFUGO_API_KEY at it. "receipts" has the bots register with
wants_receipts and time each message from its send to its MessageReceipt (p50/p99); its rate is a
ratio to "off", measured in the same run on the same load.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..cluster import Cluster, wait_claims
from ..context import Context, cluster, fleet
from ..db import count_rows
from ..procs import CpuMeter, FakeCentrifugoProcess
from .. import profiling
from ..report import check, table, targets_table
from ..stats import percentile

STALL_SECONDS = 30.0
ROUNDS = 4  # off / receipts pairs


async def wait_rows(url: str, prefix: str, expected: int, table_name: str = "crypto_transaction"
                    ) -> tuple[float, int]:
    """Monotonic time the expected rows were all present (or the last progress), and the count seen."""
    last_count, last_progress = -1, time.monotonic()
    while True:
        count = (await count_rows(url, prefix, (table_name,)))[table_name]
        now = time.monotonic()
        if count != last_count:
            last_count, last_progress = count, now
        if count >= expected or now - last_progress > STALL_SECONDS:
            return last_progress, count
        await asyncio.sleep(0.1)


async def variant(ctx: Context, name: str, env: dict[str, str]) -> dict[str, Any]:
    """One replica of its own (with `env`), one measurement."""
    async with cluster(ctx, f"ingest-{name}", 1, **env) as c:
        return await measure(ctx, c, name)


async def measure(ctx: Context, c: Cluster, name: str, receipts: bool = False, round_: int = 0,
                  rate: float = 0.0) -> dict[str, Any]:
    opts = ctx.options
    prefix = f"{ctx.prefix}{name}{round_}-"
    async with fleet(ctx, [c.live[0].target], receipts=receipts) as f:
        await f.connect(prefix, opts.ingest_clients)
        await wait_claims_for(c, prefix, opts.ingest_clients)
        await asyncio.sleep(1.0)  # connect-time writes (status rows) out of the way
        before = await count_rows(c.database_url, prefix)
        cpu = CpuMeter({"replica": c.live[0].pid, "loadgen": f.pid}).start()
        metered_from = time.monotonic()
        spy = profiling.start(c.live[0].pid, ctx.scratch("ingest") / f"profile-{name}{round_}.txt", 6) \
            if opts.profile and round_ == 0 else None
        per_bot = max(2, opts.ingest_messages // opts.ingest_clients)
        ctx.log(f"ingest {name} round {round_}: {opts.ingest_clients} bots sending {per_bot} messages each")
        sent = await f.request("ingest", per_bot=per_bot, seconds=opts.ingest_seconds, rate=rate,
                               timeout=opts.ingest_seconds + 120)
        done_at, seen = await wait_rows(c.database_url, prefix, before["crypto_transaction"] + sent["transactions"])
        shares = cpu.stop()
        if spy is not None:
            await asyncio.to_thread(profiling.finish, spy)
        replica_cpu_s = shares["replica"] * (time.monotonic() - metered_from)
        after = await count_rows(c.database_url, prefix)
    result = row(name, sent, done_at, seen - before["crypto_transaction"], before, after, shares)
    result["cpu_us_per_msg"] = round(replica_cpu_s / max(1, sent["messages"]) * 1e6, 1)
    if spy is not None:
        result["profile"] = profiling.summarize(ctx.scratch("ingest") / f"profile-{name}{round_}.txt")
    result["round"] = round_
    if receipts:
        latencies = sorted(sent["receipt_latencies"])
        result.update(receipts=sent["receipts"], unreceipted=sent["unreceipted"],
                      receipt_p50_ms=round(percentile(latencies, 50) * 1000, 1),
                      receipt_p99_ms=round(percentile(latencies, 99) * 1000, 1))
    return result


async def wait_claims_for(c: Cluster, prefix: str, expected: int) -> None:
    claimed = await wait_claims(c, prefix, expected)
    if claimed < expected:
        raise RuntimeError(f"only {claimed} of {expected} bots were claimed")


def row(name: str, sent: dict[str, Any], done_at: float, stored_tx: int, before: dict[str, int],
        after: dict[str, int], cpu: dict[str, float]) -> dict[str, Any]:
    elapsed = done_at - sent["began"]
    complete = stored_tx >= sent["transactions"]
    return {"variant": name, "bots": sent["bots"], "messages": sent["messages"],
            "by_kind": sent["by_kind"], "send_s": sent["send_seconds"],
            "persisted_s": round(elapsed, 3), "complete": complete,
            "msgs_per_s": round(sent["messages"] / elapsed, 1) if complete else float("nan"),
            "sent_per_s": round(sent["messages"] / sent["send_seconds"], 1),
            "tx_rows": stored_tx, "tx_sent": sent["transactions"],
            "wallet_rows": after["crypto_wallet"] - before["crypto_wallet"], "wallet_keys": sent["wallet_keys"],
            "rejected": after["crypto_rejectedmessage"] - before["crypto_rejectedmessage"],
            "cpu_replica": cpu["replica"], "cpu_loadgen": cpu["loadgen"]}


async def run(ctx: Context) -> dict[str, Any]:
    rows = []
    async with cluster(ctx, "ingest-receipts", 1) as c:  # off and receipts alternate on one replica: A B A B
        for round_ in range(ROUNDS):
            rows.append(await measure(ctx, c, "off", False, round_))
            rows.append(await measure(ctx, c, "receipts", True, round_))
        # receipt latency below saturation: each bot paced so the replica runs at about half its rate
        half = max(1.0, 0.5 * min(r["msgs_per_s"] for r in rows) / ctx.options.ingest_clients)
        rows.append(await measure(ctx, c, "receipts-paced", True, 0, rate=half))
    fake = await FakeCentrifugoProcess().start()
    try:
        rows.append(await variant(ctx, "centrifugo", {"CENTRIFUGO_API_URL": fake.url,
                                                      "CENTRIFUGO_API_KEY": fake.api_key}))
        rows[-1]["centrifugo_stats"] = await fake.stats()
    finally:
        await fake.stop()
    return assemble(ctx, rows)


def assemble(ctx: Context, rows: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [check(f"messages/s per replica with persistence, {r['variant']}", ">= 10,000",
                    r["msgs_per_s"], r["msgs_per_s"] >= 10_000) for r in rows]
    offs, ons = [r for r in rows if r["variant"] == "off"], [r for r in rows if r["variant"] == "receipts"]
    ratio = round(sum(r["msgs_per_s"] for r in ons) / sum(r["msgs_per_s"] for r in offs), 3)
    checks.append(check("messages/s with receipts / without (same run, A B A B)", ">= 0.90", ratio, ratio >= 0.90))
    cpu = round(sum(r["cpu_us_per_msg"] for r in ons) / sum(r["cpu_us_per_msg"] for r in offs), 3)
    checks.append(check("replica CPU per message, receipts / without", "<= 1.11", cpu, cpu <= 1 / 0.9))
    left = sum(r["unreceipted"] for r in rows if "unreceipted" in r)
    checks.append(check("every message receipted", "0 left", left, left == 0))
    columns = ["variant", "round", "bots", "messages", "send_s", "persisted_s", "msgs_per_s", "cpu_us_per_msg", "sent_per_s", "tx_rows",
               "tx_sent", "wallet_rows", "wallet_keys", "rejected", "cpu_replica", "cpu_loadgen"]
    text = table(rows, columns + ["receipt_p50_ms", "receipt_p99_ms"], "ingest into one replica (wallet 4 : transaction 3 : heartbeat 3), rows counted "
                                "in the database")
    text += "\n\n" + targets_table(checks)
    if len(rows) > 1 and "centrifugo_stats" in rows[-1]:
        text += f"\nfake Centrifugo after 'on': {rows[-1]['centrifugo_stats']}"
    return {"params": {"clients": ctx.options.ingest_clients, "messages": ctx.options.ingest_messages,
                       "send_cap_s": ctx.options.ingest_seconds,
                       "database": ctx.database_kind},
            "variants": rows, "targets": checks, "table": text}
