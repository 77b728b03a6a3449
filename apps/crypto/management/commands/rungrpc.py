"""`manage.py rungrpc`: serve CryptoStreamingService (and any app's grpc_handlers) until SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.crypto.grpc.services.bus.redis_url import InvalidRedisUrl
from apps.crypto.grpc.services.config import load_config
from apps.crypto.grpc.services.serving import serve_until_signal, start_replica
from config.env import ENV

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the gRPC streaming server (health, optional reflection, graceful drain on SIGTERM)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=ENV.grpc_host)
        parser.add_argument("--port", type=int, default=ENV.grpc_port)
        parser.add_argument("--reflection", action="store_true", help="enable gRPC server reflection")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            asyncio.run(self._serve(options["host"], options["port"], options["reflection"]))
        except InvalidRedisUrl as exc:  # named precisely, before anything was started
            raise CommandError(str(exc)) from None

    async def _serve(self, host: str, port: int, reflect: bool) -> None:
        replica = await start_replica(host, port, load_config(), reflect)
        freeze_startup_heap()
        await serve_until_signal(replica)


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (Django, gRPC, the app's modules: some 300,000 objects) out of
    the cyclic garbage collector's reach. Why: each full collection scanned them all again, a pause of
    about 200 ms with 1,000 streams; RSS is unchanged. Cyclic garbage of start-up is collected first."""
    collected = gc.collect()
    gc.freeze()
    logger.info("gc.frozen objects=%d collected=%d", gc.get_freeze_count(), collected)
