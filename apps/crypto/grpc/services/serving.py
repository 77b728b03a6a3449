"""Serve the discovered gRPC handlers with health, optional reflection, and a graceful drain."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from django.apps import apps
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from apps.crypto.apps import crypto_app

from .config import CryptoStreamingConfig
from .metrics import RpcMetrics, serve_metrics
from .runtime import SERVICE_NAME, Runtime, build_runtime
from .server import CryptoStreamingService

logger = logging.getLogger(__name__)
HANDLER_MODULES = ("{app}.grpc.services.handlers", "{app}.grpc_handlers")


@dataclass
class Replica:
    """A running gRPC server with its runtime; stop() drains first."""

    server: grpc.aio.Server
    runtime: Runtime
    port: int

    async def stop(self) -> None:
        grace = self.runtime.config.shutdown_grace
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        await self.runtime.drain()
        await self.server.stop(max(0.5, until - loop.time() - 1.0))
        await self.runtime.close()
        logger.info("replica.stopped replica=%s", self.runtime.replica_id)


def server_options(config: CryptoStreamingConfig) -> list[tuple[str, int]]:
    """Channel args of the server. None of them is there for memory: per idle stream, gRPC's HTTP/2 and
    flow-control args (bdp_probe, lookahead_bytes, frame and write-buffer sizes, tcp read chunks) and
    channelz measured no difference; grpc.minimal_stack or an unlimited receive size save about 1.6 KB
    but drop the server's message-size filter, i.e. the max_message_bytes limit."""
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", config.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", config.keepalive_timeout_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # gRPC binds with SO_REUSEPORT by default: a second replica started on a port in use would silently
        # share it (connections split between the two). A clash must fail the start instead.
        ("grpc.so_reuseport", 0),
    ]
    if config.max_connection_age_ms:
        options += [("grpc.max_connection_age_ms", config.max_connection_age_ms),
                    ("grpc.max_connection_age_grace_ms", config.max_connection_age_grace_ms)]
    return options


class GenericOnly:
    """The server as handler registration sees it: methods are served through their generic handlers only.

    Why: for every registered method (add_registered_method_handlers) grpc.aio keeps a request task
    pending and, for each incoming RPC, waits on all of them at once (asyncio.wait, FIRST_COMPLETED): with
    this service's 4 methods and health's 3 that was 8 tasks' callbacks added and removed per call.
    Registration code (gRPC's generated add_*_to_server, proto.wire.add_service) always adds the generic
    handler too, so every method stays served; a generic handler is found by one dict lookup per service."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Dropped: the generic handler of the same methods, registered alongside, serves them."""


def discover_handlers() -> Iterator[Any]:
    """grpc_handlers() of every installed app that has one (the guide's discovery hook)."""
    for app in apps.get_app_configs():
        for template in HANDLER_MODULES:
            try:
                module = importlib.import_module(template.format(app=app.name))
            except ModuleNotFoundError:
                continue
            if hasattr(module, "grpc_handlers"):
                yield module.grpc_handlers


async def start_replica(host: str, port: int, config: CryptoStreamingConfig, reflect: bool = False,
                        **parts: Any) -> Replica:
    runtime = build_runtime(config, **parts)
    crypto_app().servicer = CryptoStreamingService(runtime)  # what handlers.grpc_handlers() registers
    server = grpc.aio.server(options=server_options(config), interceptors=[RpcMetrics()])
    registry = GenericOnly(server)
    for register in discover_handlers():
        register(registry)
    health_pb2_grpc.add_HealthServicer_to_server(runtime.health, registry)
    if reflect:
        names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, registry)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise RuntimeError(f"cannot bind {host}:{port}")
    await runtime.start()
    await server.start()
    serve_metrics(runtime.env.metrics_host or host, runtime.env.metrics_port)  # METRICS_HOST, else the gRPC host
    logger.info("replica.started replica=%s address=%s:%d auth=%s grpc_experiments=%s", runtime.replica_id, host,
                bound, "on" if runtime.env.auth_enabled else "off", ",".join(runtime.env.grpc_experiments) or "-")
    return Replica(server, runtime, bound)


async def serve_until_signal(replica: Replica) -> None:
    """Run until SIGTERM/SIGINT, then drain within the configured grace."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("replica.signal replica=%s draining grace=%.1f", replica.runtime.replica_id,
                replica.runtime.config.shutdown_grace)
    await replica.stop()
