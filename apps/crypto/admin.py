"""Operator views of what bots reported and what they were sent.

Bot-reported history (rejections, commands) is an audit log: viewable, never editable.
API keys are only ever revoked here; keys are issued by the management command that can show
the raw key once, so the admin never adds one and never lets the hash be edited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from unfold.admin import ModelAdmin, TabularInline
from unfold.views import ChangeList

from .admin_actions import COMMAND_ACTION_FUNCTIONS
from .live import CONNECTED, LiveView, fetch_live_view
from .models import (
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

PREVIEW_CHARS = 80


def preview(text: str) -> str:
    """One table cell of a possibly 10k-character text."""
    return Truncator(text).chars(PREVIEW_CHARS)


class ReadOnlyAdmin(ModelAdmin):
    """Audit data: view and search only."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class WalletInline(TabularInline):
    model = Wallet
    fields = ("wallet_id", "symbol", "balance_available", "balance_locked", "last_sync", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# (label, admin url name, query parameter) of the per-client lists linked from a Client page
CLIENT_LINKS: tuple[tuple[str, str, str], ...] = (
    ("Transactions", "admin:crypto_transaction_changelist", "client__id__exact"),
    ("Status changes", "admin:crypto_statuschange_changelist", "client__id__exact"),
    ("Error reports", "admin:crypto_errorreport_changelist", "client__id__exact"),
    ("Log entries", "admin:crypto_logentry_changelist", "client__id__exact"),
    ("Commands", "admin:crypto_commandrecord_changelist", "client_id"),
    ("Rejected messages", "admin:crypto_rejectedmessage_changelist", "client_id"),
    ("API keys", "admin:crypto_clientapikey_changelist", "client_id"),
)


LIVE_VIEW_ATTR = "_live_view"  # where LiveChangeList leaves the page's cluster view on each row


class LiveChangeList(ChangeList):
    """Reads the cluster view once per changelist page and hands it to every row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if not self.result_list:
            return
        view = fetch_live_view(client_ids=[row.client_id for row in self.result_list])
        for row in self.result_list:
            setattr(row, LIVE_VIEW_ATTR, view)


def render_live(view: LiveView, client_id: str) -> SafeString:
    """connected (replica, heartbeat age) / disconnected / unknown (with why as a tooltip)."""
    state = view.state(client_id)
    if state.state != CONNECTED or state.last_heartbeat is None:
        return format_html('<span title="{}">{}</span>', view.reason, state.state)
    age = int((datetime.now(UTC) - state.last_heartbeat).total_seconds())
    return format_html('<span title="connected since {}">connected</span> on {}<br>heartbeat {}s ago',
                       state.connected_at.isoformat() if state.connected_at else "-", state.replica, max(age, 0))


@admin.register(Client)
class ClientAdmin(ModelAdmin):
    list_display = ("client_id", "name", "client_type", "version", "status", "live_state", "last_seen",
                    "first_seen")
    list_filter = ("status", "client_type", "last_seen")
    search_fields = ("client_id", "name")
    readonly_fields = ("first_seen", "last_seen", "live_state", "related")
    inlines = (WalletInline,)
    actions = COMMAND_ACTION_FUNCTIONS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LiveChangeList

    @admin.display(description="live connection")
    def live_state(self, obj: Client) -> SafeString:
        """From the page's cluster view on the changelist; a fresh read on a single client's page."""
        if obj.pk is None:
            return format_html("{}", "-")
        view = getattr(obj, LIVE_VIEW_ATTR, None) or fetch_live_view(client_ids=[obj.client_id])
        return render_live(view, obj.client_id)

    @admin.display(description="Related records")
    def related(self, obj: Client) -> str:
        """Links rather than inlines: a busy bot has far more rows than one page can hold."""
        if obj.pk is None:
            return "-"
        values = {"client__id__exact": obj.pk, "client_id": obj.client_id}
        links = ((reverse(url), urlencode({param: values[param]}), label) for label, url, param in CLIENT_LINKS)
        return format_html_join(" | ", '<a href="{}?{}">{}</a>', links)


@admin.register(ClientApiKey)
class ClientApiKeyAdmin(ModelAdmin):
    list_display = ("client_id", "prefix", "created_at", "revoked")
    list_filter = ("revoked", "created_at")
    search_fields = ("client_id", "prefix")
    fields = ("client_id", "prefix", "key_hash", "created_at", "revoked")
    readonly_fields = ("client_id", "prefix", "key_hash", "created_at")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ClientApiKey]) -> None:
        count = queryset.update(revoked=True)
        self.message_user(request, f"{count} key(s) revoked")


class ClientOwnedAdmin(ModelAdmin):
    """Rows hanging off a Client: searchable by client_id, client chosen by autocomplete."""

    autocomplete_fields = ("client",)
    list_select_related = ("client",)
    date_hierarchy: str | None = "created_at"

    @admin.display(description="client", ordering="client__client_id")
    def client_ref(self, obj: Any) -> str:
        return obj.client.client_id


@admin.register(Wallet)
class WalletAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "wallet_id", "symbol", "balance_available", "balance_locked", "last_sync")
    list_filter = ("symbol", "last_sync")
    search_fields = ("client__client_id", "wallet_id", "symbol")
    readonly_fields = ("last_sync", "updated_at")
    date_hierarchy = None


@admin.register(Transaction)
class TransactionAdmin(ClientOwnedAdmin):
    list_display = ("transaction_id", "client_ref", "type", "symbol", "amount", "status", "created_at")
    list_filter = ("type", "symbol", "status", "created_at")
    search_fields = ("transaction_id", "client__client_id")
    readonly_fields = ("created_at",)


@admin.register(StatusChange)
class StatusChangeAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "status", "details_preview", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("client__client_id", "details")
    readonly_fields = ("created_at",)

    @admin.display(description="details")
    def details_preview(self, obj: StatusChange) -> str:
        return preview(obj.details)


@admin.register(ErrorReport)
class ErrorReportAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "severity", "message_preview", "created_at")
    list_filter = ("severity", "created_at")
    search_fields = ("client__client_id", "message")
    readonly_fields = ("created_at",)

    @admin.display(description="message")
    def message_preview(self, obj: ErrorReport) -> str:
        return preview(obj.message)


@admin.register(LogEntry)
class LogEntryAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "level", "message_preview", "created_at")
    list_filter = ("level", "created_at")
    search_fields = ("client__client_id", "message")
    readonly_fields = ("created_at",)

    @admin.display(description="message")
    def message_preview(self, obj: LogEntry) -> str:
        return preview(obj.message)


@admin.register(RejectedMessage)
class RejectedMessageAdmin(ReadOnlyAdmin):
    list_display = ("client_id", "message_id", "payload_type", "reason", "created_at")
    list_filter = ("payload_type", "created_at")
    search_fields = ("client_id", "message_id", "reason")
    date_hierarchy = "created_at"


@admin.register(CommandRecord)
class CommandRecordAdmin(ReadOnlyAdmin):
    list_display = ("command_id", "client_id", "kind", "outcome", "ack_success", "sent_by", "created_at",
                    "finished_at")
    list_filter = ("outcome", "kind", "wait_for_ack", "created_at")
    search_fields = ("command_id", "client_id", "sent_by")
    date_hierarchy = "created_at"
