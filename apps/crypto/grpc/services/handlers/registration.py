"""register: a bot introduces itself; the latest registration wins and marks it active.

Stored as an upsert by client_id (not a bare update), so a registration also restores a row an
operator deleted.
"""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, ClientStatus

from ..ingest.writes import RegisterWrite
from .base import MessageContext
from .fields import text


def handle_register(ctx: MessageContext, client_pk: int, payload: pb2.ClientRegistration) -> RegisterWrite:
    return RegisterWrite(
        ctx, client_pk, status=ClientStatus.ACTIVE,
        name=text(ctx, "register.client_name", Client, "name", payload.client_name),
        client_type=text(ctx, "register.client_type", Client, "client_type", payload.client_type),
        version=text(ctx, "register.version", Client, "version", payload.version),
        api_url=text(ctx, "register.api_url", Client, "api_url", payload.api_url),
    )
