"""Hand a flush's receipts to the streams they belong to (no I/O: the streams' writers send them).

A receipt reaches a bot only over a stream this replica holds: a bot that moved on resends what it
never got a receipt for, and the service receipts the resend without storing it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from ...generated import crypto_streaming_pb2 as pb2
from .session import StreamSession

RECEIPT_IDS: Final = 1_000  # message_ids per MessageReceipt: one flush is a handful of receipts, never one per message


def receipt_sender(sessions: Callable[[], Mapping[str, StreamSession]]) -> Callable[[dict[str, list[str]]], None]:
    """on_receipts for the ingest buffer: queue MessageReceipts on the local streams (draining ones too)."""

    def send(receipts: dict[str, list[str]]) -> None:
        live = sessions()
        for client_id, message_ids in receipts.items():
            session = live.get(client_id)
            if session is None or not session.wants_receipts:
                continue
            for start in range(0, len(message_ids), RECEIPT_IDS):
                receipt = pb2.MessageReceipt(message_ids=message_ids[start:start + RECEIPT_IDS])
                if not session.offer(pb2.DjangoCommand(receipt=receipt), draining_too=True):
                    break

    return send
