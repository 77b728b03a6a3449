"""Route one ClientMessage to its handler; turn every refusal or storage failure into a recorded reason.

dispatch() never raises (except asyncio.CancelledError), so one bad message cannot end a stream.
"""

from __future__ import annotations

import logging
from typing import Final

from django.db import DatabaseError

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import RejectedMessage

from .base import Handler, MessageContext, Rejected
from .clients import client_pk, forget_client
from .table import HANDLERS

logger = logging.getLogger(__name__)

REASON_MAX: Final = 512  # RejectedMessage.reason max_length
ID_MAX: Final = 128  # RejectedMessage.client_id / message_id max_length
EMPTY_PAYLOAD: Final = "empty payload"


async def dispatch(ctx: MessageContext, message: pb2.ClientMessage) -> str | None:
    """None when the payload was stored; otherwise the reason it was not (also kept as a RejectedMessage)."""
    kind = message.WhichOneof("payload") or ""
    reason = await _handle(ctx, message, kind)
    if reason is not None:
        await _record_rejection(ctx, kind, reason)
    return reason


async def _handle(ctx: MessageContext, message: pb2.ClientMessage, kind: str) -> str | None:
    try:
        handler = _handler_for(kind)
        await client_pk(ctx.client_id)
        await handler(ctx, getattr(message, kind))
    except Rejected as exc:
        return exc.reason[:REASON_MAX]
    except DatabaseError as exc:
        forget_client(ctx.client_id)  # the cached pk may be what failed (row deleted)
        logger.error("message.storage_error client_id=%s message_id=%r payload=%s error=%s",
                     ctx.client_id, ctx.message_id, kind, type(exc).__name__)
        return f"storage error: {type(exc).__name__}"
    except Exception as exc:  # a handler bug must not end the stream
        logger.error("message.handler_error client_id=%s message_id=%r payload=%s error=%s",
                     ctx.client_id, ctx.message_id, kind, type(exc).__name__, exc_info=True)
        return f"internal error: {type(exc).__name__}"
    return None


def _handler_for(kind: str) -> Handler:
    """A payload from a newer contract arrives as an unknown field, i.e. as an empty payload."""
    if not kind:
        raise Rejected(EMPTY_PAYLOAD)
    handler = HANDLERS.get(kind)
    if handler is None:
        raise Rejected(f"unsupported payload: {kind}")
    return handler


async def _record_rejection(ctx: MessageContext, kind: str, reason: str) -> None:
    """Best effort: when the database itself is down, the log line is all that is left."""
    logger.warning("message.rejected client_id=%s message_id=%r payload=%s reason=%s",
                   ctx.client_id, ctx.message_id, kind, reason)
    try:
        await RejectedMessage.objects.acreate(
            client_id=ctx.client_id[:ID_MAX], message_id=ctx.message_id[:ID_MAX], payload_type=kind, reason=reason
        )
    except DatabaseError as exc:
        logger.error("message.rejection_not_stored client_id=%s message_id=%r error=%s",
                     ctx.client_id, ctx.message_id, type(exc).__name__)
