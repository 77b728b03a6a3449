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
from datetime import datetime
from typing import Any

from apps.crypto.grpc.services.bus.cluster_view import ClientPresence, fetch_cluster_view
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
class LiveView:
    """The cluster view of one moment; `reason` says why it is unavailable."""

    states: Mapping[str, LiveState] = field(default_factory=dict)
    available: bool = True
    reason: str = ""

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


async def afetch_live_view(timeout: float = LIVE_TIMEOUT, client_ids: Collection[str] | None = None) -> LiveView:
    """The current view (of `client_ids` only, when given: a page asks for its rows, not the fleet), or
    an unavailable one (logged) when Redis is not configured or fails."""
    if not redis_configured():
        return LiveView.unavailable("REDIS_URL is not set")
    try:
        clients, _replicas = await asyncio.wait_for(fetch_cluster_view(client_ids=client_ids), timeout)
    except Exception as exc:  # any Redis or decoding failure: the page must still render
        logger.warning("live.view_failed error=%s detail=%s", type(exc).__name__, exc)
        return LiveView.unavailable(f"cluster view unavailable: {type(exc).__name__}")
    return LiveView({row.client_id: LiveState.of(row) for row in clients})


def fetch_live_view(timeout: float = LIVE_TIMEOUT, client_ids: Collection[str] | None = None) -> LiveView:
    """Sync entry point (admin, sync API views); must not be called from a thread running a loop."""
    return asyncio.run(afetch_live_view(timeout, client_ids))
