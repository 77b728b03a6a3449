"""What every payload handler receives, what it returns, and how it says no."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ingest.writes import Write


@dataclass(frozen=True)
class MessageContext:
    """Who sent a payload, where it arrived, and the limits it must respect."""

    client_id: str
    message_id: str
    replica_id: str
    received_at: datetime
    max_text_chars: int = 10_000


class Rejected(Exception):
    """A payload that fails validation; the reason is recorded and the stream goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# (context, the sender's Client pk, the payload) -> the checked write; synchronous and pure, raises Rejected
Handler = Callable[[MessageContext, int, Any], "Write"]
