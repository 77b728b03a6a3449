"""Shared by the operations and HTTP API tests: a bot on a real replica, the command target, an admin user.

Django's test clients are sync while the replica serves on the test's event loop, so every sync
Django call (test client, call_command, sync ORM) runs in a thread: the loop keeps serving.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient

from apps.crypto import live
from apps.crypto.grpc.services.bus import cluster_view
from apps.crypto.grpc.services.bus.keys import Keys
from apps.crypto.models import Client, CommandRecord
from config.env import ENV
from tests.support.grpc_server import RunningServer
from tests.support.rawbot import RawBot, heartbeat
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

HOST = "localhost"  # in ALLOWED_HOSTS ("testserver" is not)
# The manifest storage needs collectstatic; pages are rendered here, not their assets.
PLAIN_STATIC = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server shared by the replicas of one test module (re-exported by conftest)."""
    server = RedisServer().start()
    yield server
    server.stop()


def new_client_id() -> str:
    return f"bot-{uuid.uuid4().hex[:10]}"


def point_commands_at(monkeypatch: pytest.MonkeyPatch, target: str, token: str) -> None:
    """Where web code sends commands, and which operator tokens the HTTP API accepts."""
    monkeypatch.setenv("CRYPTO_GRPC_TARGET", target)
    monkeypatch.setenv("CRYPTO_OPERATOR_TOKENS", token)
    monkeypatch.delenv("CRYPTO_OPERATOR_TOKEN", raising=False)


def use_cluster_redis(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """REDIS_URL is read once at import (config.env.ENV): swap it where the cluster view reads it."""
    env = replace(ENV, redis_url=url)
    monkeypatch.setattr(live, "ENV", env)
    monkeypatch.setattr(cluster_view, "ENV", env)


async def connected_bot(server: RunningServer, client_id: str = "", **kwargs: object) -> RawBot:
    """A RawBot (auto-acks everything but ping) attached to `server`, with its Client row written."""
    client_id = client_id or new_client_id()
    bot = RawBot(server.target, client_id, await server.make_client_key(client_id), **kwargs)
    await bot.__aenter__()
    bot.send(heartbeat(client_id))
    await eventually(lambda: client_id in server.replica.runtime.bus.sessions, message="attached")
    await eventually(lambda: Client.objects.filter(client_id=client_id).aexists(), message="client row")
    return bot


async def owned_in_redis(url: str, client_id: str, prefix: str = "crypto") -> None:
    """Wait until the client's claim is in the shared Redis: from then on any replica routes to it."""
    redis = aioredis.Redis.from_url(url)
    try:
        await eventually(lambda: redis.exists(Keys(prefix).owner(client_id)), message=f"{client_id} claimed")
    finally:
        await redis.aclose()


async def finished_record(command_id: str, routed: bool = False, timeout: float = 10.0) -> CommandRecord:
    """The CommandRecord once the journals have written how it ended (and, if `routed`, where it went)."""
    rows = CommandRecord.objects.filter(command_id=command_id, finished_at__isnull=False)
    if routed:
        rows = rows.exclude(routed_to="")

    async def done() -> bool:
        return await rows.aexists()
    await eventually(done, timeout=timeout, message=f"record of {command_id} finished")
    return await CommandRecord.objects.aget(command_id=command_id)


def admin_browser() -> HttpClient:
    """A logged-in superuser's test client (sync: call in a thread from async tests)."""
    tag = uuid.uuid4().hex[:12]
    user = get_user_model().objects.create_superuser(email=f"{tag}@example.com", username=tag, password=tag)
    browser = HttpClient(HTTP_HOST=HOST)
    browser.force_login(user)
    return browser
