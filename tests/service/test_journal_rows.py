"""The journal writes, call for call, the rows its writer as of 623985c wrote (journal_reference.py).

Each scenario runs twice, once through each writer, on command ids of its own; the rows must match in
every column but the id, the command_id and created_at (the time of writing).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from google.protobuf.json_format import MessageToDict

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services import bulk, records
from apps.crypto.grpc.services.bus.outcomes import Delivery
from apps.crypto.grpc.services.records import CommandJournal
from apps.crypto.protojson import message_to_dict
from apps.crypto.models import CommandRecord
from tests.service.journal_reference import ReferenceJournal

NOW = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
AT = 1796605323.25  # a Delivery's time
Flush = Callable[[], Awaitable[None]]


def commands(command_id: str) -> list[pb2.DjangoCommand]:
    """A command of every kind, and ones with nothing else set."""
    stamped = pb2.DjangoCommand(command_id=command_id, retry=True, ping=pb2.PingCommand(sequence=0))
    stamped.timestamp.FromDatetime(datetime(2026, 12, 7, 1, 2, 3, 120000))
    return [pb2.DjangoCommand(command_id=command_id, ping=pb2.PingCommand(sequence=7)), stamped,
            pb2.DjangoCommand(command_id=command_id, pause=pb2.PauseClientCommand(reason="maintenance é")),
            pb2.DjangoCommand(command_id=command_id, resume=pb2.ResumeClientCommand()),
            pb2.DjangoCommand(command_id=command_id, sync_wallets=pb2.SyncWalletsCommand(symbols=["BTC", "ETH"])),
            pb2.DjangoCommand(command_id=command_id, sync_wallets=pb2.SyncWalletsCommand()),
            pb2.DjangoCommand(command_id=command_id, request_status=pb2.RequestStatusCommand()),
            pb2.DjangoCommand(command_id=command_id, receipt=pb2.MessageReceipt(message_ids=["m1", "m2"])),
            pb2.DjangoCommand(command_id=command_id),
            pb2.DjangoCommand(command_id=command_id, timestamp=stamped.timestamp)]


def ack(command_id: str, success: bool = True, **fields: Any) -> common_pb2.CommandAck:
    return common_pb2.CommandAck(command_id=command_id, success=success, **fields)


async def executed(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    """ExecuteCommandSync: all three in one write, or split over writes as the flush timer falls."""
    j.accepted("bot-r", commands(c)[variant % 10], "operator:x", "r1", True)
    if variant % 3 == 1:
        await flush()
    j.delivery(c, Delivery(True, routed_to="r2", at=AT))
    if variant % 3 == 2:
        await flush()
    j.outcome(ack(c, message="pong"), timed_out=False)


async def sent_no_wait(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    """SendCommandToClient: accepted and delivered only (the delivered-only upsert), maybe split."""
    j.accepted("bot-r", commands(c)[variant % 10], "operator:x", "r1", False)
    if variant % 2:
        await flush()
    j.delivery(c, Delivery(True, routed_to="r1", at=AT))


async def undeliverable(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    j.accepted("bot-r", commands(c)[0], "operator:x", "r1", True)
    j.delivery(c, Delivery(False, error="client not connected", at=AT))
    j.outcome(ack(c, False, error="client not connected"), timed_out=False)


async def timed_out_then_late(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    j.accepted("bot-r", commands(c)[2], "operator:x", "r1", True)
    j.delivery(c, Delivery(True, routed_to="r2", at=AT))
    j.outcome(ack(c, False, error="no ack within 5s"), timed_out=True)
    if variant:
        await flush()
    j.late(ack(c, message="done late"))


async def delivery_after_outcome(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    """A delivery note never steps back from a final outcome, in one write or across writes."""
    j.accepted("bot-r", commands(c)[4], "operator:x", "r1", True)
    j.outcome(ack(c, message="ok"), timed_out=False)
    if variant:
        await flush()
    j.delivery(c, Delivery(True, routed_to="r3", at=AT))


async def delivery_of_a_stored_outcome(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    await CommandRecord.objects.acreate(command_id=c, client_id="bot-r", outcome="acked" if variant else "queued")
    j.delivery(c, Delivery(True, routed_to="r2", at=AT))


async def only_an_outcome(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    (j.late if variant else lambda a: j.outcome(a, timed_out=False))(ack(c, message="orphan"))


async def broadcast(j: CommandJournal, c: str, flush: Flush, variant: int) -> None:
    command = MessageToDict(commands(c)[0], preserving_proto_field_name=True)
    payload = {"kind": "ping", "command": command}
    j.broadcast_copy("bot-r", payload, ack(f"{c}:bot-r", variant == 0, error="" if variant == 0 else "x"),
                     sent_by="operator:x", replica="r1", routed_to="r2", accepted_at=NOW, timed_out=variant == 2)
    j.broadcast(c, {"client_type": "miner"}, payload, {"targeted": 1, "acked": int(variant == 0),
                                                       "failed": int(variant != 0), "ending": "finished"},
                sent_by="operator:x", replica="r1", accepted_at=NOW, finished_at=NOW + timedelta(seconds=1))


SCENARIOS = [(executed, 10), (sent_no_wait, 4), (undeliverable, 1), (timed_out_then_late, 2),
             (delivery_after_outcome, 2), (delivery_of_a_stored_outcome, 2), (only_an_outcome, 2), (broadcast, 3)]


async def run(journal: CommandJournal, tag: str) -> dict[str, dict[str, Any]]:
    """Every scenario's rows, keyed by scenario and variant, with this run's tag taken out of the ids."""
    ids = {f"{s.__name__}.{v}": f"{tag}-{s.__name__}-{v}" for s, n in SCENARIOS for v in range(n)}
    for scenario, n in SCENARIOS:
        for variant in range(n):
            await scenario(journal, ids[f"{scenario.__name__}.{variant}"], journal.flush, variant)
    await journal.close()
    rows = {}
    async for row in CommandRecord.objects.filter(command_id__startswith=f"{tag}-").values():
        assert row.pop("created_at") is not None
        row.pop("id")
        rows[row.pop("command_id").removeprefix(f"{tag}-")] = _untagged(row, tag)
    return rows


def _untagged(value: Any, tag: str) -> Any:
    if isinstance(value, str):
        return value.replace(f"{tag}-", "")
    if isinstance(value, dict):
        return {k: _untagged(v, tag) for k, v in value.items()}
    if isinstance(value, list):
        return [_untagged(v, tag) for v in value]
    return value


async def test_the_journal_writes_the_rows_the_reference_writer_wrote(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(records, "datetime", SimpleNamespace(now=lambda tz=None: NOW,
                                                             fromtimestamp=datetime.fromtimestamp))
    tag = uuid.uuid4().hex[:8]
    expected = await run(ReferenceJournal(), f"ref{tag}")
    written = await run(CommandJournal(), f"new{tag}")
    assert len(expected) == 29 and written.keys() == expected.keys()
    for key, row in expected.items():
        assert written[key] == row, key
    assert {row["outcome"] for row in written.values()} == {"acked", "delivered", "failed", "late", "timed_out"}


def test_journal_payload_is_message_to_dict():
    """The payload column is protojson's conversion (shared with Centrifugo's envelopes), MessageToDict's dict."""
    for command in commands(uuid.uuid4().hex):
        assert message_to_dict(command) == MessageToDict(command, preserving_proto_field_name=True)
    status = ack("c1", current_status=common_pb2.ClientStatus.Value(common_pb2.ClientStatus.keys()[-1]))
    assert message_to_dict(status) == MessageToDict(status, preserving_proto_field_name=True)


