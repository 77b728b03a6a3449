"""The operators' console in the admin: the client list filtered and sorted by live state, replica and
client type, the per-replica summary, its refresh, and bot-reported records that cannot be edited.

Live state comes from real replicas sharing a real redis-server, as in production; Django's test client
is sync, so it runs in a thread while the replicas serve on the test's loop.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib import admin as django_admin
from django.db.models import Model
from django.test import Client as HttpClient
from django.test import override_settings
from django.urls import reverse

from apps.crypto import admin as crypto_admin
from apps.crypto import live
from apps.crypto.models import (
    Client,
    ErrorReport,
    LogEntry,
    RejectedMessage,
    StatusChange,
    Transaction,
    Wallet,
)
from tests.ops.support import PLAIN_STATIC, admin_browser, connected_bot, point_commands_at, use_cluster_redis
from tests.support.grpc_server import running_server
from tests.support.waiting import eventually

CLIENTS = reverse("admin:crypto_client_changelist")


@pytest.fixture(autouse=True)
def plain_static() -> Iterator[None]:
    with override_settings(STORAGES=PLAIN_STATIC):
        yield


def column(name: str) -> int:
    """The `o` index of a client list column (the action checkbox is column 0)."""
    return ["action_checkbox", *crypto_admin.ClientAdmin.list_display].index(name)


def page(browser: HttpClient, **params: object) -> str:
    response = browser.get(CLIENTS, params)
    assert response.status_code == 200, params
    return response.content.decode()


def rows(html: str, client_ids: list[str]) -> list[str]:
    """Which of `client_ids` the list shows, in the order it shows them."""
    shown = [cid for cid in client_ids if f">{cid}<" in html]
    return sorted(shown, key=lambda cid: html.index(f">{cid}<"))


def summary(html: str) -> dict[str, dict[str, str]]:
    """replica -> its summary row's streams, answered, commands/s."""
    found = {}
    for match in re.finditer(r'<tr [^>]*data-replica="([^"]+)"\s+data-streams="(\d+)" data-answered="(\w+)">'
                             r'.*?class="[^"]*replica-rate">\s*(\S+?)\s*</td>', html, re.S):
        found[match[1]] = {"streams": match[2], "answered": match[3], "rate": match[4]}
    return found


async def test_live_list_filters_sorts_and_summarises_real_replicas(monkeypatch, redis_server):
    use_cluster_redis(monkeypatch, redis_server.url)
    tag = uuid.uuid4().hex[:8]
    ids = {name: f"{tag}-{name}" for name in ("alpha", "bravo", "charlie", "offline")}
    async with running_server(redis_url=redis_server.url) as a, running_server(redis_url=redis_server.url) as b:
        point_commands_at(monkeypatch, a.target, a.operator_token)
        bots = [await connected_bot(a, ids["alpha"]), await connected_bot(b, ids["bravo"]),
                await connected_bot(b, ids["charlie"])]
        await Client.objects.acreate(client_id=ids["offline"], client_type="trader")
        for name, kind in (("alpha", "trader"), ("bravo", "wallet"), ("charlie", "trader")):
            await Client.objects.filter(client_id=ids[name]).aupdate(client_type=kind)
        on_a, on_b = a.replica.runtime.replica_id, b.replica.runtime.replica_id
        everyone = list(ids.values())
        try:
            browser = await asyncio.to_thread(admin_browser)

            def get(**params: object) -> str:
                return page(browser, q=tag, **params)

            async def all_connected() -> bool:
                html = await asyncio.to_thread(get, live="connected")
                return len(rows(html, everyone)) == 3
            await eventually(all_connected, message="three bots listed as connected")

            connected = await asyncio.to_thread(get, live="connected")
            disconnected = await asyncio.to_thread(get, live="disconnected")
            replica_a = await asyncio.to_thread(get, replica=on_a)
            replica_b = await asyncio.to_thread(get, replica=on_b)
            traders_live = await asyncio.to_thread(get, live="connected", client_type="trader")
            by_state = await asyncio.to_thread(get, o=str(column("live_state")))
            by_state_desc = await asyncio.to_thread(get, o=f"-{column('live_state')}")
            by_replica = await asyncio.to_thread(get, o=f"{column('live_replica')}.{column('client_id')}")
            by_type = await asyncio.to_thread(get, o=f"{column('client_type')}.{column('client_id')}")

            # an admin action from the console still reaches the bot (routed from A to B), and B counts it
            pks = [pk async for pk in Client.objects.filter(client_id=ids["bravo"]).values_list("pk", flat=True)]
            acted = await asyncio.to_thread(lambda: browser.post(
                CLIENTS + f"?q={tag}", {"action": "send_pause", "_selected_action": pks}, follow=True))
            await bots[1].wait_commands(1)
            after = await asyncio.to_thread(get)
        finally:
            for bot in bots:
                await bot.__aexit__()

    assert set(rows(connected, everyone)) == {ids["alpha"], ids["bravo"], ids["charlie"]}
    assert rows(disconnected, everyone) == [ids["offline"]]
    assert rows(replica_a, everyone) == [ids["alpha"]]
    assert set(rows(replica_b, everyone)) == {ids["bravo"], ids["charlie"]}
    assert set(rows(traders_live, everyone)) == {ids["alpha"], ids["charlie"]}
    assert rows(by_state, everyone)[-1] == ids["offline"]  # connected < disconnected
    assert rows(by_state_desc, everyone)[0] == ids["offline"]
    first, second = sorted([(on_a, [ids["alpha"]]), (on_b, [ids["bravo"], ids["charlie"]])])
    assert rows(by_replica, everyone) == [ids["offline"], *first[1], *second[1]]  # no replica sorts first
    assert rows(by_type, everyone) == [ids["alpha"], ids["charlie"], ids["offline"], ids["bravo"]]

    shown = summary(connected)
    assert shown[on_a]["streams"] == "1" and shown[on_b]["streams"] == "2", shown
    assert shown[on_a]["answered"] == shown[on_b]["answered"] == "yes"
    assert 'id="replica-summary"' in connected and f'data-refresh-seconds="{crypto_admin.LIVE_REFRESH_SECONDS}"' \
        in connected and 'id="live-auto-refresh"' in connected
    assert f"?live=connected&amp;q={tag}&amp;replica={on_b}" in connected  # its clients, keeping the search

    assert acted.status_code == 200 and f"{ids['bravo']}: pause acked: done" in acted.content.decode()
    assert 'data-paused="messages"' in acted.content.decode()  # action results stop the auto-refresh
    assert float(summary(after)[on_b]["rate"]) > 0  # the pause B put into its stream
    assert summary(after)[on_a]["rate"] == "0.00"


