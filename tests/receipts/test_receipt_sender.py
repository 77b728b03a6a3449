"""Receipts are coalesced per stream: one MessageReceipt per interval, not one per flush (or message)."""

from __future__ import annotations

import asyncio

from apps.crypto.grpc.services.streaming.receipts import RECEIPT_IDS, ReceiptSender
from apps.crypto.grpc.services.streaming.session import StreamSession


def session(client_id: str, wants: bool = True) -> StreamSession:
    s = StreamSession(client_id, queue_limit=100)
    s.wants_receipts = wants
    return s


def receipts_of(s: StreamSession) -> list[list[str]]:
    return [list(c.receipt.message_ids) for c in s._queue or ()]


async def test_flushes_within_the_interval_make_one_receipt_per_stream() -> None:
    a, b, old = session("a"), session("b"), session("old", wants=False)
    sender = ReceiptSender(lambda: {"a": a, "b": b, "old": old}, interval=0.05)
    sender({"a": ["m1"], "b": ["x1"], "old": ["o1"]})
    sender({"a": ["m2", "m3"]})
    assert receipts_of(a) == []  # gathered, not yet sent
    await asyncio.sleep(0.1)
    assert receipts_of(a) == [["m1", "m2", "m3"]] and receipts_of(b) == [["x1"]]
    assert receipts_of(old) == []  # a bot that did not ask gets none
    assert all(c.command_id == "" for c in a._queue or ())


async def test_a_large_receipt_is_split_and_a_draining_stream_gets_it_at_once() -> None:
    a = session("a")
    a.draining = True  # takes no commands any more, receipts still
    sender = ReceiptSender(lambda: {"a": a}, interval=10.0)
    ids = [f"m{n}" for n in range(RECEIPT_IDS + 5)]
    sender({"a": ids})
    sender.send_now("a")
    assert [len(r) for r in receipts_of(a)] == [RECEIPT_IDS, 5]
    sender.send_now("a")  # nothing left: nothing sent twice
    assert len(receipts_of(a)) == 2


async def test_a_stream_gone_meanwhile_gets_nothing_and_nothing_breaks() -> None:
    live: dict[str, StreamSession] = {"a": session("a")}
    sender = ReceiptSender(lambda: live, interval=0.01)
    sender({"a": ["m1"]})
    live.clear()
    await asyncio.sleep(0.05)  # the bot resends m1 and is receipted for it again
    live["a"] = again = session("a")  # it came back here
    sender({"a": ["m1", "m2"]})
    await asyncio.sleep(0.05)
    assert receipts_of(again) == [["m1", "m2"]]  # nothing of the gone stream was kept for it
