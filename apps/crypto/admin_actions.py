"""Admin actions that send commands to the selected clients, and how their outcomes are shown.

An action makes ONE BroadcastCommand (apps.crypto.operator_commands.run_broadcast, to CRYPTO_GRPC_TARGET
with the operator token) whose selector names the selected clients; it waits at most ADMIN_ACK_TIMEOUT
for all their acks. The operator sees one message per client (its ack or why it failed) and the
broadcast's summary line. Sending needs the change permission on clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.crypto.grpc.services.commands import CommandClientError, selector
from apps.crypto.models import Client
from apps.crypto.operator_commands import (
    BroadcastReply,
    CommandReply,
    CommandRequest,
    CommandResult,
    run_broadcast_sync,
)

logger = logging.getLogger(__name__)

ADMIN_ACK_TIMEOUT = 10.0  # seconds the selected bots get to ack; one broadcast asks them all at once
MAX_TARGETS = 100  # clients one action may address; more is refused rather than left half done

ParamsFor = Callable[[str], dict[str, Any]]  # acting username -> the command's parameters

# kind -> (action label, parameters)
COMMAND_ACTIONS: Mapping[str, tuple[str, ParamsFor]] = {
    "pause": ("Pause selected clients", lambda user: {"reason": f"paused from the admin by {user}"}),
    "resume": ("Resume selected clients", lambda user: {"message": f"resumed from the admin by {user}"}),
    "ping": ("Ping selected clients", lambda user: {}),
    "sync_wallets": ("Sync wallets of selected clients", lambda user: {}),
    "request_status": ("Request status of selected clients", lambda user: {"include_stats": True}),
}


def _acked(reply: CommandReply) -> tuple[int, str]:
    return messages.SUCCESS, (f"{reply.client_id}: {reply.kind} acked: {reply.message or 'no message'} "
                              f"(status {reply.current_status}, command {reply.command_id})")


def _refused(reply: CommandReply) -> tuple[int, str]:
    return messages.ERROR, (f"{reply.client_id}: {reply.kind} failed: {reply.error or reply.message or 'no reason'} "
                            f"(command {reply.command_id})")


def describe(request: CommandRequest, result: CommandResult) -> tuple[int, str]:
    """(message level, text) for one client's outcome."""
    if isinstance(result, CommandClientError):
        return messages.ERROR, f"{request.client_id}: {request.kind} not sent: {result}"
    return (_acked if result.success else _refused)(result)


def summary(reply: BroadcastReply) -> tuple[int, str]:
    """(message level, text) for the broadcast as a whole."""
    level = messages.SUCCESS if reply.failed == 0 and reply.targeted else messages.WARNING
    return level, (f"{reply.kind} broadcast {reply.broadcast_id}: targeted {reply.targeted}, acked {reply.acked}, "
                   f"failed {reply.failed}")


def outcomes(client_ids: list[str], kind: str, reply: BroadcastReply | CommandClientError) -> list[tuple[int, str]]:
    """One (level, text) per selected client in selection order, then the summary line when the broadcast ran."""
    if isinstance(reply, CommandClientError):
        return [describe(CommandRequest(client_id, kind), reply) for client_id in client_ids]
    by_client = {result.client_id: result for result in reply.replies}
    shown = [describe(CommandRequest(client_id, kind), by_client[client_id]) if client_id in by_client else
             (messages.ERROR, f"{client_id}: {kind} failed: no result in broadcast {reply.broadcast_id}")
             for client_id in client_ids]
    return [*shown, summary(reply)]


def send_to_selected(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Client],
                     kind: str) -> None:
    """Send `kind` to every selected client in one broadcast and report each outcome as an admin message."""
    client_ids = list(queryset.order_by("client_id").values_list("client_id", flat=True)[:MAX_TARGETS + 1])
    if len(client_ids) > MAX_TARGETS:
        model_admin.message_user(request, f"select at most {MAX_TARGETS} clients per action", messages.ERROR)
        return
    user = request.user.get_username()
    params = COMMAND_ACTIONS[kind][1](user)
    reply: BroadcastReply | CommandClientError
    try:
        reply = run_broadcast_sync(kind, params, selector(client_ids), timeout=ADMIN_ACK_TIMEOUT)
    except CommandClientError as exc:
        reply = exc
    logger.info("admin.broadcast user=%s kind=%s clients=%d broadcast_id=%s acked=%s failed=%s", user, kind,
                len(client_ids), getattr(reply, "broadcast_id", ""), getattr(reply, "acked", 0),
                getattr(reply, "failed", len(client_ids)))
    for level, text in outcomes(client_ids, kind, reply):
        model_admin.message_user(request, text, level)


def command_action(kind: str) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Client]], None]:
    """The admin action for one command kind (named send_<kind>)."""
    label, _ = COMMAND_ACTIONS[kind]

    def action(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        send_to_selected(model_admin, request, queryset, kind)

    action.__name__ = f"send_{kind}"
    return admin.action(description=label, permissions=["change"])(action)


COMMAND_ACTION_FUNCTIONS = tuple(command_action(kind) for kind in COMMAND_ACTIONS)
