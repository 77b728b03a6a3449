"""error: a bot-side error report, kept verbatim (within limits) for operators."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import ErrorReport

from .base import MessageContext
from .clients import client_pk
from .fields import text


async def handle_error(ctx: MessageContext, payload: pb2.ErrorReport) -> None:
    fields = {
        "severity": text(ctx, "error.severity", ErrorReport, "severity", payload.severity),
        "message": text(ctx, "error.message", ErrorReport, "message", payload.message),
        "traceback": text(ctx, "error.traceback", ErrorReport, "traceback", payload.traceback),
    }
    await ErrorReport.objects.acreate(client_id=await client_pk(ctx.client_id), **fields)
