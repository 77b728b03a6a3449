"""A real `manage.py rungrpc` replica: /metrics over HTTP carries the build, gRPC server, ingest and bus
families with sane values, and listens where METRICS_HOST / --host say."""

from __future__ import annotations

import asyncio
import platform
import socket
import tempfile
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.metrics import metrics_bind_host
from tests.service.test_rungrpc import embedded_env
from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess
from tests.support.operator import Operator, pause_request
from tests.support.rawbot import RawBot, heartbeat, message
from tests.support.waiting import eventually

SERVICE = "crypto.CryptoStreamingService"


def scrape(host: str, port: int) -> dict[str, list]:
    """family name -> its samples (name, labels, value)."""
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(families: dict[str, list], name: str, **labels: str) -> float | None:
    family = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
    for s in families.get(family, []):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def start(**env: str) -> ReplicaProcess:
    log = Path(tempfile.mkdtemp()) / "rungrpc.log"
    return ReplicaProcess("metrics-" + uuid.uuid4().hex[:6], {**embedded_env(), **env}, log).start()


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


async def test_metrics_endpoint_of_a_real_replica():
    replica = start(CRYPTO_REPLICA_BEAT_INTERVAL="0.5", CRYPTO_OWNERSHIP_REFRESH="1", CRYPTO_OWNERSHIP_TTL="2")
    operator = Operator(OPERATOR_TOKEN)
    try:
        await asyncio.to_thread(replica.wait_ready, 60, "")
        async with grpc.aio.insecure_channel(replica.target) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        bot = RawBot(replica.target, "metrics-bot-" + uuid.uuid4().hex[:6])
        await bot.__aenter__()
        bot.send(heartbeat(bot.client_id))
        bot.send(message(bot.client_id, transaction=pb2.TransactionReport(transaction_id="t1", type="deposit",
                                                                          symbol="BTC", amount="1")))
        await eventually(lambda: _delivered(operator, replica.target, bot.client_id), message="bot attached")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await operator.stub(replica.target).SendCommandToClient(pause_request(""), metadata=operator.metadata,
                                                                    timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        async def recorded(*names: str, **labels: str) -> dict[str, list]:
            families = await asyncio.to_thread(scrape, "127.0.0.1", replica.metrics_port)
            return families if all(sample(families, name, **labels) for name in names) else {}
        await eventually(lambda: recorded("crypto_ingest_batch_write_seconds_count",
                                          "crypto_bus_redis_roundtrip_seconds_count"),
                         message="a batch stored and a lease beat", timeout=20)
        await bot.__aexit__()
        families = await eventually(lambda: recorded("crypto_grpc_server_handled_total", grpc_method="ConnectClient"),
                                    message="the stream counted", timeout=20)
    finally:
        await operator.close()
        replica.kill()

    (build,) = families["crypto_build_info"]
    assert build.value == 1
    assert build.labels == {"version": "0.1.0", "python": platform.python_version(), "grpcio": grpc.__version__}

    def handled(method: str, code: str, service: str = SERVICE) -> float | None:
        return sample(families, "crypto_grpc_server_handled_total", grpc_service=service, grpc_method=method,
                      grpc_code=code)
    assert handled("SendCommandToClient", "INVALID_ARGUMENT") == 1
    assert handled("SendCommandToClient", "OK") >= 1
    assert handled("Check", "OK", "grpc.health.v1.Health") >= 1
    assert sample(families, "crypto_grpc_server_handled_total", grpc_method="ConnectClient",
                  grpc_type="bidi_stream") == 1
    sends = sample(families, "crypto_grpc_server_started_total", grpc_method="SendCommandToClient", grpc_type="unary")
    assert sends == sum(s.value for s in families["crypto_grpc_server_handled"]
                        if s.name.endswith("_total") and s.labels["grpc_method"] == "SendCommandToClient")
    seconds = sample(families, "crypto_grpc_server_handling_seconds_count", grpc_method="SendCommandToClient")
    assert seconds == sends
    total = sample(families, "crypto_grpc_server_handling_seconds_sum", grpc_method="SendCommandToClient")
    assert 0 < total < 60
    for s in families["crypto_grpc_server_handled"]:
        assert set(s.labels) == {"grpc_service", "grpc_method", "grpc_type", "grpc_code"}
        assert s.labels["grpc_code"] in grpc.StatusCode.__members__, s.labels

    assert sample(families, "crypto_ingest_buffered") == 0  # all stored by now
    assert 1 <= sample(families, "crypto_ingest_batch_write_seconds_count")
    assert 0 < sample(families, "crypto_ingest_batch_write_seconds_sum") < 60
    assert 0 < sample(families, "crypto_bus_redis_roundtrip_seconds_sum") < 60
    assert sample(families, "crypto_centrifugo_queued") == 0
    # the existing names are still there
    assert sample(families, "crypto_streams_opened_total") >= 1
    assert sample(families, "crypto_commands_total", rpc="send") >= 1


async def _delivered(operator: Operator, target: str, client_id: str) -> bool:
    return (await operator.send(target, client_id, timeout=3)).success


@pytest.mark.parametrize("metrics_host, reachable, refused", [
    ("", "127.0.0.1", "127.0.0.2"),  # rungrpc --host 127.0.0.1: metrics on 127.0.0.1 only, not 0.0.0.0
    ("127.0.0.2", "127.0.0.2", "127.0.0.1"),  # METRICS_HOST wins
])
async def test_metrics_bind_address_follows_metrics_host_or_grpc_host(metrics_host, reachable, refused):
    replica = start(METRICS_HOST=metrics_host)
    try:
        await asyncio.to_thread(replica.wait_ready, 60, "")
        assert "crypto_build_info" in await asyncio.to_thread(scrape, reachable, replica.metrics_port)
        assert not await asyncio.to_thread(listening, refused, replica.metrics_port)
        assert f"metrics.serving address={reachable} port={replica.metrics_port}" in replica.log_tail(200)
    finally:
        replica.kill()


def test_grpc_style_hosts_bind_as_http_hosts():
    assert [metrics_bind_host(h) for h in ("[::]", "[::1]", "0.0.0.0", " 127.0.0.1 ", "")] == [
        "::", "::1", "0.0.0.0", "127.0.0.1", ""]


def test_wildcard_falls_back_to_ipv4_without_ipv6(monkeypatch):
    """gRPC binds "[::]" as 0.0.0.0 on a host without IPv6; the metrics listener must not crash there."""
    import errno

    from apps.crypto.grpc.services import metrics

    calls: list[str] = []

    class Server:
        server_address = ("0.0.0.0", 7464)

    def fake_start(port: int, addr: str):
        calls.append(addr)
        if addr == "::":
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return Server(), None
    monkeypatch.setattr(metrics, "start_http_server", fake_start)
    assert metrics.serve_metrics("[::]", 7464) == 7464
    assert calls == ["::", "0.0.0.0"]


def test_a_port_in_use_still_fails_the_start(monkeypatch):
    import errno

    from apps.crypto.grpc.services import metrics

    def in_use(port: int, addr: str):
        raise OSError(errno.EADDRINUSE, "Address already in use")
    monkeypatch.setattr(metrics, "start_http_server", in_use)
    for host in ("[::]", "127.0.0.1"):
        with pytest.raises(OSError, match="in use"):
            metrics.serve_metrics(host, 7464)
