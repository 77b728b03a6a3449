"""Redis key and channel names: one one-line builder each, all under a configurable prefix.

Every key about one client carries the client's hash tag, and command-scoped keys carry the tag of
the client the command is for: each Lua script then touches one hash slot, as Redis Cluster requires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def client_tag(client_id: str) -> str:
    """The `{...}` hash tag of a client's keys; ids holding braces get a digest (a tag cannot hold them)."""
    if "{" in client_id or "}" in client_id:
        return "{" + hashlib.sha1(client_id.encode()).hexdigest()[:16] + "}"
    return "{" + client_id + "}"


@dataclass(frozen=True)
class Keys:
    """Builds every name the bus uses in Redis, so the prefix and the layout live in one place."""

    prefix: str = "crypto"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("redis_key_prefix must not contain '{' or '}' (they are Redis Cluster hash tags)")

    def owner(self, client_id: str) -> str:  # "replica|epoch", TTL ownership_ttl (extended by the audit)
        return f"{self.prefix}:owner:{client_tag(client_id)}"

    def held(self, client_id: str) -> str:  # commands held during the grace window, TTL grace
        return f"{self.prefix}:held:{client_tag(client_id)}"

    def recent(self, client_id: str) -> str:  # "was connected lately", TTL grace
        return f"{self.prefix}:recent:{client_tag(client_id)}"

    def ack_wait(self, client_id: str, command_id: str) -> str:  # replica waiting for this ack, TTL its wait
        return f"{self.prefix}:ackwait:{client_tag(client_id)}:{command_id}"

    def ack_result(self, client_id: str, command_id: str) -> str:  # 1-byte marker of a forwarded ack
        return f"{self.prefix}:ackres:{client_tag(client_id)}:{command_id}"

    def command_id(self, command_id: str) -> str:  # a caller-chosen command_id in use, TTL command_id_ttl
        return f"{self.prefix}:cmdid:{command_id}"

    def replicas(self) -> str:  # hash: replica id -> JSON lease {"at", "clients", ...}, one key for the fleet
        return f"{self.prefix}:replicas"

    def listing(self, request_id: str) -> str:  # list the replicas push their clients to, TTL LISTING_TTL
        return f"{self.prefix}:listing:{request_id}"

    def broadcast(self, broadcast_id: str) -> str:  # list the replicas push a broadcast's result batches to
        return f"{self.prefix}:bcast:{client_tag(broadcast_id)}"

    def broadcast_targets(self, broadcast_id: str) -> str:  # hash: replica -> its targets (JSON), read if it dies
        return f"{self.prefix}:bcast:{client_tag(broadcast_id)}:targets"

    def channel(self, replica_id: str) -> str:  # (sharded) pub/sub channel a replica listens on
        return self.channel_prefix() + replica_id

    def channel_prefix(self) -> str:  # scripts that publish build the channel from an owner value
        return f"{self.prefix}:chan:"
