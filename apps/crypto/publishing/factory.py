"""Choose the publisher: the real one when Centrifugo is configured, the free no-op otherwise."""

from __future__ import annotations

import logging

from .base import NullPublisher, Publisher, Spawn
from .config import PublisherConfig
from .sender import CentrifugoPublisher

logger = logging.getLogger(__name__)


def build_publisher(config: PublisherConfig, replica_id: str, spawn: Spawn | None = None) -> Publisher:
    """Unset CENTRIFUGO_API_URL or CENTRIFUGO_API_KEY means publishing is off and costs nothing.
    `spawn` starts the sender task (the replica passes its TaskOwner's)."""
    if config.enabled:
        return CentrifugoPublisher(config, replica_id, spawn=spawn)
    missing = "api_url" if not config.api_url else "api_key"
    level = logging.WARNING if (config.api_url or config.api_key) else logging.INFO
    logger.log(level, "centrifugo.publisher_disabled reason=missing_%s", missing)
    return NullPublisher()
