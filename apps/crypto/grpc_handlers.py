"""The discovery hook of the crypto app (`manage.py rungrpc` finds `{app}.grpc_handlers`).

It lives here, above the service packages it wires, not in grpc/services/handlers (the payload handlers
the servicer builds on), where it made an import cycle. No Django model imports at module level:
grpc_handlers() runs early during start-up.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def grpc_handlers(server: Any) -> list[tuple[type, Any]]:
    """Discovered by `manage.py rungrpc`; registers CryptoStreamingService on server (when given).

    The runtime it serves is the one build_runtime() left on the crypto app config (see build_servicer).
    Registered through proto.wire.add_service (same signature as the generated
    add_CryptoStreamingServiceServicer_to_server): request bytes that do not parse reach the servicer as
    a Malformed value, so they are answered INVALID_ARGUMENT instead of grpc.aio's UNKNOWN.
    """
    from .grpc.services.proto.wire import add_service
    from .grpc.services.server import CryptoStreamingService, build_servicer

    if server is not None:
        add_service(build_servicer(server), server)
        logger.info("grpc.service_registered service=CryptoStreamingService")
    return [(CryptoStreamingService, add_service)]
