"""Happy paths: what arrives where, in which order, in how many requests; toggles; shutdown flush."""

import asyncio
import threading

import pytest

from apps.crypto.publishing import CentrifugoPublisher, Publisher, sender
from tests.support.fake_centrifugo import FakeCentrifugo

from .conftest import MakePublisher
from .helpers import REPLICA, ack_message, command_ack, eventually, ping_command, wallet_message

CLIENT_CHANNEL = "crypto:{}:updates"


async def test_publication_reaches_client_and_all_channels_with_envelope(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher()
    publisher.publish_client_message("bot-1", wallet_message("bot-1", 1))
    await eventually(lambda: publisher.stats().published == 1)
    own, shared = fake.data_on("crypto:bot-1:updates"), fake.data_on("crypto:all")
    assert own == shared and len(own) == 1
    assert own[0]["type"] == "wallet_update"
    assert own[0]["client_id"] == "bot-1"
    assert own[0]["message_id"] == "bot-1-m1"
    assert own[0]["replica"] == REPLICA
    assert own[0]["payload"]["balance_locked"] == "12345678901234567890.000000000000000001"
    keys = {p.idempotency_key for p in fake.publications}
    assert len(keys) == 1 and keys.pop().startswith(REPLICA + ":")


async def test_order_per_client_and_globally(fake: FakeCentrifugo, make_publisher: MakePublisher) -> None:
    publisher = await make_publisher(batch_size=7)
    sent: list[tuple[str, str]] = []
    for n in range(60):
        client = f"bot-{n % 3}"
        publisher.publish_client_message(client, wallet_message(client, n))
        sent.append((client, f"{client}-m{n}"))
        if n % 10 == 0:
            await asyncio.sleep(0)  # let the sender interleave with publishing
    await eventually(lambda: publisher.stats().published == 60)
    for client in ("bot-0", "bot-1", "bot-2"):
        got = [e["message_id"] for e in fake.data_on(CLIENT_CHANNEL.format(client))]
        assert got == [message_id for c, message_id in sent if c == client]
    assert [e["message_id"] for e in fake.data_on("crypto:all")] == [m for _, m in sent]
    seqs = [e["seq"] for e in fake.data_on("crypto:all")]
    assert seqs == sorted(seqs)


async def test_many_publications_share_few_requests(fake: FakeCentrifugo, make_publisher: MakePublisher) -> None:
    publisher = await make_publisher(batch_size=100)
    for n in range(250):
        publisher.publish_client_message("bot-1", wallet_message("bot-1", n))
    await eventually(lambda: publisher.stats().published == 250)
    assert fake.count_requests(path="/api/batch") == 3  # 100 + 100 + 50, queued before the sender woke
    assert len(fake.publications) == 500


async def test_commands_and_acks_are_published_with_their_types(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher()
    publisher.publish_command("bot-1", ping_command("c-1"))
    publisher.publish_client_message("bot-1", ack_message("bot-1", "c-1"))
    publisher.publish_ack("bot-1", command_ack("c-1"))
    await eventually(lambda: publisher.stats().published == 3)
    conversation = fake.data_on("crypto:bot-1:updates")
    assert [e["type"] for e in conversation] == ["command", "command_ack", "command_ack"]
    assert conversation[0]["payload"]["ping"] == {"sequence": 1}
    assert conversation[2]["payload"]["current_status"] == "CLIENT_STATUS_ACTIVE"


async def test_toggles_mute_commands_and_acks_only(fake: FakeCentrifugo, make_publisher: MakePublisher) -> None:
    publisher = await make_publisher(publish_commands=False, publish_acks=False)
    publisher.publish_command("bot-1", ping_command("c-1"))
    publisher.publish_ack("bot-1", command_ack("c-1"))
    publisher.publish_client_message("bot-1", ack_message("bot-1", "c-1"))
    publisher.publish_client_message("bot-1", wallet_message("bot-1", 1))
    await eventually(lambda: publisher.stats().published == 1)
    await publisher.close()
    assert [e["type"] for e in fake.data_on("crypto:all")] == ["wallet_update"]
    assert publisher.stats().dropped == 0  # muted is not dropped


async def test_caller_may_reuse_its_message_after_publishing(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher()
    message = wallet_message("bot-1", 1)
    publisher.publish_client_message("bot-1", message)
    message.wallet_update.symbol = "MUTATED"
    await eventually(lambda: publisher.stats().published == 1)
    assert fake.data_on("crypto:all")[0]["payload"]["symbol"] == "BTC"


async def test_channel_names_cache_stays_bounded(
    fake: FakeCentrifugo, make_publisher: MakePublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender, "CHANNEL_CACHE_SIZE", 2)
    publisher = await make_publisher()
    for n in range(5):
        publisher.publish_client_message(f"bot-{n}", wallet_message(f"bot-{n}", n))
    await eventually(lambda: publisher.stats().published == 5)
    assert all(len(fake.data_on(f"crypto:bot-{n}:updates")) == 1 for n in range(5))
    assert len(publisher._channels) <= 2


async def test_messages_published_before_start_are_sent_after_start(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher(start=False)
    publisher.publish_client_message("bot-1", wallet_message("bot-1", 1))
    assert publisher.stats().queued == 1
    await publisher.start()
    await eventually(lambda: publisher.stats().published == 1)


async def test_publishing_from_another_thread_is_handed_to_the_loop(
    fake: FakeCentrifugo, make_publisher: MakePublisher
) -> None:
    publisher = await make_publisher()

    def produce() -> None:
        for n in range(20):
            publisher.publish_client_message("bot-t", wallet_message("bot-t", n))

    worker = threading.Thread(target=produce)
    worker.start()
    await asyncio.to_thread(worker.join)
    await eventually(lambda: publisher.stats().published == 20)
    assert [e["message_id"] for e in fake.data_on("crypto:all")] == [f"bot-t-m{n}" for n in range(20)]


async def test_close_flushes_what_is_queued(fake: FakeCentrifugo, make_publisher: MakePublisher) -> None:
    publisher = await make_publisher(flush_interval=1.0)  # a long linger close must cut short
    for n in range(30):
        publisher.publish_client_message("bot-1", wallet_message("bot-1", n))
    await asyncio.wait_for(publisher.close(), timeout=2.0)
    assert publisher.stats() == publisher.stats().__class__(published=30, failed=0, dropped=0, queued=0)
    assert len(fake.data_on("crypto:all")) == 30


async def test_after_close_publishing_is_counted_as_dropped(make_publisher: MakePublisher) -> None:
    publisher = await make_publisher()
    await publisher.close()
    publisher.publish_client_message("bot-1", wallet_message("bot-1", 1))
    assert publisher.stats().dropped == 1
    await publisher.close()  # idempotent


async def test_invalid_input_never_raises_into_the_stream(make_publisher: MakePublisher) -> None:
    publisher = await make_publisher()
    publisher.publish_client_message("bot-1", None)
    publisher.publish_command("bot-1", object())
    assert publisher.stats().dropped == 2


async def test_real_publisher_satisfies_the_protocol(make_publisher: MakePublisher) -> None:
    publisher = await make_publisher(start=False)
    assert isinstance(publisher, Publisher)
    assert isinstance(publisher, CentrifugoPublisher)
