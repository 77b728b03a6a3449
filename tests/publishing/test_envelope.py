import json

import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb
from apps.crypto.publishing.envelope import (
    ENVELOPE_FIELDS,
    Kind,
    build_envelope,
    channel_safe,
    channels_for,
    envelope_type,
    idempotency_key,
)

from .helpers import ack_message, command_ack, ping_command, wallet_message

RECEIVED_AT = 1_800_000_000.25


def envelope(kind: Kind, message: object, client_id: str = "bot-1") -> dict:
    return build_envelope(kind, client_id, message, replica="replica-a", seq=7, received_at=RECEIVED_AT)


def test_client_message_envelope_shape_and_payload() -> None:
    result = envelope(Kind.CLIENT_MESSAGE, wallet_message("bot-1", 3))
    assert tuple(result) == ENVELOPE_FIELDS
    assert result == {
        "type": "wallet_update",
        "client_id": "bot-1",
        "message_id": "bot-1-m3",
        "timestamp": "2023-11-14T22:13:23Z",
        "replica": "replica-a",
        "seq": 7,
        "payload": {
            "wallet_id": "w-3",
            "symbol": "BTC",
            "balance_available": "0.10000000",
            "balance_locked": "12345678901234567890.000000000000000001",
        },
    }
    json.dumps(result)  # JSON-ready as is


def test_decimals_stay_exact_strings() -> None:
    payload = envelope(Kind.CLIENT_MESSAGE, wallet_message("bot-1", 1))["payload"]
    assert payload["balance_available"] == "0.10000000"  # trailing zeros kept: never went through float
    assert isinstance(payload["balance_locked"], str)


def test_missing_timestamp_falls_back_to_receive_time() -> None:
    result = envelope(Kind.CLIENT_MESSAGE, wallet_message("bot-1", 1, stamped=False))
    assert result["timestamp"] == "2027-01-15T08:00:00.250Z"


def test_empty_payload_types() -> None:
    heartbeat = pb.ClientMessage(client_id="bot-1", message_id="h1")
    heartbeat.heartbeat.SetInParent()
    assert envelope(Kind.CLIENT_MESSAGE, heartbeat)["type"] == "heartbeat"
    assert envelope(Kind.CLIENT_MESSAGE, heartbeat)["payload"] == {}
    nothing = pb.ClientMessage(client_id="bot-1", message_id="n1")
    assert envelope(Kind.CLIENT_MESSAGE, nothing)["type"] == "empty"


def test_command_envelope_carries_the_whole_command() -> None:
    result = envelope(Kind.COMMAND, ping_command("c-1", sequence=4))
    assert result["type"] == "command"
    assert result["message_id"] == "c-1"
    assert result["timestamp"] == "2023-11-14T22:13:20Z"
    assert result["payload"] == {"command_id": "c-1", "timestamp": "2023-11-14T22:13:20Z", "ping": {"sequence": 4}}


def test_ack_envelope_uses_enum_names() -> None:
    result = envelope(Kind.ACK, command_ack("c-1"))
    assert result["type"] == "command_ack"
    assert result["message_id"] == "c-1"
    assert result["payload"] == {
        "command_id": "c-1", "success": True, "message": "pong", "current_status": "CLIENT_STATUS_ACTIVE",
    }


def test_ack_inside_a_client_message_is_typed_command_ack() -> None:
    message = ack_message("bot-1", "c-9")
    assert envelope_type(Kind.CLIENT_MESSAGE, message) == "command_ack"
    assert envelope(Kind.CLIENT_MESSAGE, message)["payload"] == {"command_id": "c-9", "success": True}


def test_envelope_type_matches_the_built_envelope() -> None:
    cases = [
        (Kind.CLIENT_MESSAGE, wallet_message("b", 1)),
        (Kind.COMMAND, ping_command("c")),
        (Kind.ACK, command_ack("c")),
    ]
    for kind, message in cases:
        assert envelope_type(kind, message) == envelope(kind, message)["type"]


def test_channels_per_client_then_all() -> None:
    assert channels_for("bot-1", "crypto:{client_id}:updates", "crypto:all") == [
        "crypto:bot-1:updates", "crypto:all",
    ]
    assert channels_for("bot-1", "crypto:{client_id}:updates", "") == ["crypto:bot-1:updates"]
    assert channels_for("x", "crypto:{client_id}", "crypto:x") == ["crypto:x"]


@pytest.mark.parametrize(
    ("client_id", "safe"),
    [
        ("3f2b-uuid_1.2", "3f2b-uuid_1.2"),
        ("user#42", "user_42"),
        ("a:b", "a_b"),
        ("$private", "_private"),
        ("with space/slash", "with_space_slash"),
        ("", "_"),
        ("x" * 300, "x" * 128),
    ],
)
def test_client_ids_are_made_channel_safe(client_id: str, safe: str) -> None:
    assert channel_safe(client_id) == safe


def test_idempotency_keys_are_unique_per_publication() -> None:
    keys = {idempotency_key("replica-a", "abcd", seq) for seq in range(1000)}
    assert len(keys) == 1000
    assert idempotency_key("replica-a", "abcd", 1) != idempotency_key("replica-b", "abcd", 1)
