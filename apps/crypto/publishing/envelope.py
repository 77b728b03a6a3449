"""Pure functions that turn protobuf traffic into the JSON envelopes browsers receive, and name channels.

Envelope (one JSON object per publication, see README.md in this package):
    {"type": "wallet_update", "client_id": "...", "message_id": "...",
     "timestamp": "2025-01-01T00:00:00.123Z", "replica": "...", "seq": 17, "payload": {...}}
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.limits import ID_MAX as MAX_CLIENT_ID_IN_CHANNEL

ENVELOPE_FIELDS = ("type", "client_id", "message_id", "timestamp", "replica", "seq", "payload")
EMPTY_PAYLOAD_TYPE = "empty"
_UNSAFE_CHANNEL_CHARS = re.compile(r"[^A-Za-z0-9_.\-=@]")


class Kind(enum.Enum):
    """What the stream handed us; decides how type, id, timestamp and payload are read."""

    CLIENT_MESSAGE = "client_message"
    COMMAND = "command"
    ACK = "command_ack"


@dataclass(frozen=True, slots=True)
class Parts:
    type: str
    message_id: str
    timestamp: Timestamp | None
    payload: Message | None


def _timestamp(message: Message, field: str) -> Timestamp | None:
    return getattr(message, field) if message.HasField(field) else None


def _client_message_parts(message: Any) -> Parts:
    name = message.WhichOneof("payload")
    payload = getattr(message, name) if name else None
    ts = _timestamp(message, "timestamp")
    return Parts(name or EMPTY_PAYLOAD_TYPE, message.message_id, ts, payload)


def _command_parts(message: Any) -> Parts:
    return Parts("command", message.command_id, _timestamp(message, "timestamp"), message)


def _ack_parts(message: Any) -> Parts:
    return Parts("command_ack", message.command_id, _timestamp(message, "timestamp"), message)


_PARTS: dict[Kind, Callable[[Any], Parts]] = {
    Kind.CLIENT_MESSAGE: _client_message_parts,
    Kind.COMMAND: _command_parts,
    Kind.ACK: _ack_parts,
}


def envelope_type(kind: Kind, message: Any) -> str:
    """The envelope `type` without building the envelope (used for the publish toggles)."""
    if kind is Kind.CLIENT_MESSAGE:
        return message.WhichOneof("payload") or EMPTY_PAYLOAD_TYPE
    return kind.value


def payload_dict(message: Message | None) -> dict[str, Any]:
    """Proto field names, enums by name, int64 and decimals as strings, unset fields left out."""
    if message is None:
        return {}
    return MessageToDict(message, preserving_proto_field_name=True)


def iso_timestamp(ts: Timestamp | None, fallback_unix: float) -> str:
    """RFC 3339 / ISO-8601 UTC with a Z suffix, the same shape protobuf gives Timestamp fields."""
    if ts is None:
        ts = Timestamp()
        ts.FromMicroseconds(int(fallback_unix * 1_000_000))  # a float carries no real nanoseconds
    return ts.ToJsonString()


def build_envelope(
    kind: Kind, client_id: str, message: Any, *, replica: str, seq: int, received_at: float
) -> dict[str, Any]:
    """The JSON-ready envelope. `received_at` (unix seconds) stands in for a missing timestamp."""
    parts = _PARTS[kind](message)
    return {
        "type": parts.type,
        "client_id": client_id,
        "message_id": parts.message_id,
        "timestamp": iso_timestamp(parts.timestamp, received_at),
        "replica": replica,
        "seq": seq,
        "payload": payload_dict(parts.payload),
    }


def channel_safe(client_id: str) -> str:
    """Client ids go into channel names: keep Centrifugo's special characters (#, $, :, ...) out."""
    cleaned = _UNSAFE_CHANNEL_CHARS.sub("_", client_id)[:MAX_CLIENT_ID_IN_CHANNEL]
    return cleaned or "_"


def client_channel(pattern: str, client_id: str) -> str:
    return pattern.format(client_id=channel_safe(client_id))


def channels_for(client_id: str, pattern: str, all_channel: str) -> list[str]:
    """Per-client channel first, then the shared one (when configured)."""
    own = client_channel(pattern, client_id)
    return [own, all_channel] if all_channel and all_channel != own else [own]


def idempotency_key(replica: str, instance: str, seq: int) -> str:
    """Unique per publication and stable across its retries, so Centrifugo drops re-sends."""
    return f"{replica}:{instance}:{seq}"
