"""Operator-facing environment variables, read and validated by pydantic-settings (read_fields), with the
messages of parse(): a bad value fails naming its variable.

The Helm chart and outside tests use exactly these names; see README "Configuration".
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

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


class _Settings(BaseSettings):
    """Base of the settings models read_fields generates: environment variables only, exact names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", validate_default=False)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a test's dict)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def _check(name: str, kind: type, minimum: float | None, convert: Callable[[str], Any] | None, raw: Any) -> Any:
    """A field's before-validator: parse()'s message for a bad value, convert() for list-like text."""
    if not isinstance(raw, str):  # only the environment feeds these models: never reached
        raise ValueError(f"{name} must be {_KIND_NAMES.get(kind, 'text')}, got {raw!r}")
    value = parse(name, raw, kind, minimum)
    return convert(value) if convert is not None else value


@lru_cache(maxsize=64)
def _settings_model(cls: type, names: tuple[tuple[str, str], ...], minimum: tuple[tuple[str, float], ...],
                    convert: tuple[tuple[str, Callable[[str], Any]], ...]) -> type[_Settings]:
    """A pydantic-settings model of cls's fields named in `names`, each read from its variable (None: unset)."""
    variables, minima, converters = dict(names), dict(minimum), dict(convert)
    definitions: dict[str, Any] = {}
    for f in fields(cls):
        variable = variables.get(f.name)
        if variable is None:
            continue
        converter = converters.get(f.name)
        kind = str if converter else _KINDS[f.type if isinstance(f.type, str) else f.type.__name__]
        check = BeforeValidator(partial(_check, variable, kind, minima.get(f.name), converter))
        annotation = Annotated[Any, check] if converter else Annotated[kind | None, check]
        definitions[f.name] = (annotation, Field(None, validation_alias=variable))
    return create_model(f"{cls.__name__}Settings", __base__=_Settings, **definitions)


def read_fields(cls: type, env: Mapping[str, str], env_names: Mapping[str, str], *,
                blank_is_unset: bool | Collection[str] = False, minimum: Mapping[str, float] | None = None,
                convert: Mapping[str, Callable[[str], Any]] | None = None) -> dict[str, Any]:
    """The dataclass fields named in env_names that env sets, each parsed as its annotated type.

    blank_is_unset: True, or the fields for which an empty variable means unset. minimum: per field.
    convert: per field, text -> value (lists). A bad value raises ValueError naming the variable.
    """
    blank = set(env_names) if blank_is_unset is True else set(blank_is_unset or ())
    present = {variable: env[variable] for name, variable in env_names.items()
               if variable in env and not (name in blank and env[variable] == "")}
    model = _settings_model(cls, tuple(sorted(env_names.items())), tuple(sorted((minimum or {}).items())),
                            tuple(sorted((convert or {}).items())))
    try:
        settings = model(_build_sources=((_MappingSource(model, present),), {}))
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        raise ValueError(str(cause) if cause else f"{error['loc'][0]}: {error['msg']}") from None
    return {name: getattr(settings, name) for name in settings.model_fields_set}


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
# Outside Prometheus's exporter allocations (9100-9999, all taken: 9100 is node_exporter) and below the
# kernel's ephemeral range (32768+), and no common service's port.
DEFAULT_METRICS_PORT = 7464


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
    metrics_host: str = ""  # METRICS_HOST: blank means the gRPC server's host (rungrpc --host, GRPC_HOST)
    metrics_port: int = DEFAULT_METRICS_PORT
    grpc_experiments: tuple[str, ...] = ()  # gRPC core reads GRPC_EXPERIMENTS; kept here to check and log it

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> "Environment":
        found = read_fields(cls, env, _VARIABLES, blank_is_unset=_BLANK_IS_UNSET, minimum=_MINIMUM,
                            convert=_CONVERT)
        return cls(**found)


def _log_format(raw: str) -> str:
    log_format = raw.lower()
    if log_format not in {"text", "json"}:
        raise ValueError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    return log_format


# Environment field -> its variable; the names are the operators' (README, Helm chart), never change them.
_VARIABLES = {
    "database_url": "DATABASE_URL", "redis_url": "REDIS_URL", "redis_password": "REDIS_PASSWORD",
    "redis_sentinel_password": "REDIS_SENTINEL_PASSWORD", "replica_id": "REPLICA_ID", "grpc_host": "GRPC_HOST",
    "grpc_port": "GRPC_PORT", "centrifugo_api_url": "CENTRIFUGO_API_URL", "centrifugo_api_key": "CENTRIFUGO_API_KEY",
    "auth_enabled": "CRYPTO_AUTH", "operator_tokens": "CRYPTO_OPERATOR_TOKENS", "grpc_target": "CRYPTO_GRPC_TARGET",
    "secret_key": "DJANGO_SECRET_KEY", "debug": "DJANGO_DEBUG", "allowed_hosts": "DJANGO_ALLOWED_HOSTS",
    "csrf_trusted_origins": "DJANGO_CSRF_TRUSTED_ORIGINS", "allow_dev_secret_key": DEV_SECRET_KEY_FLAG,
    "log_format": "LOG_FORMAT", "log_level": "LOG_LEVEL", "metrics_host": "METRICS_HOST",
    "metrics_port": "METRICS_PORT", "grpc_experiments": "GRPC_EXPERIMENTS",
}
_BLANK_IS_UNSET = frozenset({"database_url", "replica_id", "grpc_host", "grpc_target", "allowed_hosts"})
_MINIMUM = {"grpc_port": 0, "metrics_port": 0}
_CONVERT: dict[str, Callable[[str], Any]] = {
    "operator_tokens": split_list, "allowed_hosts": parse_allowed_hosts, "csrf_trusted_origins": parse_csrf_origins,
    "log_format": _log_format, "log_level": str.upper, "metrics_host": str.strip,
    "grpc_experiments": parse_experiments,
}


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
