"""Which writes of a batch a bot gets a receipt for, and which are resends to skip (pure, no database).

A bot that registered with wants_receipts keeps every message until a MessageReceipt names it, and
resends the unreceipted ones after a reconnect, to whichever replica it reaches. The service stores
each (client_id, message_id) of such a bot at most once:
- a kind whose repeat stores nothing new (idempotent: wallet upserts, transactions by their id,
  heartbeats), sent with the bot's timestamp, is simply stored again: a no-op, ordered by that time;
- any other write (a log line, a status history row, a refusal) is keyed: the writer records its key
  in ReceivedMessage inside the batch's transaction (INSERT .. ON CONFLICT DO NOTHING RETURNING), and
  only the writes whose key was new there are folded and stored.
Every receipted write, new or a resend, is named in a receipt once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..inbound import MessageContext
from .plan import Write

Key = tuple[str, str]  # (client_id, message_id)


@dataclass(slots=True)
class Forwarded:
    """A receipted message recorded elsewhere (an ack settled over the bus): in a batch only to be receipted."""

    kind: ClassVar[str] = "forwarded"
    ctx: MessageContext


def receipted(write: Write) -> bool:
    return write.ctx.receipt and bool(write.ctx.message_id)


def keys_of(writes: Iterable[Write], keyed: Callable[[Write], bool] = lambda w: True) -> list[Key]:
    """The batch's receipted keys (of the `keyed` writes), each once, in message order."""
    return list(dict.fromkeys((w.ctx.client_id, w.ctx.message_id) for w in writes if receipted(w) and keyed(w)))


def keep_new(writes: Sequence[Write], new: Collection[Key], keyed: Callable[[Write], bool] = lambda w: True
             ) -> list[Write]:
    """What to store: every write that is not keyed, and the first write of each key that was new."""
    kept: list[Write] = []
    taken: set[Key] = set()
    for w in writes:
        if not (receipted(w) and keyed(w)):
            kept.append(w)
            continue
        key = (w.ctx.client_id, w.ctx.message_id)
        if key in new and key not in taken:
            taken.add(key)
            kept.append(w)
    return kept


def by_client(keys: Iterable[Key]) -> dict[str, list[str]]:
    """client_id -> message_ids, for the receipts."""
    out: dict[str, list[str]] = {}
    for client_id, message_id in keys:
        out.setdefault(client_id, []).append(message_id)
    return out
