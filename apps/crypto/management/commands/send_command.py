"""`manage.py send_command <client_id> <kind>`: send one command to a connected bot through the gRPC server.

Without --wait the command is delivered (SendCommandToClient); with --wait the bot's CommandAck is
awaited (ExecuteCommandSync). Any failure, including a negative ack, exits non-zero.

`manage.py send_command --all | --client-type T | --clients a,b,c <kind>`: a fleet command
(BroadcastCommand): one call, every targeted bot's ack awaited (up to --timeout), a progress line while
the results come in, then a table of them and the summary; exits non-zero when any bot failed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.auth import validate_client_id
from apps.crypto.grpc.services.commands import (
    COMMAND_BUILDERS,
    CommandClientError,
    CommandResult,
    build_command,
    builder_params,
    connect_sync,
    selector,
)

# argparse dest -> the flag an operator typed, for error messages
COMMAND_OPTIONS: Mapping[str, str] = {
    "reason": "--reason",
    "message": "--message",
    "sequence": "--sequence",
    "symbols": "--symbols",
    "include_stats": "--include-stats",
}


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def split_symbols(values: list[str] | None) -> list[str] | None:
    """--symbols BTC ETH and --symbols BTC,ETH mean the same."""
    if values is None:
        return None
    return [symbol.strip() for value in values for symbol in value.split(",") if symbol.strip()]


def command_params(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The builder arguments among the given options; an option that does not apply is an error."""
    given = {dest: options[dest] for dest in COMMAND_OPTIONS if options.get(dest) is not None}
    accepted = set(builder_params(kind))
    misplaced = [COMMAND_OPTIONS[dest] for dest in given if dest not in accepted]
    if misplaced:
        raise CommandError(f"{', '.join(misplaced)} does not apply to {kind}")
    return given


def _field(name: str, value: object) -> str:
    """Free text is quoted (it may hold spaces); names, ids and flags are not."""
    return f"{name}={value!r}" if isinstance(value, str) and name in {"message", "error"} else f"{name}={value}"


def render_ack(ack: common_pb2.CommandAck, command: pb2.DjangoCommand) -> str:
    status = common_pb2.ClientStatus.Name(ack.current_status)
    return " ".join(["ack", _field("command_id", ack.command_id), _field("success", ack.success),
                     _field("status", status), _field("message", ack.message), _field("error", ack.error)])


def render_sent(response: pb2.SendCommandResponse, command: pb2.DjangoCommand) -> str:
    outcome = "sent" if response.success else "not_sent"
    command_id = response.command_id or command.command_id  # the server names an id-less command
    return " ".join([outcome, _field("command_id", command_id), _field("success", response.success),
                     _field("error", response.error)])


def ack_failure(ack: common_pb2.CommandAck) -> str | None:
    return None if ack.success else f"the client answered with a failure: {ack.error or ack.message or 'no reason'}"


def sent_failure(response: pb2.SendCommandResponse) -> str | None:
    return None if response.success else f"command not delivered: {response.error or 'no reason given'}"


# result type -> (render, failure reason or None)
_OUTCOMES: Mapping[type, tuple[Callable[[Any, pb2.DjangoCommand], str], Callable[[Any], str | None]]] = {
    common_pb2.CommandAck: (render_ack, ack_failure),
    pb2.SendCommandResponse: (render_sent, sent_failure),
}


def fleet_selector(options: Mapping[str, Any]) -> pb2.ClientSelector | None:
    """The ClientSelector of --all / --client-type / --clients, or None for a one-bot command."""
    if options.get("all_connected"):
        return selector(all_connected=True)
    if options.get("client_type"):
        return selector(client_type=options["client_type"])
    if options.get("clients") is not None:
        ids = [c.strip() for c in options["clients"].split(",") if c.strip()]
        if not ids:
            raise CommandError("--clients needs at least one client_id")
        return selector(ids)
    return None


def progress_bar(done: int, width: int = 20) -> str:
    """A spinner-like bar (the total is known only at the end, from the summary)."""
    filled = done % (width + 1)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def render_table(results: list[pb2.BroadcastClientResult]) -> str:
    """One row per bot: client_id, ok/FAILED, the ack's message or error."""
    if not results:
        return "no bot targeted"
    width = max(len("client_id"), *(len(r.client_id) for r in results))
    rows = [f"{'client_id':<{width}}  result  detail"]
    for r in sorted(results, key=lambda r: (r.ack.success, r.client_id)):
        rows.append(f"{r.client_id:<{width}}  {'ok' if r.ack.success else 'FAILED':<6}  "
                    f"{(r.ack.message if r.ack.success else r.ack.error)[:120]}")
    return "\n".join(rows)


