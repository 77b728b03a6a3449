"""Everything one replica runs besides the gRPC server itself, with a two-step shutdown (drain, close)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from grpc_health.v1 import health, health_pb2

from apps.crypto.publishing import NullPublisher, Publisher, PublisherConfig, build_publisher
from apps.crypto.apps import crypto_app
from config.env import ENV, Environment

from . import metrics
from .auth import Authenticator
from .bus.bus import CommandBus
from .bus.cluster_view import LEASE_BEATS
from .bus.connect import BusRedis, connect_bus_redis
from .bus.keys import Keys
from .bus.link import BusUnavailable, RedisLink
from .bus.runner import BusRunner
from .config import CryptoStreamingConfig
from .ingest import build_ingest_buffer
from .ingest.buffer import IngestBuffer
from .records import CommandJournal
from .streaming.ports import Lifecycle, StreamPort, Unavailable
from .streaming.reasons import DRAINING
from .streaming.receipts import ReceiptSender
from .streaming.session import StreamSession
from .streaming.supervisor import StreamSupervisor
from .tasks import TaskOwner

logger = logging.getLogger(__name__)
SERVICE_NAME = "crypto.CryptoStreamingService"
READINESS, LIVENESS = "readiness", "liveness"
READY_SERVICES = ("", READINESS, SERVICE_NAME)
INGEST_CLOSE_TIMEOUT = 8.0  # seconds to store buffered client messages at exit (a hung database)
ACK_SETTLE = 1.0  # seconds a draining stream waits for acks of commands it already delivered
RECEIPT_SETTLE = 3.0  # seconds a draining stream waits for its buffered messages' receipts to be written
RECEIPT_PRUNE_EVERY = 3_600.0  # seconds between deletions of receipted keys past the retention


@dataclass
class Runtime:
    """A replica's long-lived parts; created inside the running loop."""

    config: CryptoStreamingConfig
    env: Environment
    bus: CommandBus
    runner: BusRunner
    publisher: Publisher
    authenticator: Authenticator
    journal: CommandJournal
    supervisor: StreamSupervisor
    health: health.aio.HealthServicer
    dispatch: Callable[[Any, Any], Awaitable[Any]]
    lifecycle: Lifecycle
    ingest: IngestBuffer
    receipts: ReceiptSender
    bus_redis: BusRedis
    tasks: TaskOwner = field(default_factory=TaskOwner)  # every background task of the replica
    draining: bool = False
    _closed: bool = field(default=False, repr=False)
    _health_updates: TaskOwner = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._health_updates = self.tasks.scope("health")

    @property
    def replica_id(self) -> str:
        return self.bus.me

    async def start(self) -> None:
        await self._set_health(LIVENESS, True)
        metrics.watch_publisher(self.publisher.stats, lambda: self.ingest.pending)
        await self.publisher.start()
        self.journal.start(self.tasks.scope("journal").spawn)
        self.ingest.start(self.tasks.scope("ingest").spawn)
        self.tasks.scope("ingest").spawn(self._forget_old_receipts(), "ingest-receipts-prune")
        self.supervisor.start()
        await self.runner.start()

    def on_bus_health(self, healthy: bool) -> None:
        """Called from the bus runner (sync): the health update runs as an owned task."""
        self._health_updates.spawn(self._set_ready(healthy and not self.draining), "health-update")

    async def _set_ready(self, serving: bool) -> None:
        for name in READY_SERVICES:
            await self._set_health(name, serving)

    async def _set_health(self, name: str, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(name, status)

    async def drain(self) -> None:
        """Stop taking streams, end ours spread over a jittered window, wait for them to detach."""
        self.draining = True
        await self._set_ready(False)
        sessions = list(self.bus.sessions.values())
        logger.info("drain.start replica=%s streams=%d window=%.1f", self.replica_id, len(sessions),
                    self.config.drain_window)
        await asyncio.gather(*(self._end_later(s) for s in sessions))
        await self._wait_detached(self.config.drain_window + 2.0)

    async def _end_later(self, session: StreamSession) -> None:
        """Jittered, so clients do not reconnect all at once; in-flight acks get a moment first."""
        await asyncio.sleep(random.uniform(0, self.config.drain_window))
        session.draining = True
        loop = asyncio.get_running_loop()
        until = loop.time() + ACK_SETTLE
        while session.inflight and not session.closed and loop.time() < until:
            await asyncio.sleep(0.02)
        if session.wants_receipts and not session.closed:
            await self._receipt_before_end(session)
        session.close(DRAINING)

    async def _receipt_before_end(self, session: StreamSession) -> None:
        """Store what the bot sent so far and write its receipts, so it has little to resend elsewhere.
        What arrives meanwhile is stored at close() and receipted when the bot resends it (stored once)."""
        try:
            async with asyncio.timeout(RECEIPT_SETTLE):
                await self.ingest.settle()
                self.receipts.send_now(session.client_id)
                while not session.idle and not session.closed:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            logger.warning("drain.receipts_late client_id=%s", session.client_id)

    async def _forget_old_receipts(self) -> None:
        """Hourly, on every replica (deleting twice is harmless): receipted keys past the retention go."""
        from asgiref.sync import sync_to_async
        from django.db import DatabaseError

        from .ingest.writer import prune_received

        prune = sync_to_async(prune_received)
        while True:
            await asyncio.sleep(RECEIPT_PRUNE_EVERY)
            try:
                deleted = await prune(datetime.now(UTC) - timedelta(seconds=self.config.ingest_receipt_retention))
            except DatabaseError as exc:
                logger.warning("ingest.receipts_prune_failed error=%s", type(exc).__name__)
            else:
                logger.info("ingest.receipts_pruned deleted=%d", deleted)

    async def _wait_detached(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while (self.bus.sessions or self.bus.detaching) and loop.time() < until:
            await asyncio.sleep(0.05)

    def stream_port(self) -> StreamPort:
        """The narrow view of this replica that a stream gets."""
        return StreamPort(
            replica_id=self.replica_id, config=self.config, authenticator=self.authenticator,
            attach=self._attach, detach=self.bus.detach, dispatch=self.dispatch,
            lifecycle=self.lifecycle, publisher=self.publisher, draining=lambda: self.draining)

    async def _attach(self, session: StreamSession) -> None:
        try:
            await self.bus.attach(session)
        except BusUnavailable as exc:  # the stream knows no bus: it is told in its own terms
            raise Unavailable(str(exc)) from exc

    async def close(self) -> None:
        """Run SHUTDOWN in order; a failing step is logged and the next ones still run."""
        if self._closed:
            return
        self._closed = True
        for name, step in SHUTDOWN:
            try:
                await step(self)
            except Exception:
                logger.exception("shutdown.step_failed replica=%s step=%s", self.replica_id, name)
        forget_runtime(self)


# The shutdown order, in one place. Each step runs after the previous one has finished.
SHUTDOWN: tuple[tuple[str, Callable[[Runtime], Awaitable[object]]], ...] = (
    ("streams", lambda rt: rt._wait_detached(2.0)),  # streams cancelled by server.stop still release claims
    ("ingest", lambda rt: rt.ingest.close(INGEST_CLOSE_TIMEOUT)),  # streams gone: store every buffered message
    ("supervisor", lambda rt: rt.supervisor.close()),
    ("bus", lambda rt: rt.runner.close()),  # listener, upkeep, replies being published
    ("health", lambda rt: rt._health_updates.close(grace=None)),  # updates already started finish
    ("journal", lambda rt: rt.journal.close()),
    ("publisher", lambda rt: rt.publisher.close()),  # flushes within its close_timeout
    ("redis", lambda rt: rt.bus_redis.aclose()),
    ("tasks", lambda rt: rt.tasks.close()),  # anything left over is cancelled
)


def build_runtime(config: CryptoStreamingConfig, env: Environment = ENV, **parts: Any) -> Runtime:
    """Wire a replica from config; `parts` replaces a piece (tests pass a different authenticator)."""
    from .handlers import command_ack, lifecycle
    from .handlers.clients import clients_of_type, forget_client
    from .handlers.dispatch import Dispatcher
    from .handlers.table import PARTS

    bus_redis = connect_bus_redis(env.redis_url, config.redis_socket_timeout, env.redis_password,
                                  env.redis_sentinel_password)
    redis = bus_redis.client
    link = RedisLink(redis, Keys(config.redis_key_prefix), env.replica_id, config.ownership_ttl,
                     config.client_disconnect_grace, sharded=bus_redis.sharded)
    publisher_config = PublisherConfig.from_env({  # CENTRIFUGO_* env vars win over the streaming config
        "CENTRIFUGO_CHANNEL_PATTERN": config.centrifugo_channel_pattern,
        "CENTRIFUGO_ALL_CHANNEL": config.centrifugo_publish_all_channel,
        **os.environ, "CENTRIFUGO_API_URL": env.centrifugo_api_url, "CENTRIFUGO_API_KEY": env.centrifugo_api_key})
    if not config.centrifugo_auto_publish_messages:
        parts.setdefault("publisher", NullPublisher())
    tasks = TaskOwner(env.replica_id)
    bus = CommandBus(link, config.client_disconnect_grace, config.send_timeout, tasks.scope("bus"))
    receipts = ReceiptSender(lambda: bus.sessions)
    ingest = build_ingest_buffer(config, PARTS, forget_client, receipts)
    runtime = Runtime(
        config=config, env=env, bus=bus, tasks=tasks,
        runner=BusRunner(bus, redis, config.replica_beat_interval, config.ownership_refresh, lambda ok: None,
                         tasks.scope("bus"), target=bus_redis.target.describe()),
        publisher=parts.pop("publisher", None) or build_publisher(publisher_config, env.replica_id,
                                                                  tasks.scope("publisher").spawn),
        authenticator=parts.pop("authenticator", None) or Authenticator(env.auth_enabled, env.operator_tokens),
        journal=CommandJournal(),
        supervisor=StreamSupervisor(config, lambda: bus.sessions, tasks.scope("supervisor")),
        health=health.aio.HealthServicer(),
        dispatch=Dispatcher(ingest, {command_ack.COMMAND_ACK.name: command_ack.forward_to(bus)}),
        # open/close bookkeeping is written directly, but after the client's buffered messages
        lifecycle=Lifecycle(ingest.behind(lifecycle.client_connected), ingest.behind(lifecycle.client_disconnected)),
        ingest=ingest, receipts=receipts, bus_redis=bus_redis,
    )
    runtime.runner.on_health = runtime.on_bus_health
    bus.on_late_ack = runtime.journal.late
    bus.fleet.client_types = clients_of_type
    bus.fleet.lease_max_age = LEASE_BEATS * config.replica_beat_interval
    crypto_app().runtime = runtime  # grpc_handlers() finds it there
    return runtime


def forget_runtime(runtime: Runtime) -> None:
    """A closed runtime is no longer the one grpc_handlers() would serve."""
    app = crypto_app()
    if app.runtime is runtime:
        app.runtime = app.servicer = None
