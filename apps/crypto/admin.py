"""Operator views of what bots reported and what they were sent.

What bots report (clients, wallets, transactions, status changes, errors, logs, rejected messages) and
the command history are viewable, never editable: operators act on bots through commands (the
client list's actions), not by rewriting what a bot said. A client may be deleted (a retired bot).
API keys are only ever revoked here; keys are issued by the management command that can show
the raw key once, so the admin never adds one and never lets the hash be edited.

The client list is the operators' live console: live state and replica per row (asked of the replicas
for that page's rows only), filters and sorting by live state, replica and client type, a per-replica
summary (streams, commands/s, last beat) and a reload every LIVE_REFRESH_SECONDS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR
from django.db.models import Case, CharField, Model, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from unfold.admin import ModelAdmin, TabularInline
from unfold.views import ChangeList

from .admin_actions import COMMAND_ACTION_FUNCTIONS
from .live import CONNECTED, DISCONNECTED, UNKNOWN, LiveView, ReplicaSummary, fetch_live_view, fetch_replica_names
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


class ReportedAdmin(ModelAdmin):
    """What a bot reported: view, search and delete only; nobody adds or edits it here."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ReportedAdmin):
    """Audit data: view and search only."""

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
FLEET_VIEW_ATTR = "_crypto_fleet_view"  # the request's full cluster view, when a live filter or sort needs it
LIVE_REFRESH_SECONDS = 10  # the client list reloads itself this often (unless rows are selected)
# A live filter or sort needs every connected client_id (a full listing, and as many SQL parameters);
# above this many streams (the replicas' leases say how many) it is not applied and the page says why.
LIVE_FILTER_MAX_STREAMS = 10_000
LIVE_COLUMNS = frozenset({"live_state", "live_replica"})  # list columns sorted by the fleet's view
CLIENT_FIELDS = ("client_id", "name", "client_type", "version", "api_url", "status", "status_reported_at",
                 "first_seen", "last_seen")  # all reported by the bot (or stamped when it reports)


def fleet_view(request: HttpRequest) -> LiveView:
    """Every connected client, read once per request, for live filters and sorting (bounded, see above)."""
    view = getattr(request, FLEET_VIEW_ATTR, None)
    if view is None:
        view = fetch_live_view(max_streams=LIVE_FILTER_MAX_STREAMS)
        setattr(request, FLEET_VIEW_ATTR, view)
    return view


def clients_on(view: LiveView, replica: str | None = None) -> list[str]:
    """Connected client_ids (on `replica` only, when given)."""
    return [cid for cid, state in view.states.items() if replica is None or state.replica == replica]


class LiveStateFilter(admin.SimpleListFilter):
    """connected / disconnected right now, from the cluster view (not the bot-reported status)."""

    title = "live state"
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(CONNECTED, "connected"), (DISCONNECTED, "disconnected")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Client]) -> QuerySet[Client] | None:
        if self.value() not in (CONNECTED, DISCONNECTED):
            return None
        view = fleet_view(request)
        if not view.available:
            return queryset.none()  # nobody is known to be connected, nor to be disconnected
        connected = clients_on(view)
        if self.value() == CONNECTED:
            return queryset.filter(client_id__in=connected)
        return queryset.exclude(client_id__in=connected)


class ReplicaFilter(admin.SimpleListFilter):
    """The clients connected to one replica right now; the choices are the live replicas' leases."""

    title = "replica"
    parameter_name = "replica"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        names = fetch_replica_names()
        chosen = request.GET.get(self.parameter_name)
        if chosen and chosen not in names:
            names.append(chosen)  # gone meanwhile: still shown as chosen
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Client]) -> QuerySet[Client] | None:
        if not self.value():
            return None
        view = fleet_view(request)
        if not view.available:
            return queryset.none()
        return queryset.filter(client_id__in=clients_on(view, self.value()))


def annotate_live(queryset: QuerySet[Client], view: LiveView) -> QuerySet[Client]:
    """live_state_order / live_replica_order: what the live columns sort by."""
    if not view.available:
        return queryset.annotate(live_state_order=Value(UNKNOWN), live_replica_order=Value(""))
    by_replica: dict[str, list[str]] = {}
    for client_id, state in view.states.items():
        by_replica.setdefault(state.replica, []).append(client_id)
    return queryset.annotate(
        live_state_order=Case(When(client_id__in=clients_on(view), then=Value(CONNECTED)),
                              default=Value(DISCONNECTED), output_field=CharField()),
        live_replica_order=Case(*(When(client_id__in=ids, then=Value(replica))
                                  for replica, ids in sorted(by_replica.items())),
                                default=Value(""), output_field=CharField()))


class LiveChangeList(ChangeList):
    """Reads the cluster view once per changelist page and hands it to every row and to the summary.

    The page asks the replicas about its own rows only; when a live filter or sort already read the
    whole fleet's view for this request, that one is used instead (no second round trip)."""

    live_view: LiveView
    fleet_note: str = ""  # why a live filter or sort could not be applied

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        fleet = getattr(request, FLEET_VIEW_ATTR, None)
        if fleet is not None and not fleet.available:
            self.fleet_note = fleet.reason
        if fleet is not None and fleet.available:
            view = fleet
        else:  # no rows still asks (about nobody): the summary needs the replicas' answers
            view = fetch_live_view(client_ids=[row.client_id for row in self.result_list])
        self.live_view = view
        for row in self.result_list:
            setattr(row, LIVE_VIEW_ATTR, view)

    def replica_summary(self) -> list[tuple[ReplicaSummary, str]]:
        """Each live replica with the link that filters the list to its clients."""
        return [(summary, self.get_query_string({"replica": summary.replica}, [PAGE_VAR]))
                for summary in self.live_view.replicas]

    def summary_totals(self) -> dict[str, Any]:
        replicas = self.live_view.replicas
        rates = [r.commands_per_s for r in replicas if r.commands_per_s is not None]
        return {"replicas": len(replicas), "streams": sum(r.streams for r in replicas),
                "commands_per_s": sum(rates) if rates else None}


