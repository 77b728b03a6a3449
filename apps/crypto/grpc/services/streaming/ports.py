"""What a stream needs from its replica, and nothing more: the runtime builds a StreamPort, so
streaming/ never imports the runtime (which would be an import cycle: the runtime starts streams)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...generated import crypto_streaming_pb2 as pb2
from ..auth import Authenticator
from ..config import CryptoStreamingConfig
from ..inbound import MessageContext
from .session import StreamSession


class Unavailable(Exception):
    """attach() could not claim the client (the bus is down); the stream ends UNAVAILABLE."""


@dataclass(frozen=True)
class Lifecycle:
    """Persistence hooks for a stream opening and closing."""

    connected: Callable[[str, str], Awaitable[None]]
    disconnected: Callable[[str, str], Awaitable[None]]


class StreamPublisher(Protocol):
    """The two publish calls a stream makes (never blocking, never raising)."""

    def publish_client_message(self, client_id: str, message: Any) -> None: ...

    def publish_command(self, client_id: str, command: Any) -> None: ...


@dataclass(frozen=True)
class StreamPort:
    """The replica as one stream sees it."""

    replica_id: str
    config: CryptoStreamingConfig
    authenticator: Authenticator
    attach: Callable[[StreamSession], Awaitable[None]]  # claim the client for this replica; raises Unavailable
    detach: Callable[[StreamSession], Awaitable[None]]  # release it
    dispatch: Callable[[MessageContext, pb2.ClientMessage], Awaitable[Any]]  # store; a rejection or None
    lifecycle: Lifecycle
    publisher: StreamPublisher
    draining: Callable[[], bool]  # the replica stopped taking streams
