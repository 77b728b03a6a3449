"""The fake is a contract double: prove it honours /work/shared/centrifugo-api.md, raw and through cent."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cent import AsyncClient, BatchRequest, BroadcastRequest, PublishRequest
from cent.exceptions import (
    CentApiResponseError,
    CentNetworkError,
    CentTimeoutError,
    CentTransportError,
    CentUnauthorizedError,
)

from tests.support.fake_centrifugo import FakeCentrifugo

KEY = "test-api-key"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, fake: FakeCentrifugo, method: str, body: Any = None, *,
    raw: bytes | None = None, headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    sent_headers = {"X-API-Key": KEY} if headers is None else headers
    data = raw if raw is not None else None
    async with http.post(
        f"{fake.url}/{method}", json=body if raw is None else None, data=data, headers=sent_headers, params=params,
    ) as response:
        text = await response.text()
        payload = await response.json(content_type=None) if response.content_type == "application/json" else None
        return response.status, text, payload


# ---------------------------------------------------------------- transport and auth


async def test_only_post_is_allowed(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    for verb in ("GET", "PUT", "DELETE"):
        async with http.request(verb, f"{fake.url}/publish", headers={"X-API-Key": KEY}) as response:
            assert response.status == 405
            assert await response.read() == b""


async def test_unknown_method_path_is_404(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    status, _, _ = await post(http, fake, "nonsense", {})
    assert status == 404


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({"X-API-Key": KEY}, None, 200),
        ({"Authorization": f"apikey {KEY}"}, None, 200),
        ({"Authorization": f"APIKEY {KEY}"}, None, 200),
        ({}, {"api_key": KEY}, 200),
        ({}, None, 401),
        ({"X-API-Key": "wrong"}, None, 401),
        ({"Authorization": f"Bearer {KEY}"}, None, 401),
        # X-API-Key set: the Authorization header is not looked at ...
        ({"X-API-Key": "wrong", "Authorization": f"apikey {KEY}"}, None, 401),
        # ... but the query parameter still is
        ({"X-API-Key": "wrong"}, {"api_key": KEY}, 200),
    ],
)
async def test_auth_order_and_401_with_empty_body(
    fake: FakeCentrifugo, http: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str] | None,
    status: int,
) -> None:
    got, text, _ = await post(http, fake, "publish", {"channel": "news", "data": {}}, headers=headers, params=params)
    assert got == status
    if status == 401:
        assert text == ""


async def test_empty_server_key_refuses_everyone_unless_insecure(http: aiohttp.ClientSession) -> None:
    async with FakeCentrifugo(api_key="") as fake:
        assert (await post(http, fake, "publish", {"channel": "a", "data": 1}, headers={"X-API-Key": ""}))[0] == 401
    async with FakeCentrifugo(api_key="", insecure=True) as fake:
        assert (await post(http, fake, "publish", {"channel": "a", "data": 1}, headers={}))[0] == 200


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("publish", b"{not json"),
        ("publish", b""),
        ("publish", b"[1, 2]"),
        ("publish", b'{"channel": 5, "data": {}}'),
        ("publish", b'{"channel": "a", "data": {}, "idempotency_key": 3}'),
        ("broadcast", b'{"channels": "a", "data": {}}'),
        ("batch", b'{"commands": {"publish": {}}}'),
        ("batch", b'{"commands": [{"publish": {"channel": 1, "data": 1}}]}'),
    ],
)
async def test_undecodable_requests_are_400_bad_request(
    fake: FakeCentrifugo, http: aiohttp.ClientSession, method: str, raw: bytes
) -> None:
    status, text, _ = await post(http, fake, method, raw=raw)
    assert (status, text.strip()) == (400, "Bad Request")


async def test_unknown_fields_are_ignored(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    status, _, payload = await post(http, fake, "publish", {"channel": "a", "data": 1, "surprise": True})
    assert (status, payload) == (200, {"result": {}})


# ---------------------------------------------------------------- publish


async def test_publish_ok_and_recorded(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    status, _, payload = await post(http, fake, "publish", {"channel": "crypto:a", "data": {"x": 1}, "tags": {"t": "1"}})
    assert (status, payload) == (200, {"result": {}})
    assert fake.publications[0].channel == "crypto:a"
    assert fake.publications[0].data == {"x": 1}
    assert fake.publications[0].tags == {"t": "1"}


async def test_publish_into_history_namespace_returns_offset_and_epoch(http: aiohttp.ClientSession) -> None:
    async with FakeCentrifugo(history_namespaces=("hist",)) as fake:
        first = (await post(http, fake, "publish", {"channel": "hist:a", "data": 1}))[2]["result"]
        second = (await post(http, fake, "publish", {"channel": "hist:a", "data": 2}))[2]["result"]
    assert (first["offset"], second["offset"]) == (1, 2)
    assert first["epoch"] == second["epoch"] != ""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"channel": "nope:a", "data": {}}, 102),
        ({"channel": "crypto:a"}, 107),
        ({"data": {}}, 107),
        ({"channel": "", "data": {}}, 107),
    ],
)
async def test_publish_api_errors_come_with_http_200(
    fake: FakeCentrifugo, http: aiohttp.ClientSession, body: dict, code: int
) -> None:
    status, _, payload = await post(http, fake, "publish", body)
    assert status == 200
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert fake.publications == []


async def test_transport_error_mode_maps_codes_to_http_status(http: aiohttp.ClientSession) -> None:
    async with FakeCentrifugo() as fake:
        mode = {"X-API-Key": KEY, "X-Centrifugo-Error-Mode": "transport"}
        status, _, payload = await post(http, fake, "publish", {"channel": "nope:a", "data": 1}, headers=mode)
        assert (status, payload) == (404, {"code": 102, "message": "unknown channel"})
        status, _, payload = await post(http, fake, "broadcast", {"channels": [], "data": 1}, headers=mode)
        assert (status, payload["code"]) == (400, 107)
        # batch never uses it
        status, _, payload = await post(http, fake, "batch", {"commands": [None]}, headers=mode)
        assert (status, payload) == (200, {"replies": [{"error": {"code": 107, "message": "bad request"}}]})
    async with FakeCentrifugo(transport_error_mode=True) as fake:
        status, _, _ = await post(http, fake, "publish", {"channel": "crypto:a"})
        assert status == 400


# ---------------------------------------------------------------- broadcast and batch


async def test_broadcast_answers_per_channel_in_order(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    status, _, payload = await post(
        http, fake, "broadcast", {"channels": ["crypto:a", "nope:b", "", "crypto:c"], "data": {"v": 1}}
    )
    assert status == 200
    responses = payload["result"]["responses"]
    assert [r.get("error", {}).get("code") for r in responses] == [None, 102, 107, None]
    assert responses[0] == {"result": {}}
    assert [p.channel for p in fake.publications] == ["crypto:a", "crypto:c"]


async def test_broadcast_top_level_errors(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    for body in ({"channels": [], "data": 1}, {"channels": ["crypto:a"]}):
        status, _, payload = await post(http, fake, "broadcast", body)
        assert (status, payload["error"]["code"]) == (200, 107)


async def test_batch_replies_have_no_result_wrapper_and_run_in_order(
    fake: FakeCentrifugo, http: aiohttp.ClientSession
) -> None:
    commands = [
        {"publish": {"channel": "crypto:a", "data": 1}},
        {"broadcast": {"channels": ["crypto:b", "nope:x"], "data": 2}},
        {"publish": {"channel": "nope:c", "data": 3}},
        None,
        {},
        {"publish": {"channel": "crypto:d", "data": 4}},
    ]
    status, _, payload = await post(http, fake, "batch", {"commands": commands, "parallel": False})
    assert status == 200
    assert payload == {"replies": [
        {"publish": {}},
        {"broadcast": {"responses": [{"result": {}}, {"error": {"code": 102, "message": "unknown channel"}}]}},
        {"error": {"code": 102, "message": "unknown channel"}},
        {"error": {"code": 107, "message": "bad request"}},
        {"error": {"code": 104, "message": "not found"}},
        {"publish": {}},
    ]}
    assert [(p.channel, p.data) for p in fake.publications] == [("crypto:a", 1), ("crypto:b", 2), ("crypto:d", 4)]


async def test_idempotency_key_drops_repeats_per_channel(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    body = {"channel": "crypto:a", "data": 1, "idempotency_key": "k1"}
    for _ in range(3):
        assert (await post(http, fake, "publish", body))[0] == 200
    await post(http, fake, "publish", {**body, "channel": "crypto:b"})
    await post(http, fake, "broadcast", {"channels": ["crypto:a", "crypto:c"], "data": 1, "idempotency_key": "k1"})
    assert [p.channel for p in fake.publications] == ["crypto:a", "crypto:b", "crypto:c"]
    assert fake.duplicates == 3


# ---------------------------------------------------------------- knobs


async def test_fail_next_answers_status_then_recovers(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    fake.fail_next(2, status=502)
    statuses = [(await post(http, fake, "publish", {"channel": "a", "data": 1}))[0] for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert len(fake.publications) == 1


async def test_reply_error_next_fails_commands_without_executing(
    fake: FakeCentrifugo, http: aiohttp.ClientSession
) -> None:
    fake.reply_error_next(100)
    _, _, payload = await post(http, fake, "publish", {"channel": "crypto:a", "data": 1})
    assert payload == {"error": {"code": 100, "message": "internal server error"}}
    _, _, payload = await post(http, fake, "publish", {"channel": "crypto:a", "data": 1})
    assert payload == {"result": {}}


async def test_channel_errors_knob(fake: FakeCentrifugo, http: aiohttp.ClientSession) -> None:
    fake.channel_errors["crypto:broken"] = 100
    _, _, payload = await post(http, fake, "broadcast", {"channels": ["crypto:ok", "crypto:broken"], "data": 1})
    assert [r.get("error", {}).get("code") for r in payload["result"]["responses"]] == [None, 100]


async def test_go_down_refuses_connections_and_come_up_serves_again(fake: FakeCentrifugo) -> None:
    async with AsyncClient(fake.url, KEY, timeout=1.0) as client:
        await client.publish(PublishRequest(channel="crypto:a", data=1))  # leaves a keep-alive connection
        await fake.go_down()
        with pytest.raises(CentNetworkError):
            await client.publish(PublishRequest(channel="crypto:a", data=2))
        await fake.come_up()
        await client.publish(PublishRequest(channel="crypto:a", data=3))
    assert fake.data_on("crypto:a") == [1, 3]


# ---------------------------------------------------------------- the cent 5.x quirks, reproduced


async def test_cent_quirks_against_the_fake(fake: FakeCentrifugo) -> None:
    async with AsyncClient(fake.url, KEY, timeout=1.0) as client:
        # a batch reply holding {"error": ...} surfaces as a raw KeyError
        with pytest.raises(KeyError):
            await client.batch(BatchRequest(requests=[PublishRequest(channel="nope:a", data=1)]))
        # broadcast returns per-channel errors without raising
        result = await client.broadcast(BroadcastRequest(channels=["crypto:a", "nope:b"], data=1))
        assert [r.error.code if r.error else None for r in result.responses] == [None, 102]
        # PublishRequest(data=None) drops data, so the server answers 107
        with pytest.raises(CentApiResponseError) as info:
            await client.publish(PublishRequest(channel="crypto:a", data=None))
        assert info.value.code == 107
        fake.fail_next(1, status=503)
        with pytest.raises(CentTransportError) as transport:
            await client.publish(PublishRequest(channel="crypto:a", data=1))
        assert transport.value.status_code == 503
    async with AsyncClient(fake.url, "wrong-key", timeout=1.0) as client:
        with pytest.raises(CentUnauthorizedError):
            await client.publish(PublishRequest(channel="crypto:a", data=1))


async def test_slow_knob_makes_cent_time_out_and_release_ends_it(fake: FakeCentrifugo) -> None:
    fake.slow(30)
    async with AsyncClient(fake.url, KEY, timeout=0.2) as client:
        with pytest.raises(CentTimeoutError):
            await client.publish(PublishRequest(channel="crypto:a", data=1))
        fake.release()
        await client.publish(PublishRequest(channel="crypto:a", data=2))
    # the timed-out request was still processed server-side once released: at-least-once is real
    await fake.wait_for_publications(2, timeout=2.0)
    assert sorted(fake.data_on("crypto:a")) == [1, 2]
