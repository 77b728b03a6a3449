"""Hand committed messages' receipts to the streams they belong to, coalesced per stream.

A receipt reaches a bot only over a stream this replica holds: a bot that moved on resends what it
never got a receipt for, and the service receipts the resend without storing it again. A stream gets
at most one MessageReceipt per `interval` (or one per RECEIPT_IDS ids): under light load a flush
holds one or two messages per bot, and a receipt per flush would be a receipt per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

from ...generated import crypto_streaming_pb2 as pb2
from .session import StreamSession

RECEIPT_IDS: Final = 1_000  # message_ids per MessageReceipt, at most
# seconds a stream's receipts are gathered before they are sent: each is a stream write, about 0.15 ms of
# the replica's CPU (7% of its busy time at 100 bots with 50 ms); a bot's outbox holds this much longer
RECEIPT_INTERVAL: Final = 0.2


class ReceiptSender:
    """on_receipts for the ingest buffer (called in the event loop after each commit)."""

    def __init__(self, sessions: Callable[[], Mapping[str, StreamSession]], interval: float = RECEIPT_INTERVAL
                 ) -> None:
        self.sessions, self.interval = sessions, interval
        self._pending: dict[str, list[str]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, receipts: Mapping[str, list[str]]) -> None:
        for client_id, message_ids in receipts.items():
            self._pending.setdefault(client_id, []).extend(message_ids)
        if self._timer is None and self._pending:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.send_all)

    def send_all(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        live = self.sessions()
        for client_id, message_ids in pending.items():
            self._send(live.get(client_id), message_ids)

    def send_now(self, client_id: str) -> None:
        """A stream about to end (drain) gets what is gathered for it at once."""
        message_ids = self._pending.pop(client_id, None)
        if message_ids:
            self._send(self.sessions().get(client_id), message_ids)

    @staticmethod
    def _send(session: StreamSession | None, message_ids: list[str]) -> None:
        if session is None or not session.wants_receipts:
            return
        for start in range(0, len(message_ids), RECEIPT_IDS):
            receipt = pb2.MessageReceipt(message_ids=message_ids[start:start + RECEIPT_IDS])
            if not session.offer(pb2.DjangoCommand(receipt=receipt), draining_too=True):
                return
