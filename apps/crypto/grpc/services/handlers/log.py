"""log: a bot log line, stored as sent (within limits); extra_data stays opaque text."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import LogEntry

from ..ingest.writes import LogWrite
from .base import MessageContext
from .fields import text


def handle_log(ctx: MessageContext, client_pk: int, payload: pb2.LogEntry) -> LogWrite:
    return LogWrite(
        ctx, client_pk,
        level=text(ctx, "log.level", LogEntry, "level", payload.level),
        message=text(ctx, "log.message", LogEntry, "message", payload.message),
        extra_data=text(ctx, "log.extra_data", LogEntry, "extra_data", payload.extra_data),
    )
