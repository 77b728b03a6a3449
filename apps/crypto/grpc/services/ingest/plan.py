"""A batch being stored, and what a payload kind gives the ingest machinery (pure, no database).

The machinery knows no payload kind: each kind (one module in handlers/) says how its writes fold
into a batch's Plan and how the folded result is stored, and is registered once (handlers/table.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ..inbound import MessageContext, Refusal

T = TypeVar("T")


class Write(Protocol):
    """A checked payload waiting in the buffer: plain data, tagged with its kind's name."""

    @property
    def kind(self) -> str: ...

    @property
    def ctx(self) -> MessageContext: ...


@dataclass
class Plan:
    """One batch, folded: each part keeps its own state under its name; refusals keep message order."""

    now: datetime  # auto_now / auto_now_add value for the whole batch (one transaction)
    parts: dict[str, Any] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)

    def part(self, name: str, new: Callable[[], T]) -> T:
        state = self.parts.get(name)
        if state is None:
            state = self.parts[name] = new()
        return state  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Part:
    """Something a batch stores, inside the flush's transaction; returns what it refused doing so."""

    name: str
    store: Callable[[Plan], list[Refusal]]


@dataclass(frozen=True)
class PayloadKind(Part):
    """A ClientMessage payload's whole path: check (pure, raises Rejected), fold into a batch, store.

    `check(ctx, client_pk, payload)` returns the write the buffer holds. A kind that never touches the
    Client row (an ack) sets `needs_client_pk=False`: it then gets 0 and costs no client lookup.
    A kind whose repeat stores nothing new (an upsert or a unique key, ordered by the bot's
    reported_at) sets `idempotent=True`: a receipting bot's resend of it needs no ReceivedMessage key.
    """

    check: Callable[[MessageContext, int, Any], Write] = field(kw_only=True)
    fold: Callable[[Plan, Any], None] = field(kw_only=True)
    needs_client_pk: bool = field(default=True, kw_only=True)
    idempotent: bool = field(default=False, kw_only=True)


def nothing_to_store(plan: Plan) -> list[Refusal]:
    """For kinds that only fold into another part (a heartbeat updates the Client row)."""
    return []


@dataclass
class FlushReport:
    """What storing a batch tells the buffer: refusals found then (to count and log), clients whose cached
    pk failed, and the receipts to send."""

    written: int = 0
    refused: list[Refusal] = field(default_factory=list)
    stale_clients: set[str] = field(default_factory=set)
    receipts: dict[str, list[str]] = field(default_factory=dict)  # client_id -> message_ids now committed
    unstored: list[Write] = field(default_factory=list)  # the database went away before these: try again
    unavailable: str = ""  # why, when `unstored` is not empty

    def absorb(self, other: "FlushReport") -> None:
        """Add what storing a remainder of the same batch reported."""
        self.written += other.written
        self.refused += other.refused
        self.stale_clients |= other.stale_clients
        self.add_receipts(other.receipts)

    def add_receipts(self, receipts: Mapping[str, list[str]]) -> None:
        for client_id, message_ids in receipts.items():
            self.receipts.setdefault(client_id, []).extend(message_ids)


def refused_at_flush(write: Write, reason: str) -> list[Refusal]:
    """The refusal of a write the flush could not store; a refusal that cannot be stored itself stays
    its log line: it was counted when it was made."""
    return [] if isinstance(write, Refusal) else [Refusal(write.ctx, write.kind, reason, at_flush=True)]


class StorageUnavailable(Exception):
    """The database could not take a batch for a reason of its own, not of one write: try it again."""
