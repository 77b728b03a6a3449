"""A real `manage.py rungrpc` process on embedded defaults: serves, drains on SIGTERM, exits cleanly."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess, health_status
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, heartbeat
from tests.support.waiting import eventually


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(CRYPTO_AUTH="off", CRYPTO_OPERATOR_TOKENS=OPERATOR_TOKEN, GRPC_SHUTDOWN_GRACE="6",
               CRYPTO_DRAIN_WINDOW="1", PYTHONUNBUFFERED="1")
    return env


async def test_sigterm_drains_streams_and_exits_within_grace():
    log = Path(tempfile.mkdtemp()) / "rungrpc.log"
    replica = ReplicaProcess("solo-" + uuid.uuid4().hex[:6], embedded_env(), log).start()
    try:
        await asyncio.to_thread(replica.wait_ready, 60, "")
        assert health_status(replica.target, "liveness") == health_pb2.HealthCheckResponse.SERVING
        bots = [RawBot(replica.target, f"solo-bot-{i}") for i in range(3)]
        operator = Operator(OPERATOR_TOKEN)
        for bot in bots:
            await bot.__aenter__()
            bot.send(heartbeat(bot.client_id))
        for bot in bots:
            await eventually(lambda: _sent(operator, replica.target, bot.client_id), message="bot attached")
        started = time.monotonic()
        replica.terminate()
        statuses = [await bot.ended(10) for bot in bots]
        exit_code = await asyncio.to_thread(replica.wait_exit, 10)
        elapsed = time.monotonic() - started
        assert statuses == [grpc.StatusCode.UNAVAILABLE] * 3, [b.details for b in bots]
        assert all("draining" in bot.details for bot in bots)
        assert exit_code == 0, replica.log_tail()
        assert elapsed < 6, elapsed
        for bot in bots:
            await bot.__aexit__()
        await operator.close()
    finally:
        replica.kill()


async def _sent(operator: Operator, target: str, client_id: str) -> bool:
    return (await operator.send(target, client_id, timeout=3)).success


async def test_a_second_server_on_a_port_in_use_fails_instead_of_sharing_it():
    """gRPC's default SO_REUSEPORT let two replicas bind one port and split its connections."""
    import grpc

    from apps.crypto.grpc.services.config import CryptoStreamingConfig
    from apps.crypto.grpc.services.serving import server_options
    from tests.support.ports import free_port

    port = free_port()
    first = grpc.aio.server(options=server_options(CryptoStreamingConfig()))
    assert first.add_insecure_port(f"127.0.0.1:{port}") == port
    await first.start()
    try:
        second = grpc.aio.server(options=server_options(CryptoStreamingConfig()))
        try:
            bound = second.add_insecure_port(f"127.0.0.1:{port}")
        except RuntimeError:
            bound = 0
        assert bound == 0
    finally:
        await first.stop(None)
