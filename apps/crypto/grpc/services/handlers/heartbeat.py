"""heartbeat: presence only; the batch keeps one last_seen per client."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from ..ingest.writes import HeartbeatWrite
from .base import MessageContext


def handle_heartbeat(ctx: MessageContext, client_pk: int, payload: pb2.HeartbeatUpdate) -> HeartbeatWrite:
    return HeartbeatWrite(ctx, client_pk)
