"""Live connection state of clients, read from the cluster view (Redis presence keys), never from the DB.

The database says what a bot last reported; only Redis knows whether it is connected right now and
to which replica. Web pages and API calls read the view once per request and look rows up in it.
Without REDIS_URL (embedded mode: the presence lives inside the one replica's process) or when
Redis does not answer in time, every state is "unknown" and the caller carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.crypto.grpc.services.bus.cluster_view import (
    ClientPresence,
    FleetTooLarge,
    fetch_cluster_view,
    fetch_replicas,
)
from config.env import ENV

logger = logging.getLogger(__name__)

LIVE_TIMEOUT = 3.0  # seconds one page or API call may spend reading the cluster view

CONNECTED = "connected"
DISCONNECTED = "disconnected"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class LiveState:
    """One client's connection right now; replica and times only when connected."""

    state: str
    replica: str = ""
    connected_at: datetime | None = None
    last_heartbeat: datetime | None = None

    @classmethod
    def of(cls, presence: ClientPresence) -> LiveState:
        return cls(CONNECTED, presence.replica, presence.connected_at, presence.last_heartbeat)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "replica": self.replica or None,
                "connected_at": _iso(self.connected_at), "last_heartbeat": _iso(self.last_heartbeat)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


STATE_UNKNOWN = LiveState(UNKNOWN)
STATE_DISCONNECTED = LiveState(DISCONNECTED)


@dataclass(frozen=True)
class ReplicaSummary:
    """One live replica as the operators' summary shows it.

    `streams` is what the replica answered now, or its lease's count at its last beat when it did not
    answer in time (`answered` False); `commands_per_s` (operator commands put into its streams, averaged
    over the last minute) is known only from an answer."""

    replica: str
    streams: int
    last_beat: datetime | None
    answered: bool
    commands_per_s: float | None = None

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> ReplicaSummary:
        answered = bool(lease.get("answered"))
        at = lease.get("at")
        rate = lease.get("commands_per_s") if answered else None
        return cls(str(lease.get("replica", "")), int(lease.get("streams", lease.get("clients", 0)) or 0),
                   None if at is None else datetime.fromtimestamp(float(at), UTC), answered,
                   None if rate is None else float(rate))

    def beat_age(self, now: datetime | None = None) -> int | None:
        """Whole seconds since the replica's last beat."""
        if self.last_beat is None:
            return None
        return max(int(((now or datetime.now(UTC)) - self.last_beat).total_seconds()), 0)


@dataclass(frozen=True)
class LiveView:
    """The cluster view of one moment; `reason` says why it is unavailable. `complete` when it lists
    every connected client (a full listing), not only those a page named."""

    states: Mapping[str, LiveState] = field(default_factory=dict)
    available: bool = True
    reason: str = ""
    replicas: tuple[ReplicaSummary, ...] = ()
    complete: bool = False

    @classmethod
    def unavailable(cls, reason: str) -> LiveView:
        return cls(available=False, reason=reason)

    def state(self, client_id: str) -> LiveState:
        if not self.available:
            return STATE_UNKNOWN
        return self.states.get(client_id, STATE_DISCONNECTED)


def redis_configured() -> bool:
    """The cluster view exists only in a shared Redis; the embedded stand-in is per process."""
    return bool(ENV.redis_url)


async def afetch_live_view(timeout: float = LIVE_TIMEOUT, client_ids: Collection[str] | None = None,
                           max_streams: int | None = None) -> LiveView:
    """The current view (of `client_ids` only, when given: a page asks for its rows, not the fleet), or
    an unavailable one (logged) when Redis is not configured or fails, or when a full listing would
    exceed `max_streams` (nobody is asked then)."""
    if not redis_configured():
        return LiveView.unavailable("REDIS_URL is not set")
    try:
        clients, replicas = await asyncio.wait_for(
            fetch_cluster_view(client_ids=client_ids, max_streams=max_streams), timeout)
    except FleetTooLarge as exc:
        return LiveView.unavailable(f"fleet too large for a live filter or sort: {exc}")
    except Exception as exc:  # any Redis or decoding failure: the page must still render
        logger.warning("live.view_failed error=%s detail=%s", type(exc).__name__, exc)
        return LiveView.unavailable(f"cluster view unavailable: {type(exc).__name__}")
    return LiveView({row.client_id: LiveState.of(row) for row in clients},
                    replicas=tuple(ReplicaSummary.of(lease) for lease in replicas), complete=client_ids is None)


def fetch_live_view(timeout: float = LIVE_TIMEOUT, client_ids: Collection[str] | None = None,
                    max_streams: int | None = None) -> LiveView:
    """Sync entry point (admin, sync API views); must not be called from a thread running a loop."""
    return asyncio.run(afetch_live_view(timeout, client_ids, max_streams))


def fetch_replica_names(timeout: float = LIVE_TIMEOUT) -> list[str]:
    """The live replicas' ids from their leases (one Redis read); empty without Redis or when it fails."""
    if not redis_configured():
        return []
    try:
        leases = asyncio.run(asyncio.wait_for(fetch_replicas(), timeout))
    except Exception as exc:
        logger.warning("live.replicas_failed error=%s detail=%s", type(exc).__name__, exc)
        return []
    return [str(lease["replica"]) for lease in leases]