class Command(BaseCommand):
    help = "Send a command (pause, resume, ping, sync_wallets, request_status) to a connected bot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id", nargs="?", help="the bot's client_id (not with --all/--client-type/--clients)")
        parser.add_argument("kind", choices=list(COMMAND_BUILDERS), help="command to send")
        parser.add_argument("--wait", action="store_true", help="wait for the bot's CommandAck (ExecuteCommandSync)")
        parser.add_argument("--timeout", type=positive_float, default=None,
                            help="seconds to wait for delivery, or with --wait for the ack")
        parser.add_argument("--reason", help="pause: why the bot is paused")
        parser.add_argument("--message", help="resume: message passed to the bot")
        parser.add_argument("--sequence", type=int, help="ping: sequence number echoed by the bot")
        parser.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="sync_wallets: symbols (default: all)")
        parser.add_argument("--include-stats", action="store_const", const=True, dest="include_stats",
                            help="request_status: ask for statistics too")
        fleet = parser.add_mutually_exclusive_group()
        fleet.add_argument("--all", action="store_true", dest="all_connected",
                           help="a fleet command to every connected bot (BroadcastCommand)")
        fleet.add_argument("--client-type", metavar="T", help="a fleet command to the bots registered with this type")
        fleet.add_argument("--clients", metavar="A,B,C", help="a fleet command to these bots (comma-separated)")
        parser.add_argument("--target", help="gRPC server host:port (default: CRYPTO_GRPC_TARGET)")
        parser.add_argument("--token", help="operator token (default: CRYPTO_OPERATOR_TOKEN or CRYPTO_OPERATOR_TOKENS)")

    def handle(self, *args: Any, **options: Any) -> None:
        client_id, kind = options["client_id"], options["kind"]
        fleet = fleet_selector(options)
        if fleet is not None:
            if client_id is not None:
                raise CommandError("give either a client_id or one of --all, --client-type, --clients")
            self._broadcast(fleet, kind, options)
            return
        if client_id is None:
            raise CommandError("a client_id is required (or one of --all, --client-type, --clients)")
        command = self._build(client_id, kind, options)
        result = self._deliver(client_id, command, options)
        render, failure = _OUTCOMES[type(result)]
        self.stdout.write(render(result, command))
        reason = failure(result)
        if reason is not None:
            raise CommandError(f"{kind} to {client_id}: {reason}")

    def _broadcast(self, fleet: pb2.ClientSelector, kind: str, options: dict[str, Any]) -> None:
        options["symbols"] = split_symbols(options.get("symbols"))
        try:
            command = build_command(kind, **command_params(kind, options))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        counts = {"acked": 0, "failed": 0}

        def progress(result: pb2.BroadcastClientResult) -> None:
            counts["acked" if result.ack.success else "failed"] += 1
            done = counts["acked"] + counts["failed"]
            self.stderr.write(f"\r{progress_bar(done)} {done} results: {counts['acked']} acked, "
                              f"{counts['failed']} failed", ending="")

        try:
            with connect_sync(options.get("target"), options.get("token")) as client:
                outcome = client.run(lambda c: c.broadcast(fleet, command, options.get("timeout"), on_result=progress))
        except CommandClientError as exc:
            raise CommandError(f"{kind} to the fleet failed: {exc}") from None
        self.stderr.write("")
        self.stdout.write(render_table(outcome.results))
        summary = outcome.summary
        if summary is None:
            raise CommandError(f"{kind} to the fleet: the server ended the call without a summary")
        self.stdout.write(f"broadcast_id={summary.broadcast_id} targeted={summary.targeted} acked={summary.acked} "
                          f"failed={summary.failed}")
        if summary.failed:
            raise CommandError(f"{kind} to the fleet: {summary.failed} of {summary.targeted} bots failed")

    def _build(self, client_id: str, kind: str, options: dict[str, Any]) -> pb2.DjangoCommand:
        options["symbols"] = split_symbols(options.get("symbols"))
        try:
            validate_client_id(client_id)
            return build_command(kind, **command_params(kind, options))
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def _deliver(self, client_id: str, command: pb2.DjangoCommand, options: dict[str, Any]) -> CommandResult:
        try:
            with connect_sync(options.get("target"), options.get("token")) as client:
                return client.dispatch(client_id, command, wait=options["wait"], timeout=options.get("timeout"))
        except CommandClientError as exc:
            raise CommandError(f"{options['kind']} to {client_id} failed: {exc}") from None
