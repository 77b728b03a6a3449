"""register: a bot introduces itself; the latest registration wins and marks it active."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, ClientStatus

from .base import MessageContext
from .fields import text


async def handle_register(ctx: MessageContext, payload: pb2.ClientRegistration) -> None:
    """update_or_create (not a bare update) so a registration also restores a row an operator deleted."""
    defaults = {
        "name": text(ctx, "register.client_name", Client, "name", payload.client_name),
        "client_type": text(ctx, "register.client_type", Client, "client_type", payload.client_type),
        "version": text(ctx, "register.version", Client, "version", payload.version),
        "api_url": text(ctx, "register.api_url", Client, "api_url", payload.api_url),
        "status": ClientStatus.ACTIVE,
        "last_seen": ctx.received_at,
    }
    await Client.objects.aupdate_or_create(client_id=ctx.client_id, defaults=defaults)
