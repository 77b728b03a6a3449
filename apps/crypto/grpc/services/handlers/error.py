"""error: a bot-side error report, kept verbatim (within limits) for operators."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import ErrorReport

from ..ingest.writes import ErrorWrite
from .base import MessageContext
from .fields import text


def handle_error(ctx: MessageContext, client_pk: int, payload: pb2.ErrorReport) -> ErrorWrite:
    return ErrorWrite(
        ctx, client_pk,
        severity=text(ctx, "error.severity", ErrorReport, "severity", payload.severity),
        message=text(ctx, "error.message", ErrorReport, "message", payload.message),
        traceback=text(ctx, "error.traceback", ErrorReport, "traceback", payload.traceback),
    )
