"""The operator HTTP API under /api/crypto/, through Django's ASGI handler (AsyncClient)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import AsyncClient
from drf_spectacular.validation import validate_schema

from apps.crypto.api.params import COMMAND_PARAMS
from apps.crypto.grpc.services.auth import OperatorTokens
from apps.crypto.grpc.services.commands import COMMAND_BUILDERS
from apps.crypto.models import Client, CommandRecord, Transaction, Wallet
from tests.ops.support import (
    connected_bot,
    finished_record,
    new_client_id,
    point_commands_at,
    use_cluster_redis,
)
from tests.support.grpc_server import OPERATOR_TOKEN, running_server
from tests.support.ports import free_port
from tests.support.waiting import eventually

API = "/api/crypto"


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens accepted; commands go to a port nobody listens on."""
    point_commands_at(monkeypatch, f"127.0.0.1:{free_port()}", OPERATOR_TOKEN)


def auth(token: str | None = OPERATOR_TOKEN) -> dict[str, str]:
    """Per-request headers: AsyncClient(headers=...) lands in the ASGI scope, not in its headers."""
    return {} if token is None else {"authorization": f"Bearer {token}"}


async def get(path: str, token: str | None = OPERATOR_TOKEN, **query: Any) -> Any:
    return await AsyncClient().get(f"{API}{path}", query, headers=auth(token))


async def post_command(client_id: str, body: Any, token: str | None = OPERATOR_TOKEN) -> Any:
    return await AsyncClient().post(f"{API}/clients/{client_id}/commands/", body, content_type="application/json",
                                    headers=auth(token))


async def a_client(**fields: Any) -> Client:
    return await Client.objects.acreate(client_id=new_client_id(), **fields)


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token"}, {"authorization": OPERATOR_TOKEN},
                                     {"authorization": "Basic dXNlcjpwYXNz"}, {"authorization": "Bearer "}])
