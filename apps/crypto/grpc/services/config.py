"""One typed, validated object for every streaming knob, overridable from settings or CRYPTO_* env vars."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from config.env import ENV, Environment, read_fields

MIB = 1024 * 1024


@dataclass(frozen=True)
class CryptoStreamingConfig:
    """Defaults follow the architecture guide; times are seconds."""

    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 90.0
    enable_ping: bool = True
    ping_interval: float = 60.0
    client_disconnect_grace: float = 5.0
    centrifugo_auto_publish_messages: bool = True
    centrifugo_channel_pattern: str = "crypto:{client_id}:updates"
    centrifugo_publish_all_channel: str = "crypto:all"
    ack_timeout: float = 15.0
    send_timeout: float = 5.0  # how long SendCommandToClient waits for delivery confirmation
    outbound_queue_size: int = 256  # commands buffered per stream before it counts as a slow reader
    ingest_batch_size: int = 2_000  # client messages stored per transaction, at most
    ingest_flush_interval: float = 0.01  # how long a flush waits for a full batch before storing what it has
    ingest_buffer_limit: int = 20_000  # messages buffered per replica before streams wait (backpressure)
    ingest_retry_for: float = 60.0  # a batch the database cannot take is retried this long, then refused
    # how long a receipting bot's (client_id, message_id) is remembered, so a resend is stored once
    ingest_receipt_retention: float = 7 * 86_400.0
    max_message_bytes: int = 4 * MIB
    max_text_chars: int = 10_000
    # Inbound messages one stream may send per second (a token bucket with a burst of twice that);
    # past it the stream ends RESOURCE_EXHAUSTED. 0 turns the limit off. A busy bot sends a few hundred.
    max_messages_per_second: int = 5_000
    command_id_ttl: float = 86_400.0  # a caller-chosen command_id is refused as "in use" for this long
    shutdown_grace: float = 20.0  # SIGTERM to exit, at most
    drain_window: float = 3.0  # streams are ended spread over this window on drain
    # Owner keys live long and cost nothing per beat: a replica's liveness is its subscription and its
    # lease. The audit re-checks every local claim in one batch and extends the TTL; the TTL only
    # bounds how long a killed replica's claims linger unrouted-to in Redis.
    ownership_ttl: float = 3600.0
    ownership_refresh: float = 600.0  # the audit's interval
    replica_beat_interval: float = 5.0  # a replica's lease in the fleet-wide hash, one call each time
    redis_key_prefix: str = "crypto"
    redis_socket_timeout: float = 5.0
    keepalive_time_ms: int = 20_000
    keepalive_timeout_ms: int = 10_000
    max_connection_age_ms: int = 0  # 0: connections live as long as the client wants
    max_connection_age_grace_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "heartbeat_timeout", "ping_interval", "ack_timeout", "send_timeout",
                     "ownership_ttl", "ownership_refresh", "replica_beat_interval", "redis_socket_timeout",
                     "ingest_receipt_retention"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("client_disconnect_grace", "shutdown_grace", "drain_window"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError("heartbeat_timeout must exceed heartbeat_interval")
        if self.ownership_ttl < 2 * self.ownership_refresh:
            raise ValueError("ownership_ttl must be at least twice ownership_refresh")
        if self.outbound_queue_size < 1 or self.max_message_bytes < 1024:
            raise ValueError("outbound_queue_size must be >= 1 and max_message_bytes >= 1024")
        if not 1 <= self.ingest_batch_size <= self.ingest_buffer_limit:
            raise ValueError("ingest_batch_size must be >= 1 and at most ingest_buffer_limit")
        if self.max_messages_per_second < 0 or self.command_id_ttl <= 0:
            raise ValueError("max_messages_per_second must be >= 0 and command_id_ttl > 0")
        if self.ingest_flush_interval <= 0 or self.ingest_retry_for < 0:
            raise ValueError("ingest_flush_interval must be > 0 and ingest_retry_for >= 0")
        if "{client_id}" not in self.centrifugo_channel_pattern:
            raise ValueError("centrifugo_channel_pattern must contain {client_id}")
        if self.drain_window >= self.shutdown_grace > 0:
            raise ValueError("drain_window must be shorter than shutdown_grace")

    @classmethod
    def from_env(cls, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> "CryptoStreamingConfig":
        """CRYPTO_<FIELD> for every field, plus the GRPC_* server options the Helm chart sets; blank is unset.
        Read and type-checked by pydantic-settings (config.env.read_fields); the rules between fields are above."""
        names = {f.name: GRPC_ALIASES.get(f.name, f"CRYPTO_{f.name.upper()}") for f in fields(cls)}
        return cls(**{**(overrides or {}), **read_fields(cls, env, names, blank_is_unset=True)})


GRPC_ALIASES = {
    "shutdown_grace": "GRPC_SHUTDOWN_GRACE",
    "keepalive_time_ms": "GRPC_KEEPALIVE_TIME_MS",
    "keepalive_timeout_ms": "GRPC_KEEPALIVE_TIMEOUT_MS",
    "max_connection_age_ms": "GRPC_MAX_CONNECTION_AGE_MS",
    "max_connection_age_grace_ms": "GRPC_MAX_CONNECTION_AGE_GRACE_MS",
    "max_message_bytes": "GRPC_MAX_MESSAGE_BYTES",
}


def load_config(**overrides: Any) -> CryptoStreamingConfig:
    """The config for this process: settings.CRYPTO_STREAMING (a dict) under env vars under overrides."""
    from django.conf import settings

    base = CryptoStreamingConfig.from_env(os.environ, getattr(settings, "CRYPTO_STREAMING", {}))
    return replace(base, **overrides)


__all__ = ["CryptoStreamingConfig", "load_config", "ENV", "Environment"]
