"""Payload handlers (one module per ClientMessage payload) and the discovery hook.

No Django model imports at module level: grpc_handlers() runs early during start-up.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def grpc_handlers(server: Any) -> list[tuple[type, Any]]:
    """Discovered by `manage.py rungrpc`; registers CryptoStreamingService on server (when given)."""
    from ..server import CryptoStreamingService, build_servicer
    from ...generated import crypto_streaming_pb2_grpc as pb2_grpc

    if server is not None:
        pb2_grpc.add_CryptoStreamingServiceServicer_to_server(build_servicer(server), server)
        logger.info("grpc.service_registered service=CryptoStreamingService")
    return [(CryptoStreamingService, pb2_grpc.add_CryptoStreamingServiceServicer_to_server)]
