"""Command builders, the kind table, and the pure parts of the command client."""

from __future__ import annotations

import grpc
import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import (
    COMMAND_BUILDERS,
    build_command,
    build_pause,
    build_ping,
    build_request_status,
    build_resume,
    build_sync_wallets,
    builder_params,
    outgoing,
    with_command_id,
)
from apps.crypto.grpc.services.commands.base import (ack_deadline, bearer_metadata, client_error, fresh_id, named_result,
                                                     stamp)

KINDS = ["pause", "resume", "ping", "sync_wallets", "request_status"]


def test_table_covers_every_command_of_the_contract() -> None:
    """Every operator command; the oneof's receipt is the service's own message to a bot."""
    oneof = pb2.DjangoCommand.DESCRIPTOR.oneofs_by_name["command"]
    commands = sorted(field.name for field in oneof.fields if field.name != "receipt")
    assert sorted(COMMAND_BUILDERS) == commands == sorted(KINDS)


def test_an_operator_cannot_use_the_keepalive_command_id_prefix() -> None:
    from apps.crypto.grpc.services.proto.validation import InvalidRequest, validate_command

    with pytest.raises(InvalidRequest, match="prefix 'keepalive-' is the server's own"):
        validate_command(pb2.DjangoCommand(command_id="keepalive-1", pause=pb2.PauseClientCommand()))


def test_an_operator_cannot_send_a_receipt() -> None:
    from apps.crypto.grpc.services.proto.validation import InvalidRequest, validate_command

    with pytest.raises(InvalidRequest, match="command.receipt is sent by the service itself"):
        validate_command(pb2.DjangoCommand(receipt=pb2.MessageReceipt(message_ids=["m1"])))


@pytest.mark.parametrize("kind", KINDS)
def test_each_builder_sets_its_kind_with_defaults(kind: str) -> None:
    command = COMMAND_BUILDERS[kind]()
    assert isinstance(command, pb2.DjangoCommand)
    assert command.WhichOneof("command") == kind
    assert command.command_id == "" and not command.HasField("timestamp")  # stamped by the client


def test_builders_carry_their_parameters() -> None:
    assert build_pause("maintenance").pause.reason == "maintenance"
    assert build_resume("back").resume.message == "back"
    assert build_ping(7).ping.sequence == 7
    assert build_request_status(True).request_status.include_stats is True
    assert list(build_sync_wallets([" BTC", "ETH", "", "BTC"]).sync_wallets.symbols) == ["BTC", "ETH"]
    assert list(build_sync_wallets().sync_wallets.symbols) == []


@pytest.mark.parametrize("sequence", [-1, 2**31])
def test_ping_sequence_must_fit_int32(sequence: int) -> None:
    with pytest.raises(ValueError):
        build_ping(sequence)


@pytest.mark.parametrize(("kind", "params"), [
    ("pause", ("reason",)), ("resume", ("message",)), ("ping", ("sequence",)),
    ("sync_wallets", ("symbols",)), ("request_status", ("include_stats",)),
])
def test_builder_params(kind: str, params: tuple[str, ...]) -> None:
    assert builder_params(kind) == params


def test_build_command_by_name() -> None:
    assert build_command("pause", reason="r").pause.reason == "r"
    with pytest.raises(ValueError, match="unknown command kind"):
        build_command("explode")
    with pytest.raises(ValueError, match="does not take reason"):
        build_command("ping", reason="r")


def test_outgoing_is_a_stamped_copy_that_leaves_the_id_to_the_server() -> None:
    command = build_ping(1)
    before = command.SerializeToString()
    sent = outgoing(command)
    assert sent is not command and sent.HasField("timestamp") and sent.ping.sequence == 1
    assert sent.command_id == ""  # the server generates it
    assert command.SerializeToString() == before  # the caller's object is untouched
    preset = pb2.DjangoCommand(command_id="mine", ping=pb2.PingCommand())
    preset.timestamp.FromSeconds(5)
    kept = outgoing(preset)
    assert (kept.command_id, kept.timestamp.seconds) == ("mine", 5)


def test_with_command_id_gives_a_copy_with_a_fresh_id_each_time() -> None:
    command = build_ping(2)
    first, second = with_command_id(command), with_command_id(command)
    assert len(first.command_id) == 32 and len(second.command_id) == 32 and first.command_id != second.command_id
    assert command.command_id == "" and first.ping.sequence == 2
    preset = pb2.DjangoCommand(command_id="mine", ping=pb2.PingCommand())
    assert with_command_id(preset).command_id == "mine"


def test_named_result_fills_only_an_empty_id_from_what_was_sent() -> None:
    sent = pb2.DjangoCommand(command_id="mine")
    assert named_result(pb2.SendCommandResponse(success=True), sent).command_id == "mine"
    assert named_result(pb2.SendCommandResponse(command_id="server"), sent).command_id == "server"
    assert named_result(pb2.SendCommandResponse(), pb2.DjangoCommand()).command_id == ""


def test_deadline_and_metadata() -> None:
    assert ack_deadline(5.0, 0.5) == 5.5
    with pytest.raises(ValueError):
        ack_deadline(0, 0.5)
    assert bearer_metadata("t") == (("authorization", "Bearer t"),)
    assert bearer_metadata("") == ()


class FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_errors_get_a_hint_and_keep_the_server_details() -> None:
    error = client_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), "h:1", 3.0)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert "h:1" in error.details and "connection refused" in error.details
    assert str(error).startswith("UNAVAILABLE: ")
    deadline = client_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, ""), "h:1", 3.5)
    assert "3.5s" in deadline.details
    other = client_error(FakeRpcError(grpc.StatusCode.INTERNAL, "boom"), "h:1", 1.0)
    assert other.details == "boom"


def test_fresh_ids_are_uuid4_hex_and_stamps_are_now() -> None:
    import time
    import uuid

    ids = {fresh_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, value)
    before = time.time_ns()
    command = stamp(pb2.DjangoCommand(ping=pb2.PingCommand()))
    assert before <= command.timestamp.ToNanoseconds() <= time.time_ns()
    assert len(command.command_id) == 32