def render_live(view: LiveView, client_id: str) -> SafeString:
    """connected (heartbeat age) / disconnected / unknown (with why as a tooltip)."""
    state = view.state(client_id)
    if state.state != CONNECTED or state.last_heartbeat is None:
        return format_html('<span class="live-state" data-state="{}" title="{}">{}</span>', state.state,
                           view.reason, state.state)
    age = int((datetime.now(UTC) - state.last_heartbeat).total_seconds())
    return format_html('<span class="live-state" data-state="connected" title="connected since {}">connected</span>'
                       '<br>heartbeat {}s ago',
                       state.connected_at.isoformat() if state.connected_at else "-", max(age, 0))


def row_view(obj: Client) -> LiveView:
    """From the page's cluster view on the changelist; one fresh read (for all its fields) on a client's page."""
    view = getattr(obj, LIVE_VIEW_ATTR, None)
    if view is None:
        view = fetch_live_view(client_ids=[obj.client_id])
        setattr(obj, LIVE_VIEW_ATTR, view)
    return view


@admin.register(Client)
class ClientAdmin(ModelAdmin):
    list_display = ("client_id", "name", "client_type", "version", "status", "live_state", "live_replica",
                    "last_seen", "first_seen")
    list_filter = (LiveStateFilter, ReplicaFilter, "client_type", "status", "last_seen")
    search_fields = ("client_id", "name")
    fields = (*CLIENT_FIELDS, "live_state", "live_replica", "related")
    readonly_fields = fields
    inlines = (WalletInline,)
    actions = COMMAND_ACTION_FUNCTIONS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LiveChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a client exists once its bot registered

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """A client's record is what its bot reported: never edited. The model-level permission stays:
        it is what sending commands (the list's actions) requires."""
        return obj is None and super().has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"live_refresh_seconds": LIVE_REFRESH_SECONDS, **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Client]:
        queryset = super().get_queryset(request)
        if self._sorted_live(request):
            queryset = annotate_live(queryset, fleet_view(request))
        return queryset

    def _sorted_live(self, request: HttpRequest) -> bool:
        """The client list is sorted by a live column (`o` holds list column indexes, the checkbox first)."""
        match = request.resolver_match
        order = request.GET.get(ORDER_VAR, "")
        if not order or match is None or match.url_name != "crypto_client_changelist":
            return False
        columns = list(self.get_list_display(request))
        if self.get_actions(request):
            columns = ["action_checkbox", *columns]
        indexes = (part.rpartition("-")[2] for part in order.split("."))
        return any(i.isdigit() and int(i) < len(columns) and columns[int(i)] in LIVE_COLUMNS for i in indexes)

    @admin.display(description="live state", ordering="live_state_order")
    def live_state(self, obj: Client) -> SafeString:
        if obj.pk is None:
            return format_html("{}", "-")
        return render_live(row_view(obj), obj.client_id)

    @admin.display(description="replica", ordering="live_replica_order")
    def live_replica(self, obj: Client) -> SafeString:
        """The replica holding the stream, linked to the list of that replica's clients."""
        if obj.pk is None:
            return format_html("{}", "-")
        state = row_view(obj).state(obj.client_id)
        if not state.replica:
            return format_html("{}", "-")
        link = reverse("admin:crypto_client_changelist") + "?" + urlencode({"replica": state.replica})
        return format_html('<a class="live-replica" href="{}">{}</a>', link, state.replica)

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


class ClientOwnedAdmin(ReportedAdmin):
    """Rows a bot reported, hanging off its Client, searchable by client_id. Deletable: deleting a retired
    client deletes them (Django refuses that when their own deletion is not permitted)."""

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
    date_hierarchy = None


@admin.register(Transaction)
class TransactionAdmin(ClientOwnedAdmin):
    list_display = ("transaction_id", "client_ref", "type", "symbol", "amount", "status", "created_at")
    list_filter = ("type", "symbol", "status", "created_at")
    search_fields = ("transaction_id", "client__client_id")


@admin.register(StatusChange)
class StatusChangeAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "status", "details_preview", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("client__client_id", "details")

    @admin.display(description="details")
    def details_preview(self, obj: StatusChange) -> str:
        return preview(obj.details)


@admin.register(ErrorReport)
class ErrorReportAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "severity", "message_preview", "created_at")
    list_filter = ("severity", "created_at")
    search_fields = ("client__client_id", "message")

    @admin.display(description="message")
    def message_preview(self, obj: ErrorReport) -> str:
        return preview(obj.message)


@admin.register(LogEntry)
class LogEntryAdmin(ClientOwnedAdmin):
    list_display = ("client_ref", "level", "message_preview", "created_at")
    list_filter = ("level", "created_at")
    search_fields = ("client__client_id", "message")

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
