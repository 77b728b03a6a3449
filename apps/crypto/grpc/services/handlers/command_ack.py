"""command_ack: close the CommandRecord of the acknowledged command.

An ack is checked (check_ack) before the bus sees it, so nothing of an invalid ack reaches Redis.
A client can only ever update its own commands: an ack for a command_id whose record belongs to
another client is rejected when the batch is stored (ingest/merge.py, resolve_acks), without
touching that client's record. An ack for an unknown command still leaves a record (kind ''),
since the bot says it ran something.
"""

from __future__ import annotations

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.models import CommandRecord

from ..ingest.writes import AckWrite
from .base import MessageContext
from .fields import text


def check_ack(ctx: MessageContext, ack: common_pb2.CommandAck) -> tuple[str, str, str]:
    """(command_id, message, error), checked against the record's columns; raises Rejected."""
    return (text(ctx, "command_ack.command_id", CommandRecord, "command_id", ack.command_id, required=True),
            text(ctx, "command_ack.message", CommandRecord, "ack_message", ack.message),
            text(ctx, "command_ack.error", CommandRecord, "ack_error", ack.error))


def handle_command_ack(ctx: MessageContext, client_pk: int, ack: common_pb2.CommandAck) -> AckWrite:
    command_id, message, error = check_ack(ctx, ack)
    return AckWrite(ctx, command_id=command_id, success=ack.success, message=message, error=error)
