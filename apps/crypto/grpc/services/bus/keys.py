"""Redis key and channel names: one one-line builder each, all under a configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Builds every name the bus uses in Redis, so the prefix and the layout live in one place."""

    prefix: str = "crypto"

    def owner(self, client_id: str) -> str:  # "replica|epoch", TTL ownership_ttl
        return f"{self.prefix}:owner:{client_id}"

    def epoch(self, client_id: str) -> str:  # fencing counter, TTL EPOCH_TTL_MS
        return f"{self.prefix}:epoch:{client_id}"

    def held(self, client_id: str) -> str:  # commands held during the grace window, TTL grace
        return f"{self.prefix}:held:{client_id}"

    def recent(self, client_id: str) -> str:  # "was connected lately", TTL grace
        return f"{self.prefix}:recent:{client_id}"

    def presence(self, client_id: str) -> str:  # cluster view hash, TTL ownership_ttl
        return f"{self.prefix}:presence:{client_id}"

    def ack_wait(self, command_id: str) -> str:  # replica waiting for this ack, TTL its wait
        return f"{self.prefix}:ackwait:{command_id}"

    def ack_result(self, command_id: str) -> str:  # 1-byte marker of a forwarded ack, spots duplicates
        return f"{self.prefix}:ackres:{command_id}"

    def command_id(self, command_id: str) -> str:  # a caller-chosen command_id in use, TTL command_id_ttl
        return f"{self.prefix}:cmdid:{command_id}"

    def replica(self, replica_id: str) -> str:  # replica heartbeat, TTL 3 beats
        return f"{self.prefix}:replica:{replica_id}"

    def channel(self, replica_id: str) -> str:  # pub/sub channel a replica listens on
        return self.channel_prefix() + replica_id

    def channel_prefix(self) -> str:  # scripts that publish build the channel from an owner value
        return f"{self.prefix}:chan:"

    def presence_pattern(self) -> str:
        return f"{self.prefix}:presence:*"

    def replica_pattern(self) -> str:
        return f"{self.prefix}:replica:*"
