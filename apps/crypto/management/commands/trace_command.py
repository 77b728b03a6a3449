"""`manage.py trace_command <command_id>`: the story of one command, from its CommandRecord.

Who sent it, which replica took the RPC, which replica owned the bot's stream, when it reached the
stream, and how it ended (the bot's ack, a timeout, or why it failed). Records are written by a
background journal, so a command sent a moment ago may still show an earlier stage.

Every time shown is the event's own: accepted_at when the accepting replica took the command,
delivered_at when it knew the command reached the bot's stream, finished_at when the outcome was known
(by the accepting replica, or, for an ack no caller waited for, by the replica that held the stream),
recorded_at when the journal first wrote the record. Durations come from these times only; one that
would be negative (two replicas' clocks disagree, or a clock was set back) is reported as such, never
printed as a negative number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.crypto.models import CommandOutcome, CommandRecord

# outcome -> one sentence saying where the command's story ended
SUMMARIES: Mapping[str, Callable[[CommandRecord], str]] = {
    CommandOutcome.QUEUED: lambda r: "accepted, not yet delivered (or the journal has not written it yet)",
    CommandOutcome.DELIVERED: lambda r: ("delivered, waiting for the ack" if r.wait_for_ack
                                         else "delivered; no ack was requested"),
    CommandOutcome.ACKED: lambda r: f"acked by the client: {r.ack_message or 'no message'}",
    CommandOutcome.FAILED: lambda r: f"failed: {r.ack_error or r.ack_message or 'no reason recorded'}",
    CommandOutcome.TIMED_OUT: lambda r: f"timed out: {r.ack_error or 'no ack in time'}",
}

# (label, value) rows of the text story, in the order things happen
STORY: tuple[tuple[str, Callable[[CommandRecord], object]], ...] = (
    ("command", lambda r: r.command_id),
    ("client", lambda r: r.client_id),
    ("kind", lambda r: r.kind),
    ("payload", lambda r: json.dumps(r.payload, sort_keys=True)),
    ("sent_by", lambda r: r.sent_by),
    ("wait_for_ack", lambda r: r.wait_for_ack),
    ("accepted_by", lambda r: r.accepted_by),
    ("accepted_at", lambda r: r.accepted_at),
    ("routed_to", lambda r: r.routed_to),
    ("delivered_at", lambda r: r.delivered_at),
    ("outcome", lambda r: r.outcome),
    ("ack_success", lambda r: r.ack_success),
    ("ack_message", lambda r: r.ack_message),
    ("ack_error", lambda r: r.ack_error),
    ("finished_at", lambda r: r.finished_at),
    ("recorded_at", lambda r: r.created_at),
    ("took", lambda r: took(r)),
    ("summary", lambda r: summary(r)),
)


def summary(record: CommandRecord) -> str:
    describe = SUMMARIES.get(record.outcome)
    return record.outcome if describe is None else describe(record)


def took(record: CommandRecord) -> str:
    """Seconds from acceptance to the end; '-' while it has not ended or when its acceptance time is not
    known (a record older than accepted_at, or an ack of a command no replica accepted). Never negative:
    an end stamped before the acceptance says which clocks disagree and by how much."""
    if record.finished_at is None or record.accepted_at is None:
        return "-"
    seconds = (record.finished_at - record.accepted_at).total_seconds()
    if seconds >= 0:
        return f"{seconds:.3f}s"
    if record.routed_to and record.routed_to != record.accepted_by:
        clocks = f"the clocks of {record.accepted_by or 'the accepting replica'} and {record.routed_to} disagree"
    else:
        clocks = f"the clock of {record.accepted_by or 'the accepting replica'} was set back"
    return f"unknown: finished_at is {-seconds:.3f}s before accepted_at; {clocks}"


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def story_rows(record: CommandRecord) -> list[tuple[str, object]]:
    return [(label, read(record)) for label, read in STORY]


def story_json(record: CommandRecord) -> dict[str, Any]:
    story = {label: _jsonable(value) for label, value in story_rows(record)}
    story["payload"] = record.payload  # an object, not its text
    return story


def story_text(record: CommandRecord) -> str:
    rows = story_rows(record)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {_text(value)}" for label, value in rows)


class Command(BaseCommand):
    help = "Show one command's story: sender, accepting and owning replica, delivery, ack or failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command_id", help="the command_id (from send_command, the admin or the HTTP API)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        command_id = options["command_id"].strip()
        record = CommandRecord.objects.filter(command_id=command_id).first()
        if record is None:
            raise CommandError(f"no command with id {command_id!r}: it was never accepted by a replica, or its "
                               "record has not been written yet (the journal writes in the background)")
        self.stdout.write(json.dumps(story_json(record), sort_keys=True) if options["json"] else story_text(record))