async def test_missing_or_wrong_token_is_401(unreachable, headers):
    client = await a_client()
    api = AsyncClient()
    for request in (lambda: api.get(f"{API}/clients/", headers=headers),
                    lambda: api.get(f"{API}/clients/{client.client_id}/", headers=headers),
                    lambda: api.post(f"{API}/clients/{client.client_id}/commands/", {"kind": "ping"},
                                     content_type="application/json", headers=headers)):
        response = await request()
        assert response.status_code == 401
        body = response.json()
        assert body["error"] == "unauthorized" and body["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert OPERATOR_TOKEN not in response.content.decode()


async def test_no_configured_tokens_refuses_everyone(monkeypatch):
    monkeypatch.setenv("CRYPTO_OPERATOR_TOKENS", "")
    response = await get("/clients/")
    assert response.status_code == 401 and "CRYPTO_OPERATOR_TOKENS" in response.json()["detail"]


# ---------------------------------------------------------------------------- reading


async def test_list_shows_clients_with_live_state(unreachable):
    client = await a_client(name="Lister", status="active")
    response = await get("/clients/", page_size=1000)
    assert response.status_code == 200
    body = response.json()
    row = next(item for item in body["results"] if item["client_id"] == client.client_id)
    assert row["name"] == "Lister" and row["status"] == "active"
    assert row["live"] == {"state": "unknown", "replica": None, "connected_at": None, "last_heartbeat": None}
    assert body["count"] >= 1


async def test_show_has_wallets_recent_transactions_and_commands(unreachable):
    client = await a_client()
    await Wallet.objects.acreate(client=client, wallet_id="w1", symbol="BTC", balance_available=Decimal("1.25"),
                                 balance_locked=Decimal("0"))
    for n in range(25):
        await Transaction.objects.acreate(client=client, transaction_id=f"tx-{n:02d}", type="deposit", symbol="BTC",
                                          amount=Decimal(n))
    for n in range(22):
        await CommandRecord.objects.acreate(command_id=f"{client.client_id}-c{n:02d}", client_id=client.client_id,
                                            kind="ping", outcome="acked")
    response = await get(f"/clients/{client.client_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["client_id"] == client.client_id and body["live"]["state"] == "unknown"
    [wallet] = body["wallets"]
    assert (wallet["wallet_id"], wallet["symbol"]) == ("w1", "BTC")
    assert wallet["balance_available"] == "1.250000000000000000"  # decimals as exact strings
    assert wallet["balance_locked"] == "0.000000000000000000"
    assert [t["transaction_id"] for t in body["recent_transactions"]] == [f"tx-{n:02d}" for n in range(24, 4, -1)]
    assert [c["command_id"] for c in body["recent_commands"]] == [
        f"{client.client_id}-c{n:02d}" for n in range(21, 1, -1)]


async def test_unknown_client_is_404(unreachable):
    missing = f"nobody-{uuid.uuid4().hex[:6]}"
    for response in (await get(f"/clients/{missing}/"),
                     await post_command(missing, {"kind": "ping"})):
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": f"no client '{missing}'"}


async def test_live_state_comes_from_the_cluster_view(monkeypatch, redis_server):
    use_cluster_redis(monkeypatch, redis_server.url)
    async with running_server(redis_url=redis_server.url) as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server)
        try:
            async def live() -> dict[str, Any]:
                return (await get(f"/clients/{bot.client_id}/")).json()["live"]

            async def connected() -> bool:
                return (await live())["state"] == "connected"
            await eventually(connected, message="connected in the cluster view")
            state = await live()
        finally:
            await bot.__aexit__()
    assert state["replica"] == server.replica.runtime.replica_id
    now = datetime.now(UTC)
    for moment in (state["connected_at"], state["last_heartbeat"]):
        assert now - timedelta(minutes=1) < datetime.fromisoformat(moment.replace("Z", "+00:00")) <= now


# ---------------------------------------------------------------------------- commands


async def test_command_with_wait_returns_the_bots_ack_and_is_recorded(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server)
        try:
            response = await post_command(bot.client_id, {"kind": "pause", "params": {"reason": "api test"},
                                                          "wait": True, "timeout": 5})
        finally:
            await bot.__aexit__()
    assert response.status_code == 200, response.content
    ack = response.json()
    assert ack["success"] is True and ack["message"] == "done" and ack["error"] == ""
    assert ack["current_status"] == "CLIENT_STATUS_ACTIVE"
    assert [c.command_id for c in bot.commands] == [ack["command_id"]]
    assert bot.commands[0].pause.reason == "api test"
    record = await finished_record(ack["command_id"])
    assert record.outcome == "acked" and record.kind == "pause" and record.wait_for_ack
    assert record.sent_by == OperatorTokens([OPERATOR_TOKEN]).identify(OPERATOR_TOKEN)


async def test_command_without_wait_confirms_delivery(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server, auto_ack=False)
        try:
            response = await post_command(bot.client_id, {"kind": "sync_wallets", "params": {"symbols": ["BTC"]},
                                                          "wait": False})
            await bot.wait_commands(1)
        finally:
            await bot.__aexit__()
    assert response.status_code == 200
    body = response.json()
    assert body == {"command_id": bot.commands[0].command_id, "delivered": True, "error": ""}
    assert list(bot.commands[0].sync_wallets.symbols) == ["BTC"]


async def test_offline_client_and_unanswered_ack_are_200_with_success_false(monkeypatch):
    async with running_server(ack_timeout=0.5) as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        offline = await a_client()
        response = await post_command(offline.client_id, {"kind": "ping"})
        assert response.status_code == 200
        assert response.json()["success"] is False and "not connected" in response.json()["error"]
        silent = await connected_bot(server, auto_ack=False)
        try:
            response = await post_command(silent.client_id, {"kind": "request_status", "timeout": 0.5})
        finally:
            await silent.__aexit__()
    assert response.status_code == 200
    assert response.json()["success"] is False and "timed out" in response.json()["error"]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"kind": "explode"}, "kind"),
    ({}, "kind"),
    ({"kind": "pause", "params": {"sequence": 1}}, "does not take sequence"),
    ({"kind": "ping", "params": {"sequence": "many"}}, "sequence"),
    ({"kind": "ping", "params": {"sequence": -1}}, "sequence"),
    ({"kind": "sync_wallets", "params": {"symbols": "BTC"}}, "symbols"),
    ({"kind": "ping", "timeout": 0}, "timeout"),
    ({"kind": "ping", "timeout": 10_000}, "timeout"),
    ({"kind": "ping", "wait": "perhaps"}, "wait"),
    ({"kind": "ping", "params": ["sequence"]}, "params"),
])
async def test_bad_requests_are_400_and_send_nothing(unreachable, body, fragment):
    client = await a_client()
    response = await post_command(client.client_id, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "bad_request" and fragment in response.json()["detail"]
    assert not await CommandRecord.objects.filter(client_id=client.client_id).aexists()


async def test_malformed_json_is_400(unreachable):
    client = await a_client()
    response = await post_command(client.client_id, "{not json")
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_unreachable_grpc_service_is_503(unreachable):
    client = await a_client()
    response = await post_command(client.client_id, {"kind": "ping", "wait": False})
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "grpc_unavailable" and "cannot reach the gRPC server" in body["detail"]


def test_every_command_kind_has_its_params():
    assert set(COMMAND_PARAMS) == set(COMMAND_BUILDERS)


# ---------------------------------------------------------------------------- schema


async def test_schema_is_valid_openapi_with_the_four_paths():
    response = await AsyncClient().get(f"{API}/schema/",
                                                             headers={"accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"] == "3.1.0"
    assert set(schema["paths"]) == {f"{API}/clients/", f"{API}/clients/{{client_id}}/",
                                    f"{API}/clients/{{client_id}}/commands/", f"{API}/broadcast/"}
    command = schema["paths"][f"{API}/clients/{{client_id}}/commands/"]["post"]
    assert {"200", "400", "401", "404", "503", "504"} <= set(command["responses"])
    assert command["security"] == [{"operatorToken": []}]
    assert schema["components"]["securitySchemes"]["operatorToken"]["scheme"] == "bearer"
    assert set(schema["components"]["schemas"]["KindEnum"]["enum"]) == set(COMMAND_BUILDERS)
    broadcast = schema["paths"][f"{API}/broadcast/"]["post"]
    assert {"200", "400", "401", "503", "504"} <= set(broadcast["responses"])
    assert broadcast["security"] == [{"operatorToken": []}]


# ---------------------------------------------------------------------------- broadcast


async def post_broadcast(body: Any, token: str | None = OPERATOR_TOKEN) -> Any:
    return await AsyncClient().post(f"{API}/broadcast/", body, content_type="application/json", headers=auth(token))


async def test_broadcast_returns_every_bots_result_and_the_summary(monkeypatch):
    async with running_server(ack_timeout=2) as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bots = [await connected_bot(server) for _ in range(3)]
        offline = new_client_id()
        try:
            ids = [bot.client_id for bot in bots]
            response = await post_broadcast({"selector": {"client_ids": [*ids, offline]},
                                             "command": {"kind": "pause", "params": {"reason": "api fleet"}},
                                             "timeout": 3})
            everyone = await post_broadcast({"selector": {"all_connected": True}, "command": {"kind": "resume"}})
        finally:
            for bot in bots:
                await bot.__aexit__()
    assert response.status_code == 200, response.content
    body = response.json()
    broadcast_id = body["broadcast_id"]
    assert body["summary"] == {"targeted": 4, "acked": 3, "failed": 1}
    results = {result["client_id"]: result for result in body["results"]}
    assert [result["client_id"] for result in body["results"]] == sorted([*ids, offline])
    for client_id in ids:
        assert results[client_id] == {"client_id": client_id, "command_id": f"{broadcast_id}:{client_id}",
                                      "success": True, "message": "done", "error": "",
                                      "current_status": "CLIENT_STATUS_ACTIVE"}
    assert results[offline]["success"] is False and results[offline]["error"] == f"client {offline} is not connected"
    assert all(bot.commands[0].pause.reason == "api fleet" for bot in bots)
    record = await finished_record(broadcast_id)
    assert record.kind == "broadcast" and record.client_id == "ids:4" and record.outcome == "failed"
    assert record.sent_by == OperatorTokens([OPERATOR_TOKEN]).identify(OPERATOR_TOKEN)
    assert everyone.status_code == 200, everyone.content
    assert everyone.json()["summary"] == {"targeted": 3, "acked": 3, "failed": 0}
    assert all([c.WhichOneof("command") for c in bot.commands] == ["pause", "resume"] for bot in bots)


@pytest.mark.parametrize(("way", "found"), [
    ({}, "none"),
    ({"client_ids": ["bot-1"], "all_connected": True}, "client_ids and all_connected"),
    ({"client_type": "maker", "all_connected": True}, "client_type and all_connected"),
])
async def test_a_malformed_selector_is_400_with_the_services_message(monkeypatch, way, found):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        response = await post_broadcast({"selector": way, "command": {"kind": "ping"}})
    assert response.status_code == 400, response.content
    assert response.json() == {
        "error": "grpc_invalid_argument",
        "detail": "command service: selector must set exactly one of client_ids, client_type, all_connected "
                  f"(found {found})"}


@pytest.mark.parametrize(("body", "fragment"), [
    ({"command": {"kind": "ping"}}, "selector"),
    ({"selector": {"all_connected": True}}, "command"),
    ({"selector": {"all": True}, "command": {"kind": "ping"}}, "selector: does not take all"),
    ({"selector": ["bot-1"], "command": {"kind": "ping"}}, "selector"),
    ({"selector": {"all_connected": True}, "command": {"kind": "explode"}}, "command.kind"),
    ({"selector": {"all_connected": True}, "command": {"kind": "pause", "params": {"sequence": 1}}},
     "does not take sequence"),
    ({"selector": {"all_connected": True}, "command": {"kind": "ping"}, "timeout": 0}, "timeout"),
])
async def test_bad_broadcast_bodies_are_400_and_send_nothing(unreachable, body, fragment):
    response = await post_broadcast(body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "bad_request" and fragment in response.json()["detail"]


async def test_broadcast_needs_a_token_and_maps_an_unreachable_service(unreachable):
    body = {"selector": {"all_connected": True}, "command": {"kind": "ping"}}
    for token in (None, "wrong-token"):
        response = await post_broadcast(body, token)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    response = await post_broadcast(body)
    assert response.status_code == 503 and response.json()["error"] == "grpc_unavailable"
