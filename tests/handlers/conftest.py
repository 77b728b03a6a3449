"""Helpers for handler tests: every test uses its own client_id, since the migrated DB is shared.

Messages go through the real path: Dispatcher -> IngestBuffer -> the batch writer on the test
database. send() waits until what it dispatched is stored, so a test reads the rows right after.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.config import CryptoStreamingConfig
from apps.crypto.grpc.services.handlers.clients import forget_client
from apps.crypto.grpc.services.handlers.dispatch import Dispatcher
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.inbound import MessageContext
from apps.crypto.grpc.services.ingest import build_ingest_buffer
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer

Send = Callable[..., Awaitable[str | None]]


def context(client_id: str, max_text_chars: int = 10_000, message_id: str | None = None) -> MessageContext:
    return MessageContext(
        client_id=client_id,
        message_id=message_id or str(uuid.uuid4()),
        replica_id="replica-test",
        received_at=datetime.now(UTC),
        max_text_chars=max_text_chars,
    )


@pytest.fixture
def client_id() -> str:
    return f"bot-{uuid.uuid4()}"


@pytest.fixture
async def ingest() -> AsyncIterator[IngestBuffer]:
    """The replica's buffer with the default knobs, writing to the test database."""
    buffer = build_ingest_buffer(CryptoStreamingConfig(), PARTS, forget_client)
    buffer.start()
    yield buffer
    await buffer.close()


@pytest.fixture
def dispatch(ingest: IngestBuffer) -> Dispatcher:
    return Dispatcher(ingest)


@pytest.fixture
def send(client_id: str, ingest: IngestBuffer, dispatch: Dispatcher) -> Send:
    """send(wallet_update=pb2.WalletUpdate(...)) dispatches one message as this test's client and waits
    until it is stored."""

    async def _send(max_text_chars: int = 10_000, message_id: str | None = None, **payload: Any) -> str | None:
        ctx = context(client_id, max_text_chars, message_id)
        message = pb2.ClientMessage(client_id=client_id, message_id=ctx.message_id, **payload)
        reason = await dispatch(ctx, message)
        await ingest.settle()
        return reason

    return _send
