"""Fixtures: a fresh fake Centrifugo per test and a factory of started publishers closed at teardown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from apps.crypto.publishing import CentrifugoPublisher
from tests.support.fake_centrifugo import FakeCentrifugo

from .helpers import REPLICA, fast_config

MakePublisher = Callable[..., Awaitable[CentrifugoPublisher]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeCentrifugo]:
    async with FakeCentrifugo() as server:
        yield server


@pytest.fixture
async def make_publisher(fake: FakeCentrifugo) -> AsyncIterator[MakePublisher]:
    made: list[CentrifugoPublisher] = []

    async def make(*, key: str | None = None, start: bool = True, **overrides: object) -> CentrifugoPublisher:
        config = fast_config(fake.url, fake.api_key if key is None else key, **overrides)
        publisher = CentrifugoPublisher(config, REPLICA)
        made.append(publisher)
        if start:
            await publisher.start()
        return publisher

    yield make
    fake.release()
    for publisher in made:
        await publisher.close()


@pytest.fixture
def publishing_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="apps.crypto.publishing")
    return caplog
