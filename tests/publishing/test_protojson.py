"""The fast converter gives exactly what MessageToDict gave: dicts, key order, envelopes and request bytes."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.grpc.generated import common_pb2, crypto_streaming_pb2 as pb
from apps.crypto import protojson
from apps.crypto.publishing.envelope import Kind, build_envelope, channels_for
from apps.crypto.protojson import TIMESTAMP_MAX, TIMESTAMP_MIN, message_to_dict, timestamp_json
from apps.crypto.publishing.wire import batch_payload, broadcast_command

STAMP = (1_700_000_000, 123_456_789)


def reference(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def reference_envelope(kind: Kind, client_id: str, message: Any, *, replica: str, seq: int,
                       received_at: float) -> dict[str, Any]:
    """build_envelope as it was before protojson: MessageToDict and Timestamp.ToJsonString."""
    if kind is Kind.CLIENT_MESSAGE:
        name = message.WhichOneof("payload")
        type_, message_id, payload = name or "empty", message.message_id, getattr(message, name) if name else None
    else:
        type_, message_id, payload = kind.value, message.command_id, message
    if message.HasField("timestamp"):
        stamp = message.timestamp.ToJsonString()
    else:
        fallback = Timestamp()
        fallback.FromMicroseconds(int(received_at * 1_000_000))
        stamp = fallback.ToJsonString()
    return {"type": type_, "client_id": client_id, "message_id": message_id, "timestamp": stamp,
            "replica": replica, "seq": seq, "payload": reference(payload) if payload is not None else {}}


def stamped(message: Any, field: str = "timestamp", seconds: int = STAMP[0], nanos: int = STAMP[1]) -> Any:
    getattr(message, field).seconds, getattr(message, field).nanos = seconds, nanos
    return message


def client_messages() -> list[pb.ClientMessage]:
    def msg(**kwargs: Any) -> pb.ClientMessage:
        return stamped(pb.ClientMessage(client_id="bot-1", message_id="m-1", **kwargs))

    heartbeat = msg()
    heartbeat.heartbeat.SetInParent()
    empty_register = msg()
    empty_register.register.SetInParent()
    zero_sync = msg(wallet_update=pb.WalletUpdate(wallet_id="w", symbol="BTC"))
    zero_sync.wallet_update.last_sync.SetInParent()  # set but all zero: still printed
    return [
        msg(register=pb.ClientRegistration(client_name="n", client_type="t", version="1.2", api_url="http://x",
                                           wants_receipts=True)),
        empty_register,
        msg(wallet_update=stamped(pb.WalletUpdate(wallet_id="w-1", symbol="BTC", balance_available="0.10000000",
                                                  balance_locked="12345678901234567890.000000000000000001"),
                                  "last_sync", 1_600_000_000, 5_000_000)),
        zero_sync,
        msg(transaction=pb.TransactionReport(transaction_id="t", type="deposit", symbol="ETH", amount="1.5",
                                             status="done", details='{"k": "v é \\u2028 \\n"}')),
        msg(status=pb.StatusUpdate(status=common_pb2.CLIENT_STATUS_PAUSED, details="paused")),
        msg(status=pb.StatusUpdate(status=common_pb2.CLIENT_STATUS_UNKNOWN, details="")),  # enum 0: left out
        msg(status=pb.StatusUpdate(status=99)),  # unknown number of an open enum: a number
        heartbeat,
        msg(error=pb.ErrorReport(severity="high", message="boom ✓", traceback="line 1\nline 2")),
        msg(log=pb.LogEntry(level="INFO", message="hello", extra_data="{}")),
        msg(command_ack=stamped(common_pb2.CommandAck(command_id="c-1", success=True, message="pong",
                                                      current_status=common_pb2.CLIENT_STATUS_ACTIVE))),
        msg(command_ack=common_pb2.CommandAck(command_id="c-2", error="nope", current_status=3)),
        pb.ClientMessage(client_id="bot-1", message_id="no-payload-no-stamp"),
    ]


def commands() -> list[pb.DjangoCommand]:
    def cmd(**kwargs: Any) -> pb.DjangoCommand:
        return stamped(pb.DjangoCommand(command_id="c-1", **kwargs))

    return [
        cmd(ping=pb.PingCommand(sequence=4)),
        cmd(ping=pb.PingCommand(sequence=0)),  # oneof set, its only field default: {"ping": {}}
        cmd(ping=pb.PingCommand(sequence=-2_147_483_648), retry=True),
        cmd(pause=pb.PauseClientCommand(reason="maintenance")),
        cmd(resume=pb.ResumeClientCommand(message="go")),
        cmd(sync_wallets=pb.SyncWalletsCommand(symbols=["BTC", "ETH", ""])),
        cmd(sync_wallets=pb.SyncWalletsCommand()),  # empty repeated: left out
        cmd(request_status=pb.RequestStatusCommand(include_stats=True)),
        cmd(receipt=pb.MessageReceipt(message_ids=["m-1", "m-2"])),
        pb.DjangoCommand(command_id="c-unstamped", ping=pb.PingCommand(sequence=1)),
        pb.DjangoCommand(),
    ]


def acks() -> list[common_pb2.CommandAck]:
    return [
        stamped(common_pb2.CommandAck(command_id="c-1", success=True, message="pong", error="",
                                      current_status=common_pb2.CLIENT_STATUS_STOPPED)),
        common_pb2.CommandAck(command_id="c-2", success=False, error="timeout"),
        common_pb2.CommandAck(),
    ]


PUBLISHED: list[tuple[Kind, Any]] = (
    [(Kind.CLIENT_MESSAGE, m) for m in client_messages()]
    + [(Kind.COMMAND, c) for c in commands()]
    + [(Kind.ACK, a) for a in acks()]
)


@pytest.mark.parametrize(("kind", "message"), PUBLISHED, ids=lambda v: getattr(v, "value", None) or "")
def test_envelope_and_request_bytes_match_the_message_to_dict_path(kind: Kind, message: Any) -> None:
    args = {"replica": "replica-a", "seq": 42, "received_at": 1_800_000_000.25}
    new, old = build_envelope(kind, "bot #1", message, **args), reference_envelope(kind, "bot #1", message, **args)
    assert new == old
    channels = channels_for("bot #1", "crypto:{client_id}:updates", "crypto:all")
    new_body = json.dumps(batch_payload([broadcast_command(channels, new, "r:i:42")]))
    old_body = json.dumps(batch_payload([broadcast_command(channels, old, "r:i:42")]))
    assert new_body == old_body  # same bytes on the wire, key order included


def test_every_service_message_type_takes_the_fast_path() -> None:
    for module in (pb, common_pb2):
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            assert protojson._converter(descriptor) is not protojson._reference, descriptor.full_name


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(0, 0), (TIMESTAMP_MIN, 0), (TIMESTAMP_MAX, 999_999_999), (-1, 1), (-86_401, 1_000), (951_782_400, 7_000_000),
     (STAMP[0], 1), (STAMP[0], 10), (STAMP[0], 100_000), (STAMP[0], 120_000_000), (STAMP[0], 999_000)],
)
def test_timestamps_match_to_json_string(seconds: int, nanos: int) -> None:
    assert timestamp_json(seconds, nanos) == Timestamp(seconds=seconds, nanos=nanos).ToJsonString()
    assert timestamp_json(seconds, nanos) == timestamp_json(seconds, nanos)  # cached the same


def test_random_timestamps_match_to_json_string() -> None:
    rng = random.Random(17)
    for _ in range(2_000):
        seconds = rng.randint(TIMESTAMP_MIN, TIMESTAMP_MAX)
        nanos = rng.choice([0, rng.randrange(1000) * 1_000_000, rng.randrange(10**6) * 1000, rng.randrange(10**9)])
        assert timestamp_json(seconds, nanos) == Timestamp(seconds=seconds, nanos=nanos).ToJsonString()


@pytest.mark.parametrize(("seconds", "nanos"), [(TIMESTAMP_MAX + 1, 0), (TIMESTAMP_MIN - 1, 0), (0, -1),
                                                (0, 1_000_000_000)])
def test_invalid_timestamps_are_refused_like_message_to_dict(seconds: int, nanos: int) -> None:
    command = pb.DjangoCommand(command_id="c")
    command.timestamp.seconds, command.timestamp.nanos = seconds, nanos
    with pytest.raises(ValueError):
        Timestamp(seconds=seconds, nanos=nanos).ToJsonString()
    with pytest.raises(ValueError):
        timestamp_json(seconds, nanos)
    with pytest.raises(Exception) as fast:
        message_to_dict(command)
    with pytest.raises(Exception) as slow:
        reference(command)
    assert type(fast.value) is type(slow.value)  # the fallback re-raises MessageToDict's own error


# A type beyond the service's protos: 64-bit ints, repeated enums and messages, proto3 optional,
# recursion, and types left to MessageToDict (maps, floats, bytes, Duration).
_F = descriptor_pb2.FieldDescriptorProto


def _wide_types() -> tuple[type[Message], type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(name="protojson_test.proto", package="pj", syntax="proto3",
                                              dependency=["google/protobuf/timestamp.proto",
                                                          "google/protobuf/duration.proto"])
    file.enum_type.add(name="Color").value.extend(
        [descriptor_pb2.EnumValueDescriptorProto(name=n, number=i) for i, n in enumerate(["NONE", "RED", "BLUE"])])
    wide = file.message_type.add(name="Wide")
    fields = [
        ("i64", _F.TYPE_INT64, _F.LABEL_OPTIONAL, ""), ("u64", _F.TYPE_UINT64, _F.LABEL_OPTIONAL, ""),
        ("s64", _F.TYPE_SINT64, _F.LABEL_OPTIONAL, ""), ("f64", _F.TYPE_FIXED64, _F.LABEL_OPTIONAL, ""),
        ("u32", _F.TYPE_UINT32, _F.LABEL_OPTIONAL, ""), ("r64", _F.TYPE_INT64, _F.LABEL_REPEATED, ""),
        ("colors", _F.TYPE_ENUM, _F.LABEL_REPEATED, ".pj.Color"), ("kids", _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".pj.Wide"),
        ("stamps", _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".google.protobuf.Timestamp"),
        ("took", _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Duration"),
        ("maybe", _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
    ]
    for number, (name, type_, label, type_name) in enumerate(fields, 1):
        wide.field.add(name=name, number=number, type=type_, label=label, **({"type_name": type_name} if type_name else {}))
    wide.oneof_decl.add(name="_maybe")
    wide.field[-1].oneof_index, wide.field[-1].proto3_optional = 0, True
    odd = file.message_type.add(name="Odd")
    odd.field.add(name="ratio", number=1, type=_F.TYPE_DOUBLE, label=_F.LABEL_OPTIONAL)
    odd.field.add(name="blob", number=2, type=_F.TYPE_BYTES, label=_F.LABEL_OPTIONAL)
    entry = odd.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_F.TYPE_INT64, label=_F.LABEL_OPTIONAL)
    odd.field.add(name="tags", number=3, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED, type_name=".pj.Odd.TagsEntry")
    pool = descriptor_pool.DescriptorPool()
    for well_known in (timestamp_pb2, duration_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(well_known.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("pj.Wide")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("pj.Odd")))


def test_types_beyond_the_service_protos_match_too() -> None:
    wide_type, odd_type = _wide_types()
    wide = wide_type(i64=-(2**63), u64=2**64 - 1, s64=-5, f64=7, u32=2**32 - 1, r64=[0, 2**53 + 1], colors=[0, 2, 9],
                     maybe="")
    wide.kids.add(i64=1).kids.add(colors=[1])
    wide.kids.add()
    wide.stamps.add(seconds=1, nanos=1_000)
    wide.took.seconds = 3
    assert list(message_to_dict(wide).items()) == list(reference(wide).items())
    assert message_to_dict(wide)["maybe"] == ""  # proto3 optional: set to its default, still printed
    assert protojson._converter(wide.DESCRIPTOR) is not protojson._reference
    odd = odd_type(ratio=float("nan"), blob=b"\x00\xff", tags={"a": 2**40})
    assert json.dumps(message_to_dict(odd)) == json.dumps(reference(odd))
    assert protojson._converter(odd.DESCRIPTOR) is protojson._reference
