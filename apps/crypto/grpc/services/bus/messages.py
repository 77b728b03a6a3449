"""Envelopes exchanged between replicas over pub/sub (pure encode/decode, no I/O).

JSON with the protobuf bytes base64-encoded keeps them readable in `redis-cli monitor`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class EnvelopeKind(StrEnum):
    """What an envelope asks for; the values are on the wire, shared by replicas of different versions."""

    COMMAND = "cmd"  # deliver a command to a locally held stream
    DELIVERED = "dlv"  # the command reached the stream
    UNDELIVERABLE = "nodlv"  # the stream is not here (any more)
    ACK = "ack"  # the client's CommandAck, or a failure ack from the owner
    EVICT = "evict"  # a newer claim exists: end the stream if its epoch is older
    LIST = "list"  # push your clients to the listing command_id names (the cluster view asks every replica)
    BROADCAST = "bcast"  # a fleet command: deliver to your matching streams, push their acks in batches
    BROADCAST_CANCEL = "bcancel"  # the broadcast's caller is gone: withdraw what was not written yet


@dataclass(frozen=True)
class Envelope:
    """One message between replicas over pub/sub."""

    kind: EnvelopeKind
    client_id: str = ""
    command_id: str = ""
    reply_to: str = ""  # replica waiting for the outcome
    body: bytes = b""  # serialized DjangoCommand or CommandAck
    wait_ack: bool = False
    epoch: int = 0
    sender: str = ""
    reason: str = ""
    timeout: float = 0.0  # seconds the receiver has for its part (a broadcast)


FIELDS = tuple(f.name for f in fields(Envelope))


def encode(envelope: Envelope) -> str:
    """Only the fields that are set (dataclasses.asdict deep-copies: too slow on the hot path)."""
    data: dict[str, Any] = {name: value for name in FIELDS if (value := getattr(envelope, name))}
    if envelope.body:
        data["body"] = base64.b64encode(envelope.body).decode("ascii")
    return json.dumps(data, separators=(",", ":"))


def decode(raw: str | bytes) -> Envelope:
    """Raises ValueError on anything that is not an envelope this version understands."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("envelope is not an object")
        data["body"] = base64.b64decode(data.get("body", ""))
        data["kind"] = _kind(data.get("kind"))
        return Envelope(**data)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"bad bus envelope: {exc}") from exc


def _kind(raw: Any) -> EnvelopeKind:
    try:
        return EnvelopeKind(raw)
    except ValueError:
        raise ValueError(f"unknown kind {str(raw)[:20]!r}") from None


@dataclass(frozen=True)
class Owner:
    """Who holds a client's stream: the owner value "replica|epoch" in Redis, parsed."""

    replica_id: str
    epoch: int

    @classmethod
    def parse(cls, raw: str | bytes | None) -> "Owner | None":
        if not raw:
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        replica, _, epoch = text.rpartition("|")
        return cls(replica, int(epoch)) if replica and epoch.isdigit() else None

    def token(self) -> str:
        return f"{self.replica_id}|{self.epoch}"
