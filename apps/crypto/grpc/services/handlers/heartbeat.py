"""heartbeat: presence only; the batch keeps one last_seen per client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from ..inbound import MessageContext
from ..ingest.plan import PayloadKind, Plan, nothing_to_store
from .clients import patch


@dataclass(slots=True)
class HeartbeatWrite:
    kind: ClassVar[str] = "heartbeat"
    ctx: MessageContext
    client_pk: int


def check(ctx: MessageContext, client_pk: int, payload: pb2.HeartbeatUpdate) -> HeartbeatWrite:
    return HeartbeatWrite(ctx, client_pk)


def fold(plan: Plan, w: HeartbeatWrite) -> None:
    patch(plan, w.client_pk, w.ctx.client_id).fields["last_seen"] = w.ctx.received_at


HEARTBEAT = PayloadKind(HeartbeatWrite.kind, nothing_to_store, check=check, fold=fold, idempotent=True)
