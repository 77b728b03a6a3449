"""Every crypto admin page renders for a superuser; audit data cannot be changed through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.test import Client as HttpClient
from django.test import override_settings
from django.urls import reverse

from apps.crypto.models import (
    Client,
    ClientApiKey,
    CommandRecord,
    ErrorReport,
    LogEntry,
    RejectedMessage,
    StatusChange,
    Transaction,
    Wallet,
)

# The manifest storage needs collectstatic; pages are rendered here, not their assets.
PLAIN_STATIC = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
HOST = "localhost"  # ALLOWED_HOSTS has no "testserver" outside Django's test runner


@pytest.fixture
def browser() -> Iterator[HttpClient]:
    tag = uuid.uuid4().hex[:12]
    user = get_user_model().objects.create_superuser(email=f"{tag}@example.com", username=tag, password=tag)
    http = HttpClient(HTTP_HOST=HOST)
    http.force_login(user)
    with override_settings(STORAGES=PLAIN_STATIC):
        yield http


@pytest.fixture
def rows() -> dict[type[Model], Model]:
    """One row of every crypto model, all tied to one fresh client."""
    client_id = f"bot-{uuid.uuid4()}"
    client = Client.objects.create(client_id=client_id, name="Admin Bot", status="active")
    return {
        Client: client,
        ClientApiKey: ClientApiKey.objects.create(client_id=client_id, key_hash=uuid.uuid4().hex * 2, prefix="ck_test"),
        Wallet: Wallet.objects.create(client=client, wallet_id="w", symbol="BTC", balance_available=Decimal("1.5"),
                                      balance_locked=Decimal(0)),
        Transaction: Transaction.objects.create(client=client, transaction_id=f"tx-{client_id}", type="deposit",
                                                symbol="BTC", amount=Decimal(2)),
        StatusChange: StatusChange.objects.create(client=client, status="active", details="connected"),
        ErrorReport: ErrorReport.objects.create(client=client, severity="high", message="boom " * 100),
        LogEntry: LogEntry.objects.create(client=client, level="INFO", message="tick"),
        RejectedMessage: RejectedMessage.objects.create(client_id=client_id, message_id="m", payload_type="log",
                                                        reason="log.message: too long"),
        CommandRecord: CommandRecord.objects.create(command_id=f"cmd-{client_id}", client_id=client_id,
                                                    kind="ping", payload={"sequence": 1}),
    }


def url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_crypto_model_is_registered(rows: dict[type[Model], Model]) -> None:
    registered = {model for model in admin.site._registry if model._meta.app_label == "crypto"}
    assert registered == set(rows)


def test_changelists_render_and_list_the_row(browser: HttpClient, rows: dict[type[Model], Model]) -> None:
    client_id = rows[Client].client_id  # type: ignore[attr-defined]
    for model in rows:
        response = browser.get(url(model, "changelist"), {"q": client_id})
        assert response.status_code == 200, model
        assert client_id in response.content.decode(), model


def test_change_pages_render(browser: HttpClient, rows: dict[type[Model], Model]) -> None:
    for model, row in rows.items():
        response = browser.get(url(model, "change", row.pk))
        assert response.status_code == 200, model


def test_client_page_links_to_its_records(browser: HttpClient, rows: dict[type[Model], Model]) -> None:
    client = rows[Client]
    page = browser.get(url(Client, "change", client.pk)).content.decode()
    assert f'{url(Transaction, "changelist")}?client__id__exact={client.pk}' in page
    assert f'{url(CommandRecord, "changelist")}?client_id={client.client_id}' in page  # type: ignore[attr-defined]
    filtered = browser.get(url(Transaction, "changelist"), {"client__id__exact": client.pk})
    assert filtered.status_code == 200
    assert rows[Transaction].transaction_id in filtered.content.decode()  # type: ignore[attr-defined]


def test_command_records_cannot_be_changed_added_or_deleted(browser: HttpClient,
                                                            rows: dict[type[Model], Model]) -> None:
    record = rows[CommandRecord]
    response = browser.post(url(CommandRecord, "change", record.pk), {"outcome": "acked", "kind": "pause"})
    assert response.status_code == 403
    assert browser.get(url(CommandRecord, "add")).status_code == 403
    assert browser.post(url(CommandRecord, "delete", record.pk), {"post": "yes"}).status_code == 403
    record.refresh_from_db()
    assert (record.outcome, record.kind) == ("queued", "ping")  # type: ignore[attr-defined]


def test_api_key_hash_is_never_editable(browser: HttpClient, rows: dict[type[Model], Model]) -> None:
    key = rows[ClientApiKey]
    page = browser.get(url(ClientApiKey, "change", key.pk)).content.decode()
    assert 'name="key_hash"' not in page and 'name="client_id"' not in page
    assert 'name="revoked"' in page
    assert browser.get(url(ClientApiKey, "add")).status_code == 403
    browser.post(url(ClientApiKey, "change", key.pk), {"revoked": "on", "key_hash": "0" * 64})
    key.refresh_from_db()
    assert key.revoked is True  # type: ignore[attr-defined]
    assert key.key_hash != "0" * 64  # type: ignore[attr-defined]
