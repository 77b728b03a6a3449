"""Every API failure as `{"error": <name>, "detail": <text>}` with a proper HTTP status, in tables.

A command RPC that fails maps by gRPC status: the gRPC service unreachable is a 503, no answer
within the deadline a 504, a refused operator token between web and gRPC tier a 502 (configuration).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.crypto.grpc.services.commands import CommandClientError

logger = logging.getLogger(__name__)

# HTTP status -> the `error` name of a response without a more specific one
ERROR_NAMES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}

# gRPC status of a failed command RPC -> HTTP status
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: status.HTTP_503_SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: status.HTTP_504_GATEWAY_TIMEOUT,
    grpc.StatusCode.INVALID_ARGUMENT: status.HTTP_400_BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: status.HTTP_502_BAD_GATEWAY,
    grpc.StatusCode.PERMISSION_DENIED: status.HTTP_502_BAD_GATEWAY,
}


class ApiError(APIException):
    """A failure with an explicit HTTP status, error name and detail."""

    def __init__(self, status_code: int, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.error = error or ERROR_NAMES.get(status_code, "error")


def not_found(what: str) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, what)


def bad_request(detail: str) -> ApiError:
    return ApiError(status.HTTP_400_BAD_REQUEST, detail)


def command_failure(exc: CommandClientError) -> ApiError:
    """The command RPC itself failed (not the bot): which HTTP status that is."""
    code = GRPC_TO_HTTP.get(exc.code, status.HTTP_502_BAD_GATEWAY)
    return ApiError(code, f"command service: {exc.details}", error=f"grpc_{exc.code.name.lower()}")


def flatten(detail: Any, prefix: str = "") -> str:
    """DRF's nested error detail (dicts of lists) as one readable line: `field: message; ...`."""
    if isinstance(detail, Mapping):
        return "; ".join(flatten(value, f"{prefix}{key}." if key != "non_field_errors" else prefix)
                         for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(flatten(item, prefix) for item in detail)
    return f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF's handler (statuses, WWW-Authenticate) with our body; anything unexpected becomes a JSON 500."""
    response = drf_exception_handler(exc, dict(context))
    if response is None:
        logger.exception("api.unhandled view=%s error=%s", type(context.get("view")).__name__, type(exc).__name__)
        return Response(error_body("internal_error", "unexpected server error; see the server log"),
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    error = getattr(exc, "error", None) or ERROR_NAMES.get(response.status_code, "error")
    response.data = error_body(error, flatten(getattr(exc, "detail", response.data)))
    return response
