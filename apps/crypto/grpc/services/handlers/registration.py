"""register: a bot introduces itself; the latest registration wins and marks it active.

Stored as an upsert by client_id (not a bare update), so a registration also restores a row an
operator deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, ClientStatus

from ..inbound import MessageContext
from ..ingest.plan import PayloadKind, Plan, nothing_to_store
from .clients import patch
from .fields import text


@dataclass(slots=True)
class RegisterWrite:
    kind: ClassVar[str] = "register"
    ctx: MessageContext
    client_pk: int
    status: str  # what a registration means for Client.status (active)
    name: str
    client_type: str
    version: str
    api_url: str


def check(ctx: MessageContext, client_pk: int, payload: pb2.ClientRegistration) -> RegisterWrite:
    return RegisterWrite(
        ctx, client_pk, status=ClientStatus.ACTIVE,
        name=text(ctx, "register.client_name", Client, "name", payload.client_name),
        client_type=text(ctx, "register.client_type", Client, "client_type", payload.client_type),
        version=text(ctx, "register.version", Client, "version", payload.version),
        api_url=text(ctx, "register.api_url", Client, "api_url", payload.api_url),
    )


def fold(plan: Plan, w: RegisterWrite) -> None:
    row = patch(plan, w.client_pk, w.ctx.client_id)
    row.fields.update(name=w.name, client_type=w.client_type, version=w.version, api_url=w.api_url,
                      status=w.status, last_seen=w.ctx.received_at)
    row.restore = True


REGISTER = PayloadKind(RegisterWrite.kind, nothing_to_store, check=check, fold=fold)
