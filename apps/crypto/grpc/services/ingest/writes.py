"""The validated writes a ClientMessage turns into: plain data, checked and ready to merge.

No ORM and no I/O here: handlers build these synchronously, the buffer holds them, merge.py folds a
batch of them and writer.py stores the result. Decimals stay text (already checked) and times stay
the message's received_at until a row is actually written, so a message costs no Decimal or
datetime work that a later message would overwrite anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from ..handlers.base import MessageContext


@dataclass(slots=True)
class WalletWrite:
    kind: ClassVar[str] = "wallet_update"
    ctx: MessageContext
    client_pk: int
    wallet_id: str
    symbol: str
    available: str  # checked decimal text
    locked: str
    last_sync: datetime | None  # None: the server's receive time stands in


@dataclass(slots=True)
class TransactionWrite:
    kind: ClassVar[str] = "transaction"
    ctx: MessageContext
    client_pk: int
    transaction_id: str
    type: str
    symbol: str
    amount: str  # checked decimal text
    status: str
    details: str


@dataclass(slots=True)
class HeartbeatWrite:
    kind: ClassVar[str] = "heartbeat"
    ctx: MessageContext
    client_pk: int


@dataclass(slots=True)
class StatusWrite:
    kind: ClassVar[str] = "status"
    ctx: MessageContext
    client_pk: int
    status: str
    details: str


@dataclass(slots=True)
class RegisterWrite:
    kind: ClassVar[str] = "register"
    ctx: MessageContext
    client_pk: int
    status: str  # what a registration means for Client.status (active)
    name: str
    client_type: str
    version: str
    api_url: str


@dataclass(slots=True)
class LogWrite:
    kind: ClassVar[str] = "log"
    ctx: MessageContext
    client_pk: int
    level: str
    message: str
    extra_data: str


@dataclass(slots=True)
class ErrorWrite:
    kind: ClassVar[str] = "error"
    ctx: MessageContext
    client_pk: int
    severity: str
    message: str
    traceback: str


@dataclass(slots=True)
class AckWrite:
    kind: ClassVar[str] = "command_ack"
    ctx: MessageContext
    command_id: str
    success: bool
    message: str
    error: str


@dataclass(slots=True)
class Refusal:
    """A message that is not stored, and why: becomes a RejectedMessage row.

    `kind` is the payload type ("" for an empty payload); `at_flush` marks refusals only the writer
    could find (a repeat that disagrees with a stored row, a storage error), which the stream never
    saw and so never counted.
    """

    ctx: MessageContext
    kind: str
    reason: str
    at_flush: bool = False


Write = (WalletWrite | TransactionWrite | HeartbeatWrite | StatusWrite | RegisterWrite | LogWrite | ErrorWrite
         | AckWrite | Refusal)



@dataclass
class FlushReport:
    """What storing a batch tells the buffer: refusals found then (to count and log), clients whose cached pk failed."""

    written: int = 0
    refused: list[Refusal] = field(default_factory=list)
    stale_clients: set[str] = field(default_factory=set)
