"""ReceiptOutbox, the bot's record of messages sent and not yet receipted: pure, no network."""

from __future__ import annotations

import asyncio

import pytest

from apps.crypto.grpc.examples.bot_client import OUTBOX_LIMIT, OutboxClosed, ReceiptOutbox, stamp_message
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2


def msg(text: str, message_id: str | None = None) -> pb2.ClientMessage:
    return stamp_message("bot-1", pb2.ClientMessage(message_id=message_id or f"id-{text}",
                                                    log=pb2.LogEntry(message=text)))


def texts(messages: list[pb2.ClientMessage]) -> list[str]:
    return [m.log.message for m in messages]


async def filled(limit: int, *names: str) -> ReceiptOutbox:
    outbox = ReceiptOutbox(limit)
    for name in names:
        await outbox.add(msg(name))
    return outbox


async def test_pending_keeps_the_order_added_and_receipts_remove_any_ids() -> None:
    outbox = await filled(10, "a", "b", "c", "d")
    assert texts(outbox.pending()) == ["a", "b", "c", "d"] and len(outbox) == 4
    assert outbox.ack(["id-c", "id-a"]) == 2  # receipts need not follow the sending order
    assert texts(outbox.pending()) == ["b", "d"]
    assert "id-b" in outbox and "id-a" not in outbox


async def test_receipts_for_unknown_or_already_receipted_ids_are_ignored() -> None:
    outbox = await filled(10, "a", "b")
    assert outbox.ack(["id-a"]) == 1
    assert outbox.ack(["id-a", "never-sent", ""]) == 0  # a duplicate's receipt, an id the bot forgot
    assert outbox.ack([]) == 0
    assert texts(outbox.pending()) == ["b"]


async def test_a_message_needs_an_id_and_one_id_is_kept_once() -> None:
    outbox = ReceiptOutbox(10)
    with pytest.raises(ValueError, match="message_id"):
        await outbox.add(pb2.ClientMessage(log=pb2.LogEntry(message="no id")))
    await outbox.add(msg("a"))
    with pytest.raises(ValueError, match="already awaiting"):
        await outbox.add(msg("again", message_id="id-a"))
    assert texts(outbox.pending()) == ["a"]


async def test_a_full_outbox_makes_add_wait_until_a_receipt_makes_room() -> None:
    outbox = await filled(2, "a", "b")
    assert outbox.full
    waiting = asyncio.create_task(outbox.add(msg("c")))
    await asyncio.sleep(0.02)
    assert not waiting.done() and len(outbox) == 2  # backpressure: neither dropped nor refused
    outbox.ack(["unknown"])
    await asyncio.sleep(0.02)
    assert not waiting.done()
    outbox.ack(["id-b"])
    await asyncio.wait_for(waiting, 1)
    assert texts(outbox.pending()) == ["a", "c"] and outbox.full


async def test_several_waiters_take_the_room_one_at_a_time_and_the_bound_holds() -> None:
    outbox = await filled(3, "a", "b", "c")
    waiters = [asyncio.create_task(outbox.add(msg(f"w{n}"))) for n in range(4)]
    await asyncio.sleep(0.02)
    outbox.ack(["id-a", "id-b"])
    await asyncio.sleep(0.02)
    assert sum(w.done() for w in waiters) == 2 and len(outbox) == 3
    outbox.ack(["id-c", "id-w0", "id-w1", "id-w2", "id-w3"])
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert len(outbox) <= 3 and all(w.exception() is None for w in waiters)


async def test_add_gives_up_after_its_timeout_and_keeps_nothing() -> None:
    outbox = await filled(1, "a")
    with pytest.raises(TimeoutError):
        await outbox.add(msg("b"), timeout=0.05)
    assert texts(outbox.pending()) == ["a"]


async def test_only_written_messages_are_resent_in_the_order_added() -> None:
    """A new stream writes these right after its registration; the never-written ones are still queued."""
    outbox = await filled(10, "a", "b", "c", "d", "e")
    for message_id in ("id-a", "id-b", "id-c", "id-d"):
        outbox.written(message_id)
    outbox.ack(["id-b"])
    assert texts(outbox.to_resend()) == ["a", "c", "d"]  # e was never taken by a stream
    outbox.written("id-e")
    outbox.written("id-b")  # receipted already: nothing to record
    assert texts(outbox.to_resend()) == ["a", "c", "d", "e"]
    outbox.ack(["id-a", "id-c", "id-d", "id-e"])
    assert outbox.to_resend() == [] and len(outbox) == 0


async def test_discard_forgets_a_message_never_handed_to_a_stream() -> None:
    outbox = await filled(1, "a")
    waiting = asyncio.create_task(outbox.add(msg("b")))
    outbox.discard("id-a")
    await asyncio.wait_for(waiting, 1)
    assert texts(outbox.pending()) == ["b"]


async def test_wait_empty_reports_whether_everything_was_receipted() -> None:
    assert await ReceiptOutbox(5).wait_empty(0) is True
    outbox = await filled(5, "a", "b")
    assert await outbox.wait_empty(0.02) is False
    draining = asyncio.create_task(outbox.wait_empty(5))
    outbox.ack(["id-a"])
    await asyncio.sleep(0.02)
    assert not draining.done()
    outbox.ack(["id-b"])
    assert await asyncio.wait_for(draining, 1) is True


async def test_close_releases_every_waiter_and_refuses_new_messages() -> None:
    outbox = await filled(1, "a")
    adding = asyncio.create_task(outbox.add(msg("b")))
    draining = asyncio.create_task(outbox.wait_empty())
    await asyncio.sleep(0.02)
    outbox.close()
    with pytest.raises(OutboxClosed):
        await asyncio.wait_for(adding, 1)
    assert await asyncio.wait_for(draining, 1) is False  # closed with "a" still unreceipted
    with pytest.raises(RuntimeError):  # OutboxClosed is a RuntimeError, like a send after stop
        await outbox.add(msg("c"))
    assert texts(outbox.pending()) == ["a"]  # still readable, so a bot can save what is left


def test_the_limit_is_positive_and_ten_thousand_by_default() -> None:
    assert ReceiptOutbox().limit == OUTBOX_LIMIT == 10_000
    for bad in (0, -1):
        with pytest.raises(ValueError):
            ReceiptOutbox(bad)
