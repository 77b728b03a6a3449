"""What one client message is while it is checked and stored: its context, and how it is refused.

A leaf module (it imports nothing of ours): handlers, the ingest machinery, the command records and
the converters all speak these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MessageContext:
    """Who sent a payload, where it arrived, and the limits it must respect."""

    client_id: str
    message_id: str
    replica_id: str
    received_at: datetime
    max_text_chars: int = 10_000
    sent_at: datetime | None = None  # the bot's ClientMessage.timestamp, if it set one
    receipt: bool = False  # the bot registered with wants_receipts: store once, confirm with a MessageReceipt

    @property
    def reported_at(self) -> datetime:
        """The report's place in the bot's own order: its timestamp, else when it arrived here."""
        return self.sent_at or self.received_at


class Rejected(Exception):
    """A payload that fails validation; the reason is recorded and the stream goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Refusal:
    """A message that is not stored, and why: it becomes a RejectedMessage row.

    `kind` is the payload type ("" for an empty payload); `at_flush` marks refusals only the writer
    could find (a repeat that disagrees with a stored row, a storage error), which the stream never
    saw and so never counted.
    """

    ctx: MessageContext
    kind: str
    reason: str
    at_flush: bool = False
