"""Operator-facing environment variables, read in one place.

The Helm chart and outside tests use exactly these names; see README "Configuration".
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    """Accept on/off style flags; anything else is a configuration error."""
    value = raw.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(f"{name} must be on or off, got {raw!r}")


def parse_int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# Public (it is in this repository): for development and tests only, see django_secret_key().
DEV_SECRET_KEY = "crypto-grpc-local-development-only-secret-key-0123456789"
DEV_SECRET_KEY_FLAG = "DJANGO_ALLOW_DEV_SECRET_KEY"

_EXPERIMENT = re.compile(r"-?[a-z0-9_]+")


def parse_experiments(raw: str) -> tuple[str, ...]:
    """GRPC_EXPERIMENTS is read by gRPC core itself; a malformed list is refused here, at start-up."""
    names = split_list(raw)
    bad = [name for name in names if not _EXPERIMENT.fullmatch(name)]
    if bad:
        raise ValueError(f"GRPC_EXPERIMENTS must be comma-separated experiment names, got {bad[0]!r}")
    return names


@dataclass(frozen=True)
class Environment:
    """The process environment, typed and validated."""

    database_url: str = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    redis_url: str = ""
    replica_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    grpc_host: str = "[::]"
    grpc_port: int = 50051
    centrifugo_api_url: str = ""
    centrifugo_api_key: str = ""
    auth_enabled: bool = True
    operator_tokens: tuple[str, ...] = ()
    grpc_target: str = "localhost:50051"
    secret_key: str = ""
    debug: bool = False
    allow_dev_secret_key: bool = False  # DJANGO_ALLOW_DEV_SECRET_KEY: development and tests only
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 9100
    grpc_experiments: tuple[str, ...] = ()  # gRPC core reads GRPC_EXPERIMENTS; kept here to check and log it

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> "Environment":
        defaults = cls()
        log_format = env.get("LOG_FORMAT", defaults.log_format).lower()
        if log_format not in {"text", "json"}:
            raise ValueError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            redis_url=env.get("REDIS_URL", ""),
            replica_id=env.get("REPLICA_ID") or defaults.replica_id,
            grpc_host=env.get("GRPC_HOST") or defaults.grpc_host,
            grpc_port=parse_int("GRPC_PORT", env.get("GRPC_PORT", "50051")),
            centrifugo_api_url=env.get("CENTRIFUGO_API_URL", ""),
            centrifugo_api_key=env.get("CENTRIFUGO_API_KEY", ""),
            auth_enabled=parse_bool("CRYPTO_AUTH", env.get("CRYPTO_AUTH", "on")),
            operator_tokens=split_list(env.get("CRYPTO_OPERATOR_TOKENS", "")),
            grpc_target=env.get("CRYPTO_GRPC_TARGET") or defaults.grpc_target,
            secret_key=env.get("DJANGO_SECRET_KEY", ""),
            debug=parse_bool("DJANGO_DEBUG", env.get("DJANGO_DEBUG", "off")),
            allow_dev_secret_key=parse_bool(DEV_SECRET_KEY_FLAG, env.get(DEV_SECRET_KEY_FLAG, "off")),
            log_format=log_format,
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            metrics_port=parse_int("METRICS_PORT", env.get("METRICS_PORT", "9100")),
            grpc_experiments=parse_experiments(env.get("GRPC_EXPERIMENTS", "")),
        )


def django_secret_key(env: Environment) -> str:
    """DJANGO_SECRET_KEY; the public development key only with DEBUG on or DJANGO_ALLOW_DEV_SECRET_KEY on.

    The development key is in this repository, so anyone could forge sessions, password-reset
    tokens and signed values with it: a production process refuses to start on it.
    """
    if env.secret_key.strip() and env.secret_key != DEV_SECRET_KEY:
        return env.secret_key
    if env.debug or env.allow_dev_secret_key:
        return DEV_SECRET_KEY
    raise ValueError(
        "DJANGO_SECRET_KEY is not set (or is the public development key) and DEBUG is off: refusing to run "
        "with the development secret key. Set DJANGO_SECRET_KEY to a long random value, for example "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`; for local development and tests "
        f"only, set {DEV_SECRET_KEY_FLAG}=on instead.")


ENV = Environment.from_mapping(os.environ)
