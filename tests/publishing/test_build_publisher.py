import asyncio
import logging

import pytest

from apps.crypto.publishing import (
    CentrifugoPublisher,
    NullPublisher,
    Publisher,
    PublisherConfig,
    PublisherStats,
    build_publisher,
)

from .helpers import command_ack, ping_command, wallet_message


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "missing_api_url"),
        ({"CENTRIFUGO_API_URL": "http://c:8000/api"}, "missing_api_key"),
        ({"CENTRIFUGO_API_KEY": "k"}, "missing_api_url"),
    ],
)
def test_unset_url_or_key_gives_the_null_publisher(
    env: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apps.crypto.publishing")
    publisher = build_publisher(PublisherConfig.from_env(env), "replica-a")
    assert isinstance(publisher, NullPublisher)
    assert isinstance(publisher, Publisher)
    assert f"centrifugo.publisher_disabled reason={reason}" in caplog.text


def test_url_and_key_give_the_real_publisher() -> None:
    config = PublisherConfig.from_env({"CENTRIFUGO_API_URL": "http://c:8000/api", "CENTRIFUGO_API_KEY": "k"})
    assert isinstance(build_publisher(config, "replica-a"), CentrifugoPublisher)


async def test_null_publisher_costs_nothing() -> None:
    publisher = build_publisher(PublisherConfig(), "replica-a")
    tasks_before = asyncio.all_tasks()
    await publisher.start()
    assert asyncio.all_tasks() == tasks_before  # no background task
    publisher.publish_client_message("bot-1", wallet_message("bot-1", 1))
    publisher.publish_command("bot-1", ping_command("c-1"))
    publisher.publish_ack("bot-1", command_ack("c-1"))
    assert publisher.stats() == PublisherStats(0, 0, 0, 0)
    await publisher.close()
