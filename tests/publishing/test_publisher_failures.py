"""Centrifugo down, slow, failing, refusing the key: streams never wait, counters stay right."""

import asyncio
import inspect
import logging
import time

import pytest

from apps.crypto.publishing import CentrifugoPublisher
from tests.support.fake_centrifugo import FakeCentrifugo

from .conftest import MakePublisher
from .helpers import eventually, wallet_message


def publish_many(publisher: CentrifugoPublisher, count: int, client: str = "bot-1", start: int = 0) -> float:
    """Publish synchronously; returns the slowest single call in seconds."""
    slowest = 0.0
    for n in range(start, start + count):
        began = time.perf_counter()
        publisher.publish_client_message(client, wallet_message(client, n))
        slowest = max(slowest, time.perf_counter() - began)
    return slowest


def events(caplog: pytest.LogCaptureFixture, event: str, level: int | None = None) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.getMessage().startswith(event) and (level is None or r.levelno == level)
    ]


def test_publish_calls_are_plain_functions() -> None:
    """Structural guarantee: nothing a stream calls can await the network."""
    for name in ("publish_client_message", "publish_command", "publish_ack", "stats"):
        assert not inspect.iscoroutinefunction(getattr(CentrifugoPublisher, name))


async def test_hung_server_never_blocks_publish_and_queue_stays_bounded(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(queue_size=50, batch_size=10, request_timeout=5.0)
    fake.slow(60)
    publish_many(publisher, 10)
    await fake.wait_until(lambda: fake.in_flight == 1 and publisher.stats().queued == 0, timeout=2.0)
    # the sender is now stuck on a hanging request holding 10; the stream keeps going regardless
    began = time.perf_counter()
    slowest = publish_many(publisher, 1000, start=10)
    elapsed = time.perf_counter() - began
    stats = publisher.stats()
    assert stats.queued == 50
    assert stats.dropped == 950
    assert stats.published == 0
    # ~1000 x a few microseconds; waiting on the hung request would take request_timeout (5 s) or more
    assert elapsed < 3.0 and slowest < 1.0
    fake.release()
    await eventually(lambda: publisher.stats().published == 60)
    # the newest 50 survived, in order, after the 10 that were in flight
    expected = [f"bot-1-m{n}" for n in list(range(10)) + list(range(960, 1010))]
    assert [e["message_id"] for e in fake.data_on("crypto:all")] == expected


async def test_drops_are_logged_with_reason_and_throttled(
    make_publisher: MakePublisher, publishing_logs: pytest.LogCaptureFixture
) -> None:
    publisher = await make_publisher(start=False, queue_size=5, batch_size=5)
    publish_many(publisher, 505)
    dropped = events(publishing_logs, "centrifugo.dropped")
    assert publisher.stats().dropped == 500
    assert len(dropped) == 1  # not 500 lines
    assert "reason=queue_full" in dropped[0].getMessage()


async def test_down_server_retries_then_counts_failed_and_recovers(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(max_retries=2, breaker_threshold=100)
    await fake.go_down()
    publish_many(publisher, 5)
    await eventually(lambda: publisher.stats().failed == 5)
    assert publisher.stats().published == 0
    await fake.come_up()
    publish_many(publisher, 5, start=5)
    await eventually(lambda: publisher.stats().published == 5)
    assert [e["message_id"] for e in fake.data_on("crypto:all")] == [f"bot-1-m{n}" for n in range(5, 10)]


async def test_outage_shorter_than_the_retry_budget_loses_nothing(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(max_retries=1000, breaker_threshold=1000, backoff_max=0.02)
    fake.fail_next(5, status=503)
    publish_many(publisher, 3)
    await eventually(lambda: publisher.stats().published == 3)
    assert fake.count_requests(status=503) == 5
    assert publisher.stats().failed == 0
    assert len(fake.data_on("crypto:all")) == 3


async def test_timeouts_retry_without_duplicates_thanks_to_idempotency_keys(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    """A timed-out request may still have been applied: the retry must not deliver twice."""
    publisher = await make_publisher(request_timeout=0.2, max_retries=20, breaker_threshold=100)
    fake.slow(0.4)
    publish_many(publisher, 2)
    await fake.wait_until(lambda: fake.count_requests() >= 2, timeout=3.0)
    fake.release()
    await eventually(lambda: publisher.stats().published == 2)
    await asyncio.sleep(0.05)
    assert [e["message_id"] for e in fake.data_on("crypto:bot-1:updates")] == ["bot-1-m0", "bot-1-m1"]
    assert len(fake.data_on("crypto:all")) == 2
    assert fake.duplicates >= 2  # the first attempt landed late, the retry was deduplicated


async def test_partial_channel_failure_retries_only_what_failed(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(max_retries=1000, backoff_max=0.02, breaker_threshold=1000)
    fake.channel_errors["crypto:all"] = 100  # temporary internal error on the shared channel
    publish_many(publisher, 1)
    await fake.wait_until(lambda: fake.count_requests() >= 3, timeout=2.0)
    assert publisher.stats().published == 0
    del fake.channel_errors["crypto:all"]
    await eventually(lambda: publisher.stats().published == 1)
    assert len(fake.data_on("crypto:bot-1:updates")) == 1  # retries hit the idempotency cache
    assert len(fake.data_on("crypto:all")) == 1


async def test_permanent_rejection_is_counted_failed_and_not_retried(
    fake: FakeCentrifugo, make_publisher: MakePublisher, publishing_logs: pytest.LogCaptureFixture
) -> None:
    publisher = await make_publisher(channel_pattern="unknownns:{client_id}", all_channel="")
    publish_many(publisher, 3)
    await eventually(lambda: publisher.stats().failed == 3)
    await asyncio.sleep(0.05)
    assert fake.count_requests() == 1
    assert publisher.stats().published == 0
    failures = events(publishing_logs, "centrifugo.publish_failed", logging.ERROR)
    assert failures and "codes=102" in failures[0].getMessage()


async def test_command_error_in_a_batch_reply_costs_only_that_publication(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    """cent's own batch parser raises a bare KeyError here; ours reads each command's verdict."""
    publisher = await make_publisher()
    fake.reply_error_next(107)  # the batch's first command is refused
    publish_many(publisher, 4)
    await eventually(lambda: publisher.stats().published + publisher.stats().failed == 4)
    assert (publisher.stats().published, publisher.stats().failed) == (3, 1)
    assert fake.count_requests() == 1  # a permanent refusal is not retried
    assert [e["message_id"] for e in fake.data_on("crypto:all")] == ["bot-1-m1", "bot-1-m2", "bot-1-m3"]


async def test_temporary_command_error_in_a_batch_reply_is_retried(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher()
    fake.reply_error_next(100)  # internal error for the first command only
    publish_many(publisher, 4)
    await eventually(lambda: publisher.stats().published == 4)
    assert [r.path for r in fake.requests] == ["/api/batch", "/api/batch"]
    assert fake.requests[1].body["commands"] == fake.requests[0].body["commands"][:1]
    assert len(fake.data_on("crypto:bot-1:updates")) == 4
    assert fake.duplicates == 0


async def test_breaker_opens_stops_hammering_probes_once_and_closes(
    fake: FakeCentrifugo, make_publisher: MakePublisher, publishing_logs: pytest.LogCaptureFixture
) -> None:
    publisher = await make_publisher(breaker_threshold=3, breaker_cooldown=0.6, max_retries=1000)
    fake.http_status = 503
    publish_many(publisher, 2)
    await eventually(lambda: publisher.breaker_state == "open")
    assert fake.count_requests() == 3
    await fake.wait_until(lambda: fake.count_requests() == 4, timeout=3.0)  # the half-open probe
    await eventually(lambda: publisher.breaker_state == "open")  # probe failed: open again
    gap = fake.requests[3].at - fake.requests[2].at
    assert gap >= 0.55  # nothing was sent during the cooldown
    fake.http_status = None
    await eventually(lambda: publisher.stats().published == 2)
    assert publisher.breaker_state == "closed"
    assert publisher.stats().failed == 0
    messages = [r.getMessage() for r in publishing_logs.records]
    for event in ("centrifugo.breaker_open", "centrifugo.breaker_half_open", "centrifugo.breaker_closed"):
        assert any(m.startswith(event) for m in messages), event


async def test_unauthorized_is_logged_once_not_hammered_and_recovers(
    fake: FakeCentrifugo, make_publisher: MakePublisher, publishing_logs: pytest.LogCaptureFixture
) -> None:
    publisher = await make_publisher(key="wrong-key", auth_retry_interval=0.3)
    publish_many(publisher, 5)
    await eventually(lambda: publisher.stats().failed == 5)
    assert fake.count_requests(status=401) == 1  # no retry loop
    publish_many(publisher, 3, start=5)
    await fake.wait_until(lambda: fake.count_requests(status=401) == 2, timeout=3.0)  # a rare re-probe
    await eventually(lambda: publisher.stats().failed == 8)
    assert fake.requests[1].at - fake.requests[0].at >= 0.25
    loud = events(publishing_logs, "centrifugo.unauthorized", logging.ERROR)
    assert len(loud) == 1 and "CENTRIFUGO_API_KEY" in loud[0].getMessage()
    assert "wrong-key" not in publishing_logs.text
    fake.api_key = "wrong-key"  # operator fixes the server side
    publish_many(publisher, 2, start=8)
    await eventually(lambda: publisher.stats().published == 2, timeout=3.0)
    assert events(publishing_logs, "centrifugo.auth_recovered")


async def test_close_with_hung_server_returns_promptly_and_counts_leftovers(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(close_timeout=0.3, request_timeout=10.0, batch_size=10)
    fake.slow(60)
    publish_many(publisher, 25)
    await fake.wait_until(lambda: fake.in_flight == 1 and publisher.stats().queued == 15, timeout=2.0)
    began = time.perf_counter()
    await publisher.close()
    assert time.perf_counter() - began < 3.0  # close_timeout 0.3 s, not the 60 s hang
    stats = publisher.stats()
    assert (stats.published, stats.failed, stats.dropped, stats.queued) == (0, 0, 25, 0)


async def test_close_while_breaker_open_does_not_wait_for_the_cooldown(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(breaker_threshold=1, breaker_cooldown=30.0, close_timeout=5.0)
    fake.http_status = 500
    publish_many(publisher, 3)
    await eventually(lambda: publisher.breaker_state == "open")
    began = time.perf_counter()
    await publisher.close()
    assert time.perf_counter() - began < 3.0  # not the 30 s cooldown
    assert publisher.stats().dropped == 3
