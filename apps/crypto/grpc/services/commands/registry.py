"""Command kinds by name: the table the management command and the admin build commands from."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .pause import KIND as PAUSE
from .pause import build_pause
from .ping import KIND as PING
from .ping import build_ping
from .request_status import KIND as REQUEST_STATUS
from .request_status import build_request_status
from .resume import KIND as RESUME
from .resume import build_resume
from .sync_wallets import KIND as SYNC_WALLETS
from .sync_wallets import build_sync_wallets

CommandBuilder = Callable[..., pb2.DjangoCommand]

COMMAND_BUILDERS: Mapping[str, CommandBuilder] = MappingProxyType({
    PAUSE: build_pause,
    RESUME: build_resume,
    PING: build_ping,
    SYNC_WALLETS: build_sync_wallets,
    REQUEST_STATUS: build_request_status,
})


def builder_params(kind: str) -> tuple[str, ...]:
    """The keyword arguments the builder of `kind` accepts (KeyError for an unknown kind)."""
    return tuple(inspect.signature(COMMAND_BUILDERS[kind]).parameters)


def build_command(kind: str, **params: Any) -> pb2.DjangoCommand:
    """Build a command by kind name; ValueError for an unknown kind or a parameter it does not take."""
    if kind not in COMMAND_BUILDERS:
        raise ValueError(f"unknown command kind {kind!r}; expected one of {', '.join(COMMAND_BUILDERS)}")
    unexpected = sorted(set(params) - set(builder_params(kind)))
    if unexpected:
        raise ValueError(f"{kind} does not take {', '.join(unexpected)}")
    return COMMAND_BUILDERS[kind](**params)
