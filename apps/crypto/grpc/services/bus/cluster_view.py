"""Read-only cluster view for operators: live clients and replicas, from Redis presence keys."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from config.env import ENV

from ..config import load_config
from .connect import build_redis
from .keys import Keys


@dataclass(frozen=True)
class ClientPresence:
    """One connected client as operators see it, parsed from its presence hash."""

    client_id: str
    replica: str
    connected_at: datetime
    last_heartbeat: datetime


def _ts(raw: bytes | str) -> datetime:
    return datetime.fromtimestamp(float(raw), UTC)


async def fetch_cluster_view() -> tuple[list[ClientPresence], list[dict[str, object]]]:
    """Every connected client (with its replica) and every live replica."""
    config = load_config()
    keys, redis = Keys(config.redis_key_prefix), build_redis(ENV.redis_url, config.redis_socket_timeout)
    try:
        clients = [await redis.hgetall(key) async for key in _scan(redis, keys.presence_pattern())]
        replicas = [json.loads(await redis.get(key) or "{}") async for key in _scan(redis, keys.replica_pattern())]
    finally:
        await redis.aclose()
    rows = [ClientPresence(h[b"client_id"].decode(), h[b"replica"].decode(), _ts(h[b"connected_at"]),
                           _ts(h[b"last_heartbeat"])) for h in clients if h]
    return sorted(rows, key=lambda r: r.client_id), [r for r in replicas if r]


async def _scan(redis, pattern: str):
    async for key in redis.scan_iter(match=pattern, count=500):
        yield key


def cluster_view() -> tuple[list[ClientPresence], list[dict[str, object]]]:
    """Sync entry point for management commands and the admin."""
    return asyncio.run(fetch_cluster_view())