def test_live_filter_and_sort_without_redis_say_why(monkeypatch):
    client_id = f"bot-{uuid.uuid4().hex[:10]}"
    Client.objects.create(client_id=client_id)
    browser = admin_browser()
    filtered = page(browser, q=client_id, live="connected")
    assert f">{client_id}<" not in filtered  # nobody is known to be connected
    assert "Live filter or sort not applied: REDIS_URL is not set" in filtered
    assert "No replica summary: REDIS_URL is not set" in filtered
    for order in (column("live_state"), -column("live_replica")):
        assert f">{client_id}<" in page(browser, q=client_id, o=str(order))


def test_a_page_asks_the_replicas_about_its_rows_only_unless_a_live_filter_needs_the_fleet(monkeypatch):
    """The listing stays page-sized; a live filter asks for the full listing once, bounded in size."""
    asked: list[tuple[object, object]] = []

    async def fake_view(timeout: float = 0, client_ids=None, max_streams=None):
        asked.append((None if client_ids is None else sorted(client_ids), max_streams))
        return [], []

    monkeypatch.setattr(live, "fetch_cluster_view", fake_view)
    monkeypatch.setattr(live, "redis_configured", lambda: True)
    monkeypatch.setattr(live, "fetch_replica_names", lambda: [])
    tag = uuid.uuid4().hex[:8]
    for n in range(3):
        Client.objects.create(client_id=f"{tag}-{n}")
    browser = admin_browser()
    page(browser, q=tag)
    assert asked == [([f"{tag}-0", f"{tag}-1", f"{tag}-2"], None)]
    asked.clear()
    html = page(browser, q=tag, live="disconnected")
    assert asked == [(None, crypto_admin.LIVE_FILTER_MAX_STREAMS)]  # one full listing, reused for the rows
    assert all(f">{tag}-{n}<" in html for n in range(3))


async def test_a_live_filter_is_refused_above_the_stream_limit(monkeypatch, redis_server):
    use_cluster_redis(monkeypatch, redis_server.url)
    monkeypatch.setattr(crypto_admin, "LIVE_FILTER_MAX_STREAMS", 0)
    async with running_server(redis_url=redis_server.url) as server:
        bot = await connected_bot(server)
        try:
            browser = await asyncio.to_thread(admin_browser)

            async def beat_counted() -> str:
                html = await asyncio.to_thread(page, browser, q=bot.client_id, live="connected")
                return html if "fleet too large" in html else ""
            html = await eventually(beat_counted, message="the lease counts the stream")
            plain = await asyncio.to_thread(page, browser, q=bot.client_id)
        finally:
            await bot.__aexit__()
    assert "Live filter or sort not applied: fleet too large for a live filter or sort" in html
    assert f">{bot.client_id}<" not in html
    assert f">{bot.client_id}<" in plain and 'data-state="connected"' in plain  # the page's own rows still live