@pytest.mark.django_db(transaction=True)
def test_bulk_converts_datetimes_as_the_field_does():
    field = CommandRecord._meta.get_field("finished_at")
    convert = bulk._converter(field, bulk._connection())
    for value in (NOW, NOW.astimezone(timezone(timedelta(hours=5, minutes=30))), NOW.replace(microsecond=0),
                  datetime.fromtimestamp(AT, UTC), None):
        assert convert(value) == field.get_db_prep_save(value, connection), value


@pytest.mark.django_db(transaction=True)
def test_bulk_columns_are_what_the_fields_make_of_each_value():
    """A column of plain values is passed as it is; any other value goes through its converter."""
    columns = {"client_id": (("bot-a", "bot-b"), ("bot-a", 7), ("bot-a", None)),
               "ack_success": ((True, None), (True, False), (1, None)),
               "wait_for_ack": ((True, False), (True, None)),
               "finished_at": ((NOW, None), (NOW, NOW.astimezone(timezone(timedelta(hours=-3)))))}
    for name, cases in columns.items():
        field = CommandRecord._meta.get_field(name)
        for values in cases:
            try:
                expected = [field.get_db_prep_save(v, connection) for v in values]
            except Exception as exc:  # what the field refuses, the column refuses too
                with pytest.raises(type(exc)):
                    list(bulk._column(field, bulk._connection(), values))
                continue
            assert list(bulk._column(field, bulk._connection(), values)) == expected, (name, values)
