"""Stream open/close bookkeeping: Client.status, last_seen and a StatusChange row, in one transaction each.

Connecting always means active (the bot re-reports paused/error itself with a StatusUpdate).
Disconnecting means disconnected, except for a bot that reported itself stopped: stopped already
says it is gone, on purpose, which is more than disconnected would.
Bookkeeping must not end or block a stream, so storage errors are logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import DatabaseError, transaction

from apps.crypto.models import Client, ClientStatus

from ..inbound import Rejected
from .clients import client_pk, forget_client
from .status import record_status

logger = logging.getLogger(__name__)
DETAILS_MAX = 1_000  # reasons come from our own code, but may quote a peer's error text


async def client_connected(client_id: str, replica_id: str) -> None:
    details = f"connected via {replica_id}"[:DETAILS_MAX]
    await _guarded("connected", client_id, lambda pk: _record(pk, ClientStatus.ACTIVE, details))


async def client_disconnected(client_id: str, reason: str) -> None:
    details = f"disconnected: {reason}"[:DETAILS_MAX]
    await _guarded("disconnected", client_id, lambda pk: sync_to_async(_record_disconnect)(pk, details))


def _record(pk: int, status: str, details: str) -> Awaitable[None]:
    return sync_to_async(record_status)(pk, status, details, last_seen=datetime.now(UTC))


def _record_disconnect(pk: int, details: str) -> None:
    with transaction.atomic():
        current = Client.objects.filter(pk=pk).values_list("status", flat=True).first()
        status = ClientStatus.STOPPED if current == ClientStatus.STOPPED else ClientStatus.DISCONNECTED
        record_status(pk, status, details, last_seen=datetime.now(UTC))


async def _guarded(event: str, client_id: str, write: Callable[[int], Awaitable[None]]) -> None:
    try:
        await write(await client_pk(client_id))
    except (DatabaseError, Rejected) as exc:
        forget_client(client_id)  # a stale cached pk heals on the next call
        logger.error("client.lifecycle_not_stored event=%s client_id=%s error=%s",
                     event, client_id, type(exc).__name__)
