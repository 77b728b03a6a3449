"""Payload handlers (one module per ClientMessage payload) and the discovery hook.

No Django model imports at module level: grpc_handlers() runs early during start-up.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def grpc_handlers(server: Any) -> list[tuple[type, Any]]:
    """Discovered by `manage.py rungrpc`; registers CryptoStreamingService on server (when given).

    Registered through proto.wire.add_service (same signature as the generated
    add_CryptoStreamingServiceServicer_to_server): request bytes that do not parse reach the servicer as
    a Malformed value, so they are answered INVALID_ARGUMENT instead of grpc.aio's UNKNOWN.
    """
    from ..proto.wire import add_service
    from ..server import CryptoStreamingService, build_servicer

    if server is not None:
        add_service(build_servicer(server), server)
        logger.info("grpc.service_registered service=CryptoStreamingService")
    return [(CryptoStreamingService, add_service)]
