"""A real grpc.aio replica inside the test process, on a free port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import grpc

from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from apps.crypto.grpc.services.auth import create_client_key
from apps.crypto.grpc.services.config import CryptoStreamingConfig
from apps.crypto.grpc.services.serving import Replica, start_replica
from config.env import ENV

OPERATOR_TOKEN = "test-operator-token"
FAST = CryptoStreamingConfig(shutdown_grace=5.0, drain_window=0.5, client_disconnect_grace=0.0)


@dataclass
class RunningServer:
    replica: Replica
    target: str
    operator_token: str = OPERATOR_TOKEN

    async def make_client_key(self, client_id: str) -> str:
        return await create_client_key(client_id)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target)

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.operator_token}"),)


@asynccontextmanager
async def running_server(auth: bool = True, redis_url: str = "", replica_id: str = "", publisher: Any = None,
                         port: int = 0, **config_overrides: Any) -> AsyncIterator[RunningServer]:
    """Start a replica with FAST defaults (override any CryptoStreamingConfig field)."""
    env = replace(ENV, auth_enabled=auth, operator_tokens=(OPERATOR_TOKEN,), redis_url=redis_url,
                  replica_id=replica_id or f"test-{uuid.uuid4().hex[:8]}", centrifugo_api_url="",
                  metrics_port=0)
    parts = {"publisher": publisher} if publisher is not None else {}
    replica = await start_replica("127.0.0.1", port, replace(FAST, **config_overrides), env=env, **parts)
    try:
        yield RunningServer(replica, f"127.0.0.1:{replica.port}")
    finally:
        await replica.stop()


def stub(channel: grpc.aio.Channel) -> pb2_grpc.CryptoStreamingServiceStub:
    return pb2_grpc.CryptoStreamingServiceStub(channel)
