"""validate_command / validate_request: every bound refuses with InvalidRequest naming the field and the limit."""

from __future__ import annotations

from tests.service.test_fuzz import varint

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.errors import InvalidRequest, status_for
from apps.crypto.grpc.services.proto.validation import (
    MAX_COMMAND_BYTES,
    MAX_SYMBOL_CHARS,
    MAX_SYMBOLS,
    MAX_TEXT_CHARS,
    validate_client_id,
    validate_command,
    validate_request,
)


def pause(reason: str = "maintenance", **fields) -> pb2.DjangoCommand:
    return pb2.DjangoCommand(pause=pb2.PauseClientCommand(reason=reason), **fields)


def sync(symbols: list[str]) -> pb2.DjangoCommand:
    return pb2.DjangoCommand(sync_wallets=pb2.SyncWalletsCommand(symbols=symbols))


def refused(command: pb2.DjangoCommand, **kwargs) -> str:
    with pytest.raises(InvalidRequest) as caught:
        validate_command(command, **kwargs)
    return str(caught.value)


def test_the_text_bound_is_the_configured_default_and_the_model_limit():
    from apps.crypto.models import MAX_TEXT
    from apps.crypto.grpc.services.config import CryptoStreamingConfig

    assert MAX_TEXT_CHARS == CryptoStreamingConfig().max_text_chars == MAX_TEXT == 10_000


@pytest.mark.parametrize("command", [
    pb2.DjangoCommand(ping=pb2.PingCommand(sequence=-7)),
    pause(""),
    pause("x" * MAX_TEXT_CHARS, command_id="c" * 128),
    pb2.DjangoCommand(resume=pb2.ResumeClientCommand(message="é" * MAX_TEXT_CHARS)),
    sync([]),
    sync(["B" * MAX_SYMBOL_CHARS] * MAX_SYMBOLS),
    sync(["€" * MAX_SYMBOL_CHARS] * MAX_SYMBOLS),  # the largest command the field bounds allow
    pb2.DjangoCommand(request_status=pb2.RequestStatusCommand(include_stats=True)),
    pause(timestamp=Timestamp(seconds=253_402_300_799, nanos=999_999_999)),
    pause(timestamp=Timestamp(seconds=-62_135_596_800)),
], ids=["ping", "empty-reason", "longest-id-and-reason", "longest-resume-utf8", "sync-all", "most-symbols",
        "most-symbols-utf8", "request-status", "latest-timestamp", "earliest-timestamp"])
def test_commands_within_the_bounds_pass(command):
    assert validate_command(command) is None


def test_command_id_over_128_characters_is_refused():
    assert validate_command(pause(command_id="c" * 128)) is None
    assert refused(pause(command_id="c" * 129)) == "command_id too long: 129 characters, max 128"


def test_a_1_mb_pause_reason_is_refused_naming_the_field():
    assert refused(pause("r" * 1_000_000)) == "pause.reason too long: 1000000 characters, max 10000"


def test_resume_message_over_the_limit_is_refused():
    assert refused(pb2.DjangoCommand(resume=pb2.ResumeClientCommand(message="m" * (MAX_TEXT_CHARS + 1)))) == (
        "resume.message too long: 10001 characters, max 10000")


def test_the_text_limit_follows_the_replica_config():
    assert refused(pause("r" * 101), max_text_chars=100) == "pause.reason too long: 101 characters, max 100"
    assert validate_command(pause("r" * 100), max_text_chars=100) is None


def test_too_many_symbols_are_refused():
    assert refused(sync(["BTC"] * (MAX_SYMBOLS + 1))) == "sync_wallets.symbols: too many symbols: 1001, max 1000"


def test_an_oversize_symbol_is_refused_with_its_index():
    assert refused(sync(["BTC", "S" * 33])) == "sync_wallets.symbols[1] too long: 33 characters, max 32"


def test_an_empty_symbol_is_refused():
    assert "sync_wallets.symbols[0] is empty" in refused(sync(["", "BTC"]))


@pytest.mark.parametrize("command, field", [
    (pause("bad\x00reason"), "pause.reason"),
    (pause(command_id="id\x00"), "command_id"),
    (pb2.DjangoCommand(resume=pb2.ResumeClientCommand(message="\x00")), "resume.message"),
    (sync(["BTC\x00"]), "sync_wallets.symbols[0]"),
])
def test_nul_characters_are_refused(command, field):
    assert refused(command) == f"{field} contains a NUL character"


@pytest.mark.parametrize("timestamp, shown", [
    (Timestamp(seconds=2**62), "seconds=4611686018427387904"),
    (Timestamp(seconds=-62_135_596_801), "seconds=-62135596801"),
    (Timestamp(seconds=1, nanos=-1), "nanos=-1"),
    (Timestamp(seconds=1, nanos=1_000_000_000), "nanos=1000000000"),
])
def test_timestamps_protobuf_cannot_render_are_refused(timestamp, shown):
    message = refused(pause(timestamp=timestamp))
    assert message.startswith("command.timestamp out of range") and shown in message


def test_a_command_without_a_kind_is_refused():
    assert refused(pb2.DjangoCommand(command_id="x")).startswith("command must set one of: ping, pause")


def test_unknown_fields_cannot_carry_megabytes():
    unknown_field = _varint(1000 << 3 | 2) + _varint(MAX_COMMAND_BYTES) + b"u" * MAX_COMMAND_BYTES  # field 1000
    padded = pause("ok").SerializeToString() + unknown_field
    command = pb2.DjangoCommand.FromString(padded)
    assert command.pause.reason == "ok"
    assert refused(command).startswith(f"command too large: {len(padded)} bytes serialized, max {MAX_COMMAND_BYTES}")


def test_validate_request_checks_the_client_id_too():
    ok = pb2.SendCommandRequest(client_id="b" * 128, command=pause())
    assert validate_request(ok) is None
    for request, message in [
        (pb2.SendCommandRequest(client_id="b" * 10_000, command=pause()),
         "client_id too long: 10000 characters, max 128"),
        (pb2.SendCommandRequest(command=pause()), "client_id is required"),
        (pb2.SendCommandRequest(client_id="bot"), "command must set one of"),
        (pb2.SendCommandRequest(client_id="bot", command=pause("r" * 10_001)), "pause.reason too long"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            validate_request(request)


def test_validate_client_id_refuses_nul():
    with pytest.raises(InvalidRequest, match="client_id contains a NUL character"):
        validate_client_id("bot\x00")


def test_refusals_map_to_invalid_argument():
    with pytest.raises(InvalidRequest) as caught:
        validate_command(pause("r" * 20_000))
    assert status_for(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, str(caught.value))


_varint = varint  # one protobuf varint encoder for the suite (tests/service/test_fuzz.py)
