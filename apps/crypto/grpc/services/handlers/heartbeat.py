"""heartbeat: presence only; one UPDATE of last_seen."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client

from .base import MessageContext
from .clients import client_pk


async def handle_heartbeat(ctx: MessageContext, payload: pb2.HeartbeatUpdate) -> None:
    pk = await client_pk(ctx.client_id)
    await Client.objects.filter(pk=pk).aupdate(last_seen=ctx.received_at)
