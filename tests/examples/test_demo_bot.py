"""The demo bot (simple_client_test) asks for receipts and reports its outbox."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import uuid
from pathlib import Path

import pytest

from apps.crypto.grpc.examples.bot_client import OUTBOX_LIMIT
from apps.crypto.grpc.examples.simple_client_test import build_bot, drain_and_stop, parse_args, report_outbox
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import CryptoStreamingCommandClient, sync_wallets
from tests.commands.bots import running_bot
from tests.commands.fake_service import FakeServer, running_fake
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def demo_args(fake: FakeServer, client_id: str, key: str, *extra: str):
    return parse_args(["--target", fake.target, "--client-id", client_id, "--api-key", key, *extra])


def test_the_demo_asks_for_receipts_unless_told_not_to() -> None:
    args = parse_args(["--client-id", "demo-1"])
    assert args.receipts and args.outbox_limit == OUTBOX_LIMIT
    bot, _ = build_bot(args)
    assert bot.registration.wants_receipts and bot.registration.client_type == "demo"
    off, _ = build_bot(parse_args(["--client-id", "demo-1", "--no-receipts"]))
    assert not off.registration.wants_receipts
    for bad in (["--report-every", "0"], ["--outbox-limit", "0"], ["--drain", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(["--client-id", "demo-1", *bad])


async def test_the_demo_logs_how_many_messages_await_a_receipt_and_drains_before_stopping(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="demo_bot")
    async with running_fake() as fake, CryptoStreamingCommandClient(fake.target, fake.operator_token) as operator:
        client_id = f"demo-{uuid.uuid4().hex[:8]}"
        bot, _ = build_bot(demo_args(fake, client_id, await fake.make_client_key(client_id), "--outbox-limit", "50"))
        async with running_bot(bot) as task:
            assert (await sync_wallets(operator, client_id, symbols=["BTC", "ETH"])).success
            reporter = asyncio.create_task(report_outbox(bot, 0.01))
            await eventually(lambda: "demo.outbox unreceipted=2 " in caplog.text, 5, "outbox reported")
            reporter.cancel()
            updates = [m.message_id for m in fake.service.payloads("wallet_update")]
            fake.service.streams[client_id].put_nowait(
                pb2.DjangoCommand(receipt=pb2.MessageReceipt(message_ids=updates)))
            await asyncio.wait_for(drain_and_stop(bot, 5), 6)
            await asyncio.wait_for(task, 5)
        assert bot.unreceipted == 0 and "demo.stopping_unreceipted" not in caplog.text


async def test_the_demo_stops_after_the_drain_time_and_says_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="demo_bot")
    async with running_fake() as fake, CryptoStreamingCommandClient(fake.target, fake.operator_token) as operator:
        client_id = f"demo-{uuid.uuid4().hex[:8]}"
        bot, _ = build_bot(demo_args(fake, client_id, await fake.make_client_key(client_id)))
        async with running_bot(bot) as task:
            assert (await sync_wallets(operator, client_id)).success
            await asyncio.wait_for(drain_and_stop(bot, 0.1), 2)
            await asyncio.wait_for(task, 5)
        assert "demo.stopping_unreceipted unreceipted=3" in caplog.text


async def test_the_demo_process_reports_its_outbox_and_exits_cleanly_on_sigterm() -> None:
    async with running_fake() as fake:
        client_id = f"demo-{uuid.uuid4().hex[:8]}"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apps.crypto.grpc.examples.simple_client_test", "--target", fake.target,
            "--client-id", client_id, "--api-key", await fake.make_client_key(client_id), "--report-every", "0.05",
            cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        try:
            await eventually(lambda: client_id in fake.service.streams, 15, "demo connected")
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        log = err.decode()
        assert process.returncode == 0, log
        assert "demo.outbox unreceipted=0" in log and "bot.stopped" in log
        assert fake.service.received[0].register.wants_receipts
