"""Admin client list: live connection column and command actions through the real command path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.test import override_settings
from django.urls import reverse

from apps.crypto.models import Client, CommandRecord
from tests.ops.support import (
    HOST,
    PLAIN_STATIC,
    admin_browser,
    connected_bot,
    finished_record,
    new_client_id,
    owned_in_redis,
    point_commands_at,
    use_cluster_redis,
)
from tests.support.grpc_server import OPERATOR_TOKEN, running_server
from tests.support.ports import free_port
from tests.support.waiting import eventually

CHANGELIST = "admin:crypto_client_changelist"


@pytest.fixture(autouse=True)
def plain_static() -> Iterator[None]:
    with override_settings(STORAGES=PLAIN_STATIC):
        yield


def run_action(browser: HttpClient, action: str, *client_ids: str) -> str:
    """POST an admin action on the given clients; the page it redirects to, with the messages."""
    pks = list(Client.objects.filter(client_id__in=client_ids).values_list("pk", flat=True))
    response = browser.post(reverse(CHANGELIST), {"action": action, "_selected_action": pks}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def changelist(browser: HttpClient, client_id: str) -> str:
    response = browser.get(reverse(CHANGELIST), {"q": client_id})
    assert response.status_code == 200
    return response.content.decode()


async def test_pause_action_reaches_the_bot_and_is_recorded(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server)
        try:
            browser = await asyncio.to_thread(admin_browser)
            page = await asyncio.to_thread(run_action, browser, "send_pause", bot.client_id)
            await bot.wait_commands(1)
        finally:
            await bot.__aexit__()
    assert f"{bot.client_id}: pause acked: done" in page
    command = bot.commands[0]
    assert command.WhichOneof("command") == "pause" and "from the admin by" in command.pause.reason
    record = await finished_record(command.command_id)
    assert record.outcome == "acked" and record.kind == "pause" and record.client_id == bot.client_id
    assert record.sent_by.startswith("operator:") and record.wait_for_ack


async def test_every_action_kind_goes_through(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server)
        try:
            browser = await asyncio.to_thread(admin_browser)
            for action in ("send_resume", "send_sync_wallets", "send_request_status"):
                page = await asyncio.to_thread(run_action, browser, action, bot.client_id)
                assert f"{bot.client_id}: {action.removeprefix('send_')} acked" in page, action
        finally:
            await bot.__aexit__()
    kinds = [command.WhichOneof("command") for command in bot.commands]
    assert kinds == ["resume", "sync_wallets", "request_status"]


async def test_one_message_per_client_success_and_failure(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bot = await connected_bot(server)
        offline = new_client_id()
        await Client.objects.acreate(client_id=offline)
        try:
            browser = await asyncio.to_thread(admin_browser)
            page = await asyncio.to_thread(run_action, browser, "send_request_status", bot.client_id, offline)
        finally:
            await bot.__aexit__()
    assert f"{bot.client_id}: request_status acked" in page
    assert f"{offline}: request_status failed: client {offline} is not connected" in page


def test_unreachable_grpc_service_is_reported_not_raised(monkeypatch):
    point_commands_at(monkeypatch, f"127.0.0.1:{free_port()}", OPERATOR_TOKEN)
    client_id = new_client_id()
    Client.objects.create(client_id=client_id)
    page = run_action(admin_browser(), "send_ping", client_id)
    assert f"{client_id}: ping not sent: UNAVAILABLE" in page


def test_view_only_staff_cannot_send_commands(monkeypatch):
    point_commands_at(monkeypatch, f"127.0.0.1:{free_port()}", OPERATOR_TOKEN)
    client_id = new_client_id()
    Client.objects.create(client_id=client_id)
    user = get_user_model().objects.create_user(email=f"{client_id}@example.com", username=client_id,
                                                password=client_id, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_client"))
    browser = HttpClient(HTTP_HOST=HOST)
    browser.force_login(user)
    assert "send_pause" not in changelist(browser, client_id)
    page = run_action(browser, "send_pause", client_id)
    assert "not sent" not in page and "acked" not in page


async def test_live_column_shows_replica_and_heartbeat(monkeypatch, redis_server):
    use_cluster_redis(monkeypatch, redis_server.url)
    async with running_server(redis_url=redis_server.url) as server:
        bot = await connected_bot(server)
        try:
            browser = await asyncio.to_thread(admin_browser)

            async def shown() -> bool:
                return server.replica.runtime.replica_id in await asyncio.to_thread(changelist, browser,
                                                                                    bot.client_id)
            await eventually(shown, message="replica in live column")
            page = await asyncio.to_thread(changelist, browser, bot.client_id)
        finally:
            await bot.__aexit__()
    replica = server.replica.runtime.replica_id
    assert 'data-state="connected"' in page and "heartbeat" in page
    assert f'class="live-replica" href="/admin/crypto/client/?replica={replica}">{replica}</a>' in page


def test_live_column_is_unknown_without_redis_or_when_it_fails(monkeypatch):
    client_id = new_client_id()
    Client.objects.create(client_id=client_id)
    browser = admin_browser()
    assert "REDIS_URL is not set" in changelist(browser, client_id)
    use_cluster_redis(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    page = changelist(browser, client_id)
    assert client_id in page and "cluster view unavailable" in page and ">unknown<" in page
    detail = browser.get(reverse("admin:crypto_client_change", args=[Client.objects.get(client_id=client_id).pk]))
    assert detail.status_code == 200 and ">unknown<" in detail.content.decode()



async def pause_from_admin(bots: list) -> tuple[str, str]:
    """The admin's pause action on the bots' rows; the result page and the one broadcast_id every copy carries
    (each bot has its copy by then). The bots are closed afterwards, whatever happens."""
    try:
        browser = await asyncio.to_thread(admin_browser)
        page = await asyncio.to_thread(run_action, browser, "send_pause", *(bot.client_id for bot in bots))
        for bot in bots:
            await bot.wait_commands(1)
    finally:
        for bot in bots:
            await bot.__aexit__()
    [broadcast_id] = {bot.commands[0].command_id.split(":")[0] for bot in bots}  # one broadcast reached them all
    return page, broadcast_id


async def test_action_on_three_bots_is_one_broadcast_with_every_ack_and_the_summary(monkeypatch):
    async with running_server() as server:
        point_commands_at(monkeypatch, server.target, server.operator_token)
        bots = [await connected_bot(server) for _ in range(3)]
        before = await CommandRecord.objects.filter(kind="broadcast").acount()
        page, broadcast_id = await pause_from_admin(bots)
    for bot in bots:
        assert bot.commands[0].command_id == f"{broadcast_id}:{bot.client_id}"
        assert f"{bot.client_id}: pause acked: done (status CLIENT_STATUS_ACTIVE, command {broadcast_id}:" in page
    assert f"pause broadcast {broadcast_id}: targeted 3, acked 3, failed 0" in page
    record = await finished_record(broadcast_id)
    assert record.kind == "broadcast" and record.client_id == "ids:3" and record.outcome == "acked"
    assert sorted(record.payload["selector"]["client_ids"]) == sorted(bot.client_id for bot in bots)
    assert await CommandRecord.objects.filter(kind="broadcast").acount() == before + 1
    copy = await finished_record(bots[0].commands[0].command_id)
    assert copy.kind == "pause" and copy.outcome == "acked" and copy.client_id == bots[0].client_id


async def test_action_on_bots_of_three_replicas_is_one_broadcast_through_one_of_them(monkeypatch, redis_server):
    from apps.crypto.grpc.services.bus.cluster_view import live_leases

    async with (running_server(redis_url=redis_server.url) as a, running_server(redis_url=redis_server.url) as b,
                running_server(redis_url=redis_server.url) as c):
        replicas = {server.replica.runtime.replica_id for server in (a, b, c)}

        async def all_leased() -> bool:
            leases = await live_leases(a.replica.runtime.bus.link, 15.0)
            return replicas <= {lease["replica"] for lease in leases}
        await eventually(all_leased, message="three live leases")
        point_commands_at(monkeypatch, a.target, a.operator_token)
        bots = [await connected_bot(server) for server in (a, b, c)]
        for bot in bots:
            await owned_in_redis(redis_server.url, bot.client_id)
        page, broadcast_id = await pause_from_admin(bots)
    assert f"pause broadcast {broadcast_id}: targeted 3, acked 3, failed 0" in page
    for bot in bots:
        assert f"{bot.client_id}: pause acked: done (status CLIENT_STATUS_ACTIVE, command {broadcast_id}:" in page
    record = await finished_record(broadcast_id)
    assert record.kind == "broadcast" and record.accepted_by == a.replica.runtime.replica_id
    assert set(record.payload["counts"]["replicas"]) == replicas