@pytest.fixture
def reported() -> dict[type[Model], Model]:
    """One row of every bot-reported model, all tied to one fresh client."""
    client_id = f"bot-{uuid.uuid4()}"
    client = Client.objects.create(client_id=client_id, name="Reported", client_type="trader", status="active")
    return {
        Client: client,
        Wallet: Wallet.objects.create(client=client, wallet_id="w", symbol="BTC", balance_available=Decimal("1.5"),
                                      balance_locked=Decimal(0)),
        Transaction: Transaction.objects.create(client=client, transaction_id=f"tx-{client_id}", type="deposit",
                                                symbol="BTC", amount=Decimal(2), status="pending"),
        StatusChange: StatusChange.objects.create(client=client, status="active", details="connected"),
        ErrorReport: ErrorReport.objects.create(client=client, severity="high", message="boom"),
        LogEntry: LogEntry.objects.create(client=client, level="INFO", message="tick"),
        RejectedMessage: RejectedMessage.objects.create(client_id=client_id, message_id="m", payload_type="log",
                                                        reason="log.message: too long"),
    }


# what a POST to each change form tries to overwrite
FORGED: dict[type[Model], dict[str, str]] = {
    Client: {"client_id": "forged", "status": "paused", "name": "forged", "client_type": "forged"},
    Wallet: {"symbol": "ETH", "balance_available": "999", "balance_locked": "0", "wallet_id": "forged"},
    Transaction: {"status": "forged", "amount": "999", "symbol": "ETH", "type": "withdrawal"},
    StatusChange: {"status": "error", "details": "forged"},
    ErrorReport: {"message": "forged", "severity": "low"},
    LogEntry: {"message": "forged", "level": "ERROR"},
    RejectedMessage: {"reason": "forged"},
}


def admin_url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_bot_reported_records_cannot_be_edited_or_added(reported: dict[type[Model], Model]) -> None:
    browser = admin_browser()
    for model, row in reported.items():
        before = {field: getattr(row, field) for field in FORGED[model]}
        form = browser.get(admin_url(model, "change", row.pk))
        assert form.status_code == 200, model
        html = form.content.decode()
        for field in FORGED[model]:
            assert f'name="{field}"' not in html, (model, field)
        assert 'name="_save"' not in html, model
        posted = browser.post(admin_url(model, "change", row.pk), {**FORGED[model], "_save": "Save"})
        assert posted.status_code == 403, model
        row.refresh_from_db()
        assert {field: getattr(row, field) for field in FORGED[model]} == before, model
        assert browser.get(admin_url(model, "add")).status_code == 403, model


def test_the_client_page_still_shows_its_live_state_and_records(reported: dict[type[Model], Model]) -> None:
    client = reported[Client]
    html = admin_browser().get(admin_url(Client, "change", client.pk)).content.decode()
    assert client.client_id in html and "trader" in html  # type: ignore[attr-defined]
    assert 'data-state="unknown"' in html and "Related records" in html


def test_client_list_actions_need_only_the_model_change_permission() -> None:
    """Records are read-only, yet the command actions (which need "change") stay on the list."""
    html = page(admin_browser())
    for kind in ("send_ping", "send_pause", "send_resume", "send_sync_wallets", "send_request_status"):
        assert f'value="{kind}"' in html, kind


def test_log_entries_are_called_log_entries() -> None:
    assert LogEntry._meta.verbose_name_plural == "log entries"
    browser = admin_browser()
    html = browser.get(admin_url(LogEntry, "changelist")).content.decode()
    assert "log entries" in html.lower() and "entrys" not in html.lower()
    index = browser.get(reverse("admin:app_list", args=["crypto"]))
    if index.status_code == 200:  # the app index is django-cfg's; it may not render yet (#15, config/)
        assert "entrys" not in index.content.decode().lower()
    assert all(model._meta.verbose_name_plural != "log entrys" for model in django_admin.site._registry)


def test_a_retired_client_can_still_be_deleted_with_what_it_reported(reported: dict[type[Model], Model]) -> None:
    client = reported[Client]
    browser = admin_browser()
    confirm = browser.get(admin_url(Client, "delete", client.pk))
    assert confirm.status_code == 200 and "permission" not in confirm.content.decode().lower()
    assert browser.post(admin_url(Client, "delete", client.pk), {"post": "yes"}).status_code == 302
    assert not Client.objects.filter(pk=client.pk).exists()
    assert not LogEntry.objects.filter(pk=reported[LogEntry].pk).exists()


def test_a_client_page_reads_the_cluster_view_once(monkeypatch, reported: dict[type[Model], Model]) -> None:
    asked: list[object] = []

    async def fake_view(timeout: float = 0, client_ids=None, max_streams=None):
        asked.append(client_ids)
        return [], []

    monkeypatch.setattr(live, "fetch_cluster_view", fake_view)
    monkeypatch.setattr(live, "redis_configured", lambda: True)
    client = reported[Client]
    assert admin_browser().get(admin_url(Client, "change", client.pk)).status_code == 200
    assert asked == [[client.client_id]]  # type: ignore[attr-defined]
