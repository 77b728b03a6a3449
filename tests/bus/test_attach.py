"""A stream whose claim cannot be written does not linger as a local session."""

from __future__ import annotations

import pytest

from apps.crypto.grpc.services.bus.bus import CommandBus
from apps.crypto.grpc.services.bus.connect import build_redis
from apps.crypto.grpc.services.bus.keys import Keys
from apps.crypto.grpc.services.bus.link import BusUnavailable, RedisLink
from apps.crypto.grpc.services.streaming.session import StreamSession
from tests.support.ports import free_port


async def test_failed_claim_leaves_no_session():
    redis = build_redis(f"redis://127.0.0.1:{free_port()}/0", 0.5)  # nothing listens there
    bus = CommandBus(RedisLink(redis, Keys("t"), "A", owner_ttl=10, grace=5), grace=5, confirm_timeout=1)
    session = StreamSession("c1", queue_limit=4)
    with pytest.raises(BusUnavailable):
        await bus.attach(session)
    assert "c1" not in bus.sessions
    await redis.aclose()
