"""Payload handlers (one module per ClientMessage payload, registered in table.py) and the discovery hook.

grpc_handlers() reaches the servicer the Django way, through the crypto app config, which start_replica
fills: importing the servicer from here would be an import cycle (it builds on these handlers).
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
    from apps.crypto.apps import crypto_app

    from ..proto.wire import add_service

    servicer = crypto_app().replica_servicer()
    if server is not None:
        add_service(servicer, server)
        logger.info("grpc.service_registered service=CryptoStreamingService")
    return [(type(servicer), add_service)]
