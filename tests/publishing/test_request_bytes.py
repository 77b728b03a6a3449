"""The HTTP request the sender makes is byte for byte the MessageToDict path's json.dumps batch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from apps.crypto.publishing import CentrifugoPublisher
from apps.crypto.publishing.envelope import Kind, channels_for, idempotency_key
from apps.crypto.publishing.wire import batch_payload, broadcast_command

from .helpers import REPLICA, eventually, fast_config
from .test_protojson import PUBLISHED, reference_envelope

RECEIVED_AT = 1_800_000_000.25


class RawServer:
    """Records each request's headers and raw body; answers every broadcast as delivered to 2 channels."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        ok = {"broadcast": {"responses": [{"result": {}}, {"result": {}}]}}
        return web.json_response({"replies": [ok] * len(json.loads(body)["commands"])})


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    server = RawServer()
    app = web.Application()
    app.router.add_post("/api/batch", server.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    yield server
    await runner.cleanup()


async def test_request_body_is_the_message_to_dict_batch(raw_server: RawServer) -> None:
    publisher = CentrifugoPublisher(fast_config(raw_server.url, "key", batch_size=len(PUBLISHED)), REPLICA,
                                    wall_clock=lambda: RECEIVED_AT)
    publish = {Kind.CLIENT_MESSAGE: publisher.publish_client_message, Kind.COMMAND: publisher.publish_command,
               Kind.ACK: publisher.publish_ack}
    client_ids = ["bot-1", "bot #2", "émoji✓"]
    for n, (kind, message) in enumerate(PUBLISHED):
        publish[kind](client_ids[n % 3], message)
    await publisher.start()
    try:
        await eventually(lambda: publisher.stats().published == len(PUBLISHED))
    finally:
        await publisher.close()
    expected: list[dict[str, Any]] = []
    for seq, (kind, message) in enumerate(PUBLISHED, 1):
        client_id = client_ids[(seq - 1) % 3]
        envelope = reference_envelope(kind, client_id, message, replica=REPLICA, seq=seq, received_at=RECEIVED_AT)
        channels = channels_for(client_id, "crypto:{client_id}:updates", "crypto:all")
        expected.append(broadcast_command(channels, envelope, idempotency_key(REPLICA, publisher._instance, seq)))
    [(headers, body)] = raw_server.requests
    assert body == json.dumps(batch_payload(expected)).encode()
    assert headers["Content-Type"] == "application/json"
    assert headers["X-API-Key"] == "key"
