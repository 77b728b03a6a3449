"""command_ack: close the CommandRecord of the acknowledged command.

The record is looked up by (command_id, client_id), so a client can only ever update its own
commands. An ack for an unknown command still leaves a record (kind ''), since the bot says it ran
something; an ack for a command_id that belongs to another client hits the unique command_id and
is rejected without touching that client's record.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.models import CommandOutcome, CommandRecord

from .base import MessageContext, Rejected
from .fields import text


def _ack_fields(ctx: MessageContext, ack: common_pb2.CommandAck) -> dict[str, Any]:
    """finished_at is the server's receive time: bot clocks are not trusted for the audit log."""
    return {
        "outcome": CommandOutcome.ACKED if ack.success else CommandOutcome.FAILED,
        "ack_success": ack.success,
        "ack_message": text(ctx, "command_ack.message", CommandRecord, "ack_message", ack.message),
        "ack_error": text(ctx, "command_ack.error", CommandRecord, "ack_error", ack.error),
        "finished_at": ctx.received_at,
    }


async def handle_command_ack(ctx: MessageContext, ack: common_pb2.CommandAck) -> None:
    command_id = text(ctx, "command_ack.command_id", CommandRecord, "command_id", ack.command_id, required=True)
    defaults = _ack_fields(ctx, ack)
    try:
        await CommandRecord.objects.aupdate_or_create(
            command_id=command_id, client_id=ctx.client_id, defaults=defaults
        )
    except IntegrityError:
        raise Rejected(f"command_ack.command_id: {command_id[:40]!r} belongs to another client") from None
