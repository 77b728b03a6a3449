"""Read-only cluster view for operators: live replicas from their leases, clients from the replicas.

Nothing is kept in Redis per client for this: the view asks every live replica over the bus (one
LIST envelope each, as Socket.IO's fetchSockets does), and each pushes its clients to a short-lived
list that the view reads back. A replica that does not answer in time is missing from the view.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.env import ENV

from ..config import load_config
from .connect import connect_bus_redis
from .keys import Keys
from .link import LEASE_FORGOTTEN, RedisLink, new_request_id
from .messages import Envelope, EnvelopeKind

ANSWER_TIMEOUT = 2.0  # how long the view waits for the replicas' answers
LEASE_BEATS = 3  # a lease not renewed for this many beats belongs to a replica that is gone


@dataclass(frozen=True)
class ClientPresence:
    """One connected client as operators see it, as its replica reported it."""

    client_id: str
    replica: str
    connected_at: datetime
    last_heartbeat: datetime


def _ts(raw: str | float) -> datetime:
    return datetime.fromtimestamp(float(raw), UTC)


class FleetTooLarge(Exception):
    """A full listing was asked of a fleet holding more streams than the caller allows; nobody was asked."""

    def __init__(self, streams: int, limit: int) -> None:
        super().__init__(f"{streams} streams, above the limit of {limit} for a full listing")
        self.streams, self.limit = streams, limit


@asynccontextmanager
async def _view_link() -> AsyncIterator[RedisLink]:
    """A short-lived link of a reader (never a replica): its own connection, closed on exit."""
    config = load_config()
    bus_redis = connect_bus_redis(ENV.redis_url, config.redis_socket_timeout, ENV.redis_password,
                                  ENV.redis_sentinel_password)
    link = RedisLink(bus_redis.client, Keys(config.redis_key_prefix), f"view-{new_request_id()[:8]}",
                     config.ownership_ttl, grace=0, sharded=bus_redis.sharded)
    try:
        yield link
    finally:
        await bus_redis.aclose()


def _lease_age_limit() -> float:
    return LEASE_BEATS * load_config().replica_beat_interval


async def fetch_cluster_view(timeout: float = ANSWER_TIMEOUT, client_ids: Collection[str] | None = None,
                             max_streams: int | None = None,
                             ) -> tuple[list[ClientPresence], list[dict[str, Any]]]:
    """Every connected client (of `client_ids` only, when given) with its replica, and every live replica.

    Each replica is its lease ("replica", "clients" at its last beat, "at": that beat's time) plus what its
    answer says now: "answered", and when it did, "streams", "commands_total" and "commands_per_s" (commands
    put into its streams, averaged over the last minute). A full listing (no `client_ids`) of more than
    `max_streams` streams, counted from the leases, raises FleetTooLarge before any replica is asked."""
    async with _view_link() as link:
        replicas = await live_leases(link, _lease_age_limit())
        if client_ids is None and max_streams is not None:
            streams = sum(int(lease.get("clients", 0)) for lease in replicas)
            if streams > max_streams:
                raise FleetTooLarge(streams, max_streams)
        answers = await ask_replicas(link, [r["replica"] for r in replicas], timeout, client_ids)
    rows = [ClientPresence(c["client_id"], c["replica"], _ts(c["connected_at"]), _ts(c["last_heartbeat"]))
            for answer in answers for c in answer.get("clients", [])]
    by_replica = {answer.get("replica"): answer for answer in answers}
    for lease in replicas:
        answer = by_replica.get(lease["replica"])
        lease["answered"] = answer is not None
        for key in ("streams", "commands_total", "commands_per_s"):
            if answer is not None and key in answer:
                lease[key] = answer[key]
    return sorted(rows, key=lambda r: r.client_id), replicas


async def fetch_replicas() -> list[dict[str, Any]]:
    """The live replicas' leases only (one Redis read, no replica is asked)."""
    async with _view_link() as link:
        return await live_leases(link, _lease_age_limit())


async def live_leases(link: RedisLink, max_age: float) -> list[dict[str, Any]]:
    """Leases renewed within max_age; ones older than LEASE_FORGOTTEN (killed replicas) are removed."""
    now, live, forgotten = time.time(), [], []
    for replica_id, lease in (await link.leases()).items():
        age = now - float(lease.get("at", 0))
        if age <= max_age:
            live.append(lease)
        elif age > LEASE_FORGOTTEN:
            forgotten.append(replica_id)
    await link.forget_leases(forgotten)
    return sorted(live, key=lambda lease: lease["replica"])


async def ask_replicas(link: RedisLink, replicas: list[str], timeout: float,
                       client_ids: Collection[str] | None = None) -> list[dict[str, Any]]:
    """One LIST envelope per replica (with the wanted client_ids, if any); the answers within timeout."""
    request = new_request_id()
    wanted = json.dumps(sorted(set(client_ids))).encode() if client_ids is not None else b""
    envelope = Envelope(EnvelopeKind.LIST, command_id=request, sender=link.replica_id, body=wanted)
    reached = sum([await link.publish(replica, envelope) > 0 for replica in replicas])
    return [json.loads(reply) for reply in await link.collect_listing(request, reached, timeout)]


def cluster_view() -> tuple[list[ClientPresence], list[dict[str, Any]]]:
    """Sync entry point for management commands and the admin."""
    return asyncio.run(fetch_cluster_view())
