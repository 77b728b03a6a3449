"""Route one ClientMessage through the table: its kind checks it, then a forward hook (the ack's bus) or
the ingest buffer takes the checked write.

The stream awaits dispatch(ctx, message) per message: validation happens here, synchronously, so
a bad payload gets its precise reason at once (returned, and buffered as a RejectedMessage); a good
one is buffered and stored with its batch. Refusals that need stored rows (a disagreeing repeat
transaction, an ack of another client's command) or that come from the database are found when the
batch is written, and counted there. dispatch() never raises (except asyncio.CancelledError), so
one bad message cannot end a stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from django.db import DatabaseError

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.limits import REASON_MAX

from ..inbound import MessageContext, Refusal, Rejected
from ..ingest.plan import PayloadKind, Write
from ..ingest.receipts import Forwarded
from ..proto.converters import CryptoProtobufConverter as convert
from .clients import KNOWN_CLIENTS, client_pk, forget_client
from .table import KINDS

logger = logging.getLogger(__name__)

EMPTY_PAYLOAD: Final = "empty payload"
MISSING_MESSAGE_ID: Final = "message_id: required once the client registered with wants_receipts"
# (context, payload) -> True when the payload was recorded elsewhere and needs no storing here
Forward = Callable[[MessageContext, Any], Awaitable[bool]]


class WriteSink(Protocol):
    """Where checked writes go (the replica's IngestBuffer); put() may wait for room."""

    async def put(self, write: Write | Refusal) -> None: ...


class Dispatcher:
    """dispatch(ctx, message) -> None when the payload was accepted, else the reason it was not."""

    def __init__(self, sink: WriteSink, forwards: Mapping[str, Forward] | None = None) -> None:
        self.sink, self.forwards = sink, dict(forwards or {})

    async def __call__(self, ctx: MessageContext, message: pb2.ClientMessage) -> str | None:
        kind = message.WhichOneof("payload") or ""
        try:
            if ctx.receipt and not ctx.message_id:
                raise Rejected(MISSING_MESSAGE_ID)
            if ctx.sent_at is None and (message.timestamp.seconds or message.timestamp.nanos):
                convert.to_datetime(message.timestamp, "timestamp")  # set but out of range: refused
            payload_kind = _kind_of(kind)
            pk = (KNOWN_CLIENTS.get(ctx.client_id) or await client_pk(ctx.client_id)
                  if payload_kind.needs_client_pk else 0)
            payload = getattr(message, kind)
            write = payload_kind.check(ctx, pk, payload)
        except Rejected as exc:
            reason = exc.reason[:REASON_MAX]
        except DatabaseError as exc:  # only the client row lookup touches the database here
            forget_client(ctx.client_id)
            logger.error("message.storage_error client_id=%s message_id=%r payload=%s error=%s",
                         ctx.client_id, ctx.message_id, kind, type(exc).__name__)
            reason = f"storage error: {type(exc).__name__}"
        except Exception as exc:  # a handler bug must not end the stream
            logger.error("message.handler_error client_id=%s message_id=%r payload=%s error=%s",
                         ctx.client_id, ctx.message_id, kind, type(exc).__name__, exc_info=True)
            reason = f"internal error: {type(exc).__name__}"
        else:
            forward = self.forwards.get(kind)
            if forward is None or not await forward(ctx, payload):
                await self.sink.put(write)
            elif ctx.receipt:  # recorded elsewhere; the buffer only keys and receipts it, in order
                await self.sink.put(Forwarded(ctx))
            return None
        logger.warning("message.rejected client_id=%s message_id=%r payload=%s reason=%s",
                       ctx.client_id, ctx.message_id, kind, reason)
        await self.sink.put(Refusal(ctx, kind, reason))
        return reason


def _kind_of(kind: str) -> PayloadKind:
    """A payload from a newer contract arrives as an unknown field, i.e. as an empty payload."""
    if not kind:
        raise Rejected(EMPTY_PAYLOAD)
    payload_kind = KINDS.get(kind)
    if payload_kind is None:
        raise Rejected(f"unsupported payload: {kind}")
    return payload_kind
