"""Operator-facing environment variables, and the one parser (parse/read/read_fields) every config class uses.

The Helm chart and outside tests use exactly these names; see README "Configuration".
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_KIND_NAMES = {bool: "on or off", int: "an integer", float: "a number", str: "text"}
_KINDS = {kind.__name__: kind for kind in _KIND_NAMES}
T = TypeVar("T", bool, int, float, str)


def parse(name: str, raw: str, kind: type[T], minimum: float | None = None) -> T:
    """raw as kind (bool takes on/off style flags); a bad value is a ValueError naming the variable."""
    if kind is bool:
        flag = raw.strip().lower()
        if flag in _TRUE | _FALSE:
            return flag in _TRUE
    else:
        try:
            value = kind(raw)
        except ValueError:
            pass
        else:
            if minimum is not None and value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
            return value
    raise ValueError(f"{name} must be {_KIND_NAMES[kind]}, got {raw!r}")


def read(env: Mapping[str, str], name: str, kind: type[T], default: T, *, blank_is_unset: bool = False,
         minimum: float | None = None) -> T:
    """The variable `name` as kind, or default when unset (or blank, with blank_is_unset)."""
    raw = env.get(name)
    if raw is None or (blank_is_unset and raw == ""):
        return default
    return parse(name, raw, kind, minimum)


def read_fields(cls: type, env: Mapping[str, str], env_names: Mapping[str, str], *,
                blank_is_unset: bool = False) -> dict[str, Any]:
    """The dataclass fields named in env_names that env sets, each parsed as its annotated type."""
    found: dict[str, Any] = {}
    for f in fields(cls):
        name = env_names.get(f.name)
        raw = None if name is None else env.get(name)
        if raw is not None and not (blank_is_unset and raw == ""):
            found[f.name] = parse(name, raw, _KINDS[f.type if isinstance(f.type, str) else f.type.__name__])
    return found


def split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# Public (it is in this repository): for development and tests only, see django_secret_key().
DEV_SECRET_KEY = "crypto-grpc-local-development-only-secret-key-0123456789"
DEV_SECRET_KEY_FLAG = "DJANGO_ALLOW_DEV_SECRET_KEY"

_EXPERIMENT = re.compile(r"-?[a-z0-9_]+")


# Django's own ALLOWED_HOSTS syntax: "*", a name, ".name" (the domain and its subdomains), an IPv4 address
# or a bracketed IPv6 address. No ports, schemes or regexes: Django would never match those.
_HOST = re.compile(r"\*|\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\]")
# A CSRF trusted origin: scheme://host[:port], host optionally "*."-prefixed (Django's syntax).
_ORIGIN = re.compile(r"https?://(\*\.)?([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """DJANGO_ALLOWED_HOSTS: comma-separated Django host patterns; anything Django would not match is refused."""
    hosts = split_list(raw)
    for host in hosts:
        if not _HOST.fullmatch(host):
            raise ValueError(
                f"DJANGO_ALLOWED_HOSTS takes comma-separated host names as Django reads them (example.com, "
                f".example.com for the domain and its subdomains, 10.1.2.3, [::1], *), without scheme or "
                f"port; got {host!r}")
    return hosts


def parse_csrf_origins(raw: str) -> tuple[str, ...]:
    """DJANGO_CSRF_TRUSTED_ORIGINS: comma-separated scheme://host[:port] origins (Django's syntax)."""
    origins = split_list(raw)
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                "DJANGO_CSRF_TRUSTED_ORIGINS takes comma-separated origins, scheme://host[:port] "
                f"(https://ops.example.com, https://*.example.com), no path; got {origin!r}")
    return origins


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
    redis_password: str = ""  # REDIS_PASSWORD: the data nodes' password when REDIS_URL carries none
    redis_sentinel_password: str = ""  # REDIS_SENTINEL_PASSWORD: the sentinels' own password
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
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS  # DJANGO_ALLOWED_HOSTS
    csrf_trusted_origins: tuple[str, ...] = ()  # DJANGO_CSRF_TRUSTED_ORIGINS
    allow_dev_secret_key: bool = False  # DJANGO_ALLOW_DEV_SECRET_KEY: development and tests only
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 9100
    grpc_experiments: tuple[str, ...] = ()  # gRPC core reads GRPC_EXPERIMENTS; kept here to check and log it

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> "Environment":
        defaults = cls()
        log_format = read(env, "LOG_FORMAT", str, defaults.log_format).lower()
        if log_format not in {"text", "json"}:
            raise ValueError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        return cls(
            database_url=read(env, "DATABASE_URL", str, defaults.database_url, blank_is_unset=True),
            redis_url=read(env, "REDIS_URL", str, ""),
            redis_password=read(env, "REDIS_PASSWORD", str, ""),
            redis_sentinel_password=read(env, "REDIS_SENTINEL_PASSWORD", str, ""),
            replica_id=read(env, "REPLICA_ID", str, defaults.replica_id, blank_is_unset=True),
            grpc_host=read(env, "GRPC_HOST", str, defaults.grpc_host, blank_is_unset=True),
            grpc_port=read(env, "GRPC_PORT", int, defaults.grpc_port, minimum=0),
            centrifugo_api_url=read(env, "CENTRIFUGO_API_URL", str, ""),
            centrifugo_api_key=read(env, "CENTRIFUGO_API_KEY", str, ""),
            auth_enabled=read(env, "CRYPTO_AUTH", bool, True),
            operator_tokens=split_list(read(env, "CRYPTO_OPERATOR_TOKENS", str, "")),
            grpc_target=read(env, "CRYPTO_GRPC_TARGET", str, defaults.grpc_target, blank_is_unset=True),
            secret_key=read(env, "DJANGO_SECRET_KEY", str, ""),
            debug=read(env, "DJANGO_DEBUG", bool, False),
            allowed_hosts=parse_allowed_hosts(read(env, "DJANGO_ALLOWED_HOSTS", str, ",".join(DEFAULT_ALLOWED_HOSTS),
                                                   blank_is_unset=True)),
            csrf_trusted_origins=parse_csrf_origins(read(env, "DJANGO_CSRF_TRUSTED_ORIGINS", str, "")),
            allow_dev_secret_key=read(env, DEV_SECRET_KEY_FLAG, bool, False),
            log_format=log_format,
            log_level=read(env, "LOG_LEVEL", str, defaults.log_level).upper(),
            metrics_port=read(env, "METRICS_PORT", int, defaults.metrics_port, minimum=0),
            grpc_experiments=parse_experiments(read(env, "GRPC_EXPERIMENTS", str, "")),
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
