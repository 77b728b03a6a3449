"""Settings of the Centrifugo publisher: one frozen, validated value read from the environment."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, fields

from config.env import read_fields

# CENTRIFUGO_<FIELD> for these (read by pydantic-settings, config.env.read_fields), each parsed as the
# field's type. Anything not listed keeps its default.
_ENV_FIELDS = ("api_url", "api_key", "channel_pattern", "all_channel", "publish_commands", "publish_acks", "queue_size", "batch_size",
               "flush_interval", "request_timeout", "max_retries", "backoff_base", "backoff_max",
               "breaker_threshold", "breaker_cooldown", "auth_retry_interval", "close_timeout")


@dataclass(frozen=True)
class PublisherConfig:
    """Everything the publisher needs; publishing is on only when both url and key are set."""

    api_url: str = ""
    api_key: str = ""
    channel_pattern: str = "crypto:{client_id}:updates"
    all_channel: str = "crypto:all"
    publish_commands: bool = True
    publish_acks: bool = True
    queue_size: int = 10_000
    batch_size: int = 100
    flush_interval: float = 0.05
    request_timeout: float = 3.0
    max_retries: int = 3
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 5.0
    auth_retry_interval: float = 60.0
    close_timeout: float = 2.0

    def __post_init__(self) -> None:
        _validate_url(self.api_url)
        _validate_pattern(self.channel_pattern)
        _validate_all_channel(self.all_channel)
        _validate_numbers(self)

    @property
    def enabled(self) -> bool:
        return bool(self.api_url and self.api_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "PublisherConfig":
        """Read CENTRIFUGO_API_URL / CENTRIFUGO_API_KEY plus optional CENTRIFUGO_<FIELD> overrides."""
        names = {name: "CENTRIFUGO_" + name.upper() for name in _ENV_FIELDS}
        found = read_fields(cls, environ, names, convert=_TEXT)
        return cls(**found)

    def __repr__(self) -> str:
        # The key must never reach a log line through an innocent repr().
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_key"] = "***" if self.api_key else ""
        return "PublisherConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


# Text settings are read stripped; the URL also without a trailing slash.
_TEXT = {"api_url": lambda raw: raw.strip().rstrip("/"), "api_key": str.strip, "channel_pattern": str.strip,
         "all_channel": str.strip}


def _validate_url(url: str) -> None:
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"api_url must start with http:// or https://, got {url!r}")


def _placeholders(pattern: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise ValueError(f"channel pattern {pattern!r} is malformed: {exc}") from None


def _validate_pattern(pattern: str) -> None:
    if _placeholders(pattern) != ["client_id"]:
        raise ValueError(f"channel_pattern must contain {{client_id}} exactly once, got {pattern!r}")


def _validate_all_channel(channel: str) -> None:
    """Empty disables the shared channel; otherwise it is a literal channel name."""
    if channel and _placeholders(channel):
        raise ValueError(f"all_channel is a literal channel name, got {channel!r}")


# field -> (minimum, exclusive?) for every numeric setting
_LIMITS: dict[str, tuple[float, bool]] = {
    "queue_size": (1, False),
    "batch_size": (1, False),
    "flush_interval": (0, False),
    "request_timeout": (0, True),
    "max_retries": (0, False),
    "backoff_base": (0, False),
    "backoff_max": (0, False),
    "breaker_threshold": (1, False),
    "breaker_cooldown": (0, True),
    "auth_retry_interval": (0, True),
    "close_timeout": (0, False),
}


def _validate_numbers(config: PublisherConfig) -> None:
    for name, (minimum, exclusive) in _LIMITS.items():
        value = getattr(config, name)
        if value != value or (value <= minimum if exclusive else value < minimum):
            sign = ">" if exclusive else ">="
            raise ValueError(f"{name} must be {sign} {minimum}, got {value!r}")
    if config.backoff_max < config.backoff_base:
        raise ValueError("backoff_max must be >= backoff_base")
    if config.batch_size > config.queue_size:
        raise ValueError("batch_size must be <= queue_size")
