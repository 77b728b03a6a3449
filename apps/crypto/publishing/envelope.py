"""Pure functions that turn protobuf traffic into the JSON envelopes browsers receive, and name channels.

Envelope (one JSON object per publication, see README.md in this package):
    {"type": "wallet_update", "client_id": "...", "message_id": "...",
     "timestamp": "2025-01-01T00:00:00.123Z", "replica": "...", "seq": 17, "payload": {...}}
"""

from __future__ import annotations

import enum
import re
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.limits import ID_MAX as MAX_CLIENT_ID_IN_CHANNEL
from apps.crypto.protojson import message_to_dict, timestamp_json

ENVELOPE_FIELDS = ("type", "client_id", "message_id", "timestamp", "replica", "seq", "payload")
EMPTY_PAYLOAD_TYPE = "empty"
_UNSAFE_CHANNEL_CHARS = re.compile(r"[^A-Za-z0-9_.\-=@]")


class Kind(enum.Enum):
    """What the stream handed us; decides how type, id, timestamp and payload are read."""

    CLIENT_MESSAGE = "client_message"
    COMMAND = "command"
    ACK = "command_ack"


def envelope_type(kind: Kind, message: Any) -> str:
    """The envelope `type` without building the envelope (used for the publish toggles)."""
    if kind is Kind.CLIENT_MESSAGE:
        return message.WhichOneof("payload") or EMPTY_PAYLOAD_TYPE
    return kind.value


def iso_timestamp(ts: Timestamp | None, fallback_unix: float) -> str:
    """RFC 3339 / ISO-8601 UTC with a Z suffix, the same shape protobuf gives Timestamp fields."""
    if ts is not None:
        return timestamp_json(ts.seconds, ts.nanos)
    seconds, micros = divmod(int(fallback_unix * 1_000_000), 1_000_000)  # a float carries no real nanoseconds
    return timestamp_json(seconds, micros * 1_000)


def build_envelope(
    kind: Kind, client_id: str, message: Any, *, replica: str, seq: int, received_at: float
) -> dict[str, Any]:
    """The JSON-ready envelope. `received_at` (unix seconds) stands in for a missing timestamp."""
    if kind is Kind.CLIENT_MESSAGE:
        name = message.WhichOneof("payload")
        type_, message_id = name or EMPTY_PAYLOAD_TYPE, message.message_id
        payload = message_to_dict(getattr(message, name)) if name else {}
        stamp = None
    else:
        type_, message_id, payload = kind.value, message.command_id, message_to_dict(message)
        stamp = payload.get("timestamp")  # the payload is the whole message: its timestamp is formatted already
    if stamp is None:
        stamp = iso_timestamp(message.timestamp if message.HasField("timestamp") else None, received_at)
    return {
        "type": type_,
        "client_id": client_id,
        "message_id": message_id,
        "timestamp": stamp,
        "replica": replica,
        "seq": seq,
        "payload": payload,
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
