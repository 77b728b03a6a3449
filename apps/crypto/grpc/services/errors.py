"""Errors become gRPC statuses here, in one table, at the RPC boundary."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from .auth import AuthError
from .bus.bus import DuplicateCommand
from .bus.link import BusUnavailable
from .proto.validation import InvalidRequest
from .proto.wire import Malformed

logger = logging.getLogger(__name__)
T = TypeVar("T")


class NotServing(Exception):
    """This replica is draining or its Redis is unreachable."""


STATUS_BY_ERROR: dict[type[Exception], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    DuplicateCommand: grpc.StatusCode.ALREADY_EXISTS,
    BusUnavailable: grpc.StatusCode.UNAVAILABLE,
    NotServing: grpc.StatusCode.UNAVAILABLE,
}


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, AuthError):
        return exc.code, exc.details
    for error_type, code in STATUS_BY_ERROR.items():
        if isinstance(exc, error_type):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error"


def rpc_boundary(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Map our exceptions to a status; cancellation and aborts pass through untouched.

    A request whose bytes did not parse (proto.wire.Malformed) is answered INVALID_ARGUMENT before the
    method runs."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        if isinstance(request, Malformed):
            logger.debug("rpc.malformed_request method=%s type=%s", method.__name__, request.type_name)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, details = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                logger.exception("rpc.internal_error method=%s", method.__name__)
            await context.abort(code, details)
            raise  # unreachable: abort raises

    return wrapper
