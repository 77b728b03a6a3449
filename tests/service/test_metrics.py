"""Scrape /metrics after a scripted scenario and check the counters moved as they should."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.metrics import serve_metrics
from apps.crypto.models import RejectedMessage
from tests.service.test_streaming import connected_bot
from tests.support.grpc_server import running_server
from tests.support.operator import Operator
from tests.support.ports import free_port
from tests.support.rawbot import RawBot, heartbeat, message
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_a_scripted_scenario():
    port = free_port()
    serve_metrics("127.0.0.1", port)
    redis = RedisServer().start()
    try:
        async with running_server(redis_url=redis.url, outbound_queue_size=4) as a, \
                running_server(redis_url=redis.url) as b:
            before = await asyncio.to_thread(scrape, port)
            operator = Operator(a.operator_token)
            bot = await connected_bot(b)
            await operator.execute(b.target, bot.client_id)  # same replica
            await operator.execute(a.target, bot.client_id)  # cross replica
            bot.send(message(bot.client_id, transaction=pb2.TransactionReport(
                transaction_id="t", type="gift", symbol="BTC", amount="1")))  # rejected: unknown type
            await eventually(RejectedMessage.objects.filter(client_id=bot.client_id).aexists, message="rejected")
            replacement = RawBot(b.target, bot.client_id, bot.api_key)
            await replacement.__aenter__()
            replacement.send(heartbeat(bot.client_id))  # takeover
            await bot.ended()
            slow = await connected_bot(a, read=False)
            big = pb2.DjangoCommand(sync_wallets=pb2.SyncWalletsCommand(symbols=["S" * 32] * 1000))
            for _ in range(400):
                if not (await operator.stub(a.target).SendCommandToClient(
                        pb2.SendCommandRequest(client_id=slow.client_id, command=big), metadata=operator.metadata,
                        timeout=5)).success:
                    break
            await eventually(lambda: slow.client_id not in a.replica.runtime.bus.sessions, message="slow dropped")
            after = await asyncio.to_thread(scrape, port)
            for closing in (bot, replacement, slow):
                await closing.__aexit__()
            await operator.close()
    finally:
        redis.stop()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("crypto_streams_opened_total") >= 3
    assert delta("crypto_streams_closed_total", reason="takeover") >= 1
    assert delta("crypto_streams_closed_total", reason="slow_reader") >= 1
    assert delta("crypto_client_messages_total", type="heartbeat") >= 2
    assert delta("crypto_client_messages_rejected_total", type="transaction", cause="invalid") == 1
    assert delta("crypto_commands_total", rpc="execute", kind="pause", outcome="acked") == 2
    assert delta("crypto_commands_total", rpc="send", kind="sync_wallets", outcome="not_delivered") == 1
    assert delta("crypto_ack_latency_seconds_count", route="same") == 1
    assert delta("crypto_ack_latency_seconds_count", route="cross") == 1
    assert delta("crypto_bus_commands_routed_total") >= 1
    assert ("crypto_centrifugo_published_total", ()) in after or ("crypto_centrifugo_published", ()) in after
    assert not [key for key in after if any(k in ("client_id", "command_id") for k, _ in key[1])]


def test_child_is_the_labelled_metric_looked_up_once():
    from apps.crypto.grpc.services import metrics as m

    counted = m.child(m.COMMANDS, "execute", "ping", "acked")
    assert counted is m.COMMANDS.labels("execute", "ping", "acked") is m.child(m.COMMANDS, "execute", "ping", "acked")
    before = counted._value.get()
    m.child(m.COMMANDS, "execute", "ping", "acked").inc()
    assert m.COMMANDS.labels("execute", "ping", "acked")._value.get() == before + 1
    assert m.child(m.ACK_LATENCY, "same") is m.ACK_LATENCY.labels("same")
