"""command_ack: a bot's answer to a command. Its whole path: checked here, handed to the bus, recorded.

1. check(): the ack is checked before anything else sees it, so nothing of an invalid ack reaches Redis.
2. forward_to(bus): a valid ack goes to the bus, which answers the caller waiting for it (on any
   replica); that caller's replica records the outcome (records.CommandJournal).
3. An ack nobody waits for is stored with the bot's other messages (fold/store), through
   records.store_acks. A client can only ever update its own commands: an ack of a command whose
   record belongs to another client is refused, without touching that client's record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.models import CommandRecord

from ..inbound import MessageContext, Refusal
from ..ingest.plan import PayloadKind, Plan
from ..records import AckRow, store_acks, stored_records
from .fields import text


@dataclass(slots=True)
class AckWrite:
    kind: ClassVar[str] = "command_ack"
    ctx: MessageContext
    command_id: str
    success: bool
    message: str
    error: str


def check(ctx: MessageContext, client_pk: int, ack: common_pb2.CommandAck) -> AckWrite:
    """Checked against the record's columns; raises Rejected."""
    return AckWrite(ctx,
                    command_id=text(ctx, "command_ack.command_id", CommandRecord, "command_id", ack.command_id,
                                    required=True),
                    success=ack.success,
                    message=text(ctx, "command_ack.message", CommandRecord, "ack_message", ack.message),
                    error=text(ctx, "command_ack.error", CommandRecord, "ack_error", ack.error))


class AckRouter(Protocol):
    """The bus, as the ack sees it: True when the waiting caller's replica took the ack (it records it)."""

    async def on_ack(self, client_id: str, ack: common_pb2.CommandAck) -> bool: ...


def forward_to(router: AckRouter) -> Callable[[MessageContext, common_pb2.CommandAck], Awaitable[bool]]:
    """The dispatcher's hook for checked acks: True means recorded elsewhere, not stored here."""

    async def forward(ctx: MessageContext, ack: common_pb2.CommandAck) -> bool:
        return await router.on_ack(ctx.client_id, ack)

    return forward


def fold(plan: Plan, w: AckWrite) -> None:
    plan.part(COMMAND_ACK.name, dict).setdefault(w.command_id, []).append(w)


def resolve(groups: Mapping[str, list[AckWrite]], owners: Mapping[str, str]) -> tuple[list[AckRow], list[Refusal]]:
    """Pure: an ack belongs to the stored record's client, else to the first client in the batch that acked
    it; the last ack of that client wins, acks of others are refused. `owners`: command_id -> client_id."""
    rows: list[AckRow] = []
    refused: list[Refusal] = []
    for command_id, writes in groups.items():
        owner = owners.get(command_id) or writes[0].ctx.client_id
        mine = [w for w in writes if w.ctx.client_id == owner]
        refused += [Refusal(w.ctx, w.kind, f"command_ack.command_id: {command_id[:40]!r} belongs to another client",
                            at_flush=True) for w in writes if w.ctx.client_id != owner]
        if mine:
            last = mine[-1]
            rows.append(AckRow(command_id, owner, last.success, last.message, last.error, last.ctx.received_at))
    return rows, refused


def store(plan: Plan) -> list[Refusal]:
    groups: dict[str, list[AckWrite]] = plan.part(COMMAND_ACK.name, dict)
    if not groups:
        return []
    stored = stored_records(list(groups))
    rows, refused = resolve(groups, {command_id: client_id for command_id, (client_id, _) in stored.items()})
    store_acks(rows, stored)
    return refused


COMMAND_ACK = PayloadKind(AckWrite.kind, store, check=check, fold=fold, needs_client_pk=False)
