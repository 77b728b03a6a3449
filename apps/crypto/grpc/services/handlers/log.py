"""log: a bot log line, stored as sent (within limits); extra_data stays opaque text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import LogEntry

from ..inbound import MessageContext, Refusal
from ..ingest.plan import PayloadKind, Plan
from .fields import text


@dataclass(slots=True)
class LogWrite:
    kind: ClassVar[str] = "log"
    ctx: MessageContext
    client_pk: int
    level: str
    message: str
    extra_data: str


def check(ctx: MessageContext, client_pk: int, payload: pb2.LogEntry) -> LogWrite:
    return LogWrite(
        ctx, client_pk,
        level=text(ctx, "log.level", LogEntry, "level", payload.level),
        message=text(ctx, "log.message", LogEntry, "message", payload.message),
        extra_data=text(ctx, "log.extra_data", LogEntry, "extra_data", payload.extra_data),
    )


def fold(plan: Plan, w: LogWrite) -> None:
    plan.part(LOG.name, list).append(w)


def store(plan: Plan) -> list[Refusal]:
    LogEntry.objects.bulk_create([LogEntry(client_id=w.client_pk, level=w.level, message=w.message,
                                           extra_data=w.extra_data) for w in plan.part(LOG.name, list)])
    return []


LOG = PayloadKind(LogWrite.kind, store, check=check, fold=fold)
