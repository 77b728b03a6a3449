"""The Centrifugo publisher: a bounded in-memory queue and one background task that batches it out.

The only I/O of the package. Stream handlers call publish_* (a message copy and a deque
append, never a network wait); the sender task turns queued messages into envelopes, sends up
to `batch_size` of them per HTTP `batch` request (one `broadcast` command per publication, to
the client's channel and the shared one), and applies the retry policy, the circuit breaker
and the drop-oldest rule. Delivery is at-least-once on the wire and deduplicated by Centrifugo
through a per-publication idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from cent.client.session import AiohttpSession

from .base import PublisherStats, Spawn
from .breaker import BreakerState, CircuitBreaker
from .config import PublisherConfig
from .envelope import Kind, build_envelope, channels_for, envelope_type, idempotency_key
from .queue import DropOldestQueue
from .retry import Outcome, backoff_delay, classify_channel_codes, classify_error
from .throttle import LogThrottle
from .wire import batch_payload, broadcast_command, parse_batch_reply

logger = logging.getLogger(__name__)

LOG_INTERVAL = 10.0  # seconds between repeated drop / failure lines of the same reason
CHANNEL_CACHE_SIZE = 10_000  # client ids whose channel names are kept; cleared when full
_BREAKER_LOG: dict[BreakerState, tuple[int, str]] = {
    BreakerState.OPEN: (logging.WARNING, "centrifugo.breaker_open"),
    BreakerState.HALF_OPEN: (logging.INFO, "centrifugo.breaker_half_open"),
    BreakerState.CLOSED: (logging.INFO, "centrifugo.breaker_closed"),
}


@dataclass(slots=True)
class _Pending:
    """One publication on its way; `command` is built once and reused by every retry."""

    kind: Kind
    client_id: str
    message: Any
    received_at: float
    seq: int
    command: dict[str, Any] | None = None
    channels: int = 0
    settled: bool = False


class CentrifugoPublisher:
    """Publisher backed by Centrifugo's HTTP API (transport: cent's AiohttpSession)."""

    def __init__(
        self,
        config: PublisherConfig,
        replica_id: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        spawn: Spawn | None = None,
    ) -> None:
        self._config = config
        self._replica = replica_id
        self._instance = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._wall = wall_clock
        self._jitter = jitter
        self._queue: DropOldestQueue[_Pending] = DropOldestQueue(config.queue_size)
        self._breaker = CircuitBreaker(config.breaker_threshold, config.breaker_cooldown, clock)
        self._throttle = LogThrottle(LOG_INTERVAL, clock)
        self._muted = _muted_types(config)
        self._wake = asyncio.Event()
        self._close_requested = asyncio.Event()
        self._accepting = True
        self._counts = {"published": 0, "failed": 0, "dropped": 0}
        self._inflight: list[_Pending] = []
        self._channels: dict[str, list[str]] = {}
        self._auth_refused = False
        self._session: AiohttpSession | None = None
        self._spawn: Spawn = spawn or _create_task
        self._task: asyncio.Task[None] | None = None  # kept: close() gives it close_timeout to flush
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._on_error: dict[Outcome, Callable[[list[_Pending], BaseException], list[_Pending]]] = {
            Outcome.RETRY: self._on_transient,
            Outcome.REJECT: self._on_rejected,
            Outcome.AUTH: self._on_auth_refused,
        }

    # ------------------------------------------------------------------ called by stream code

    def publish_client_message(self, client_id: str, message: Any) -> None:
        self._enqueue(Kind.CLIENT_MESSAGE, client_id, message)

    def publish_command(self, client_id: str, command: Any) -> None:
        self._enqueue(Kind.COMMAND, client_id, command)

    def publish_ack(self, client_id: str, ack: Any) -> None:
        self._enqueue(Kind.ACK, client_id, ack)

    def stats(self) -> PublisherStats:
        return PublisherStats(queued=len(self._queue), **self._counts)

    @property
    def breaker_state(self) -> str:
        """closed / open / half_open: for health endpoints and metrics."""
        return self._breaker.state.value

    def _enqueue(self, kind: Kind, client_id: str, message: Any) -> None:
        """Copy the message (the caller may reuse it) and queue it; never raises, never waits."""
        try:
            if self._muted and envelope_type(kind, message) in self._muted:
                return
            snapshot = type(message)()
            snapshot.CopyFrom(message)
            item = _Pending(kind, str(client_id), snapshot, self._wall(), next(self._seq))
        except Exception:
            logger.warning("centrifugo.publish_invalid kind=%s client_id=%s", kind.value, client_id, exc_info=True)
            self._drop(1, "invalid_message")
            return
        self._hand_over(item)

    def _hand_over(self, item: _Pending) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._put(item)
            return
        try:
            loop.call_soon_threadsafe(self._put, item)  # the queue belongs to the loop thread
        except RuntimeError:  # that loop is closed: the replica is shutting down
            self._counts["dropped"] += 1

    def _put(self, item: _Pending) -> None:
        if not self._accepting:
            self._drop(1, "closed")
            return
        if self._queue.put(item) is not None:
            self._drop(1, "queue_full")
        if not self._wake.is_set():
            self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the HTTP session (aiohttp needs the running loop for it) and the sender task."""
        if self._task is not None:
            return
        if self._close_requested.is_set():
            raise RuntimeError("publisher was closed; build a new one")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._session = AiohttpSession(self._config.api_url, timeout=self._config.request_timeout)
        self._task = self._spawn(self._run(), "centrifugo-publisher")
        logger.info(
            "centrifugo.publisher_started url=%s replica=%s queue_size=%d batch_size=%d",
            self._config.api_url, self._replica, self._config.queue_size, self._config.batch_size,
        )

    def begin_close(self) -> None:
        """Step one of shutdown: stop accepting, tell the sender to flush what it has and exit."""
        self._accepting = False
        self._close_requested.set()
        self._wake.set()

    async def wait_closed(self) -> None:
        """Step two: give the flush `close_timeout` seconds, then cancel; count what was left as dropped."""
        self.begin_close()
        task, self._task = self._task, None
        if task is not None:
            await _finish_within(task, self._config.close_timeout)
        unsent = [item for item in self._inflight if not item.settled] + self._queue.drain()
        self._inflight = []
        self._drop(len(unsent), "shutdown", force_log=True)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            logger.info(
                "centrifugo.publisher_closed published=%d failed=%d dropped=%d",
                self._counts["published"], self._counts["failed"], self._counts["dropped"],
            )

    async def close(self) -> None:
        self.begin_close()
        await self.wait_closed()

    # ------------------------------------------------------------------ sender task

    async def _run(self) -> None:
        while await self._wait_for_work():
            batch = self._queue.take(self._config.batch_size)
            self._inflight = batch
            try:
                await self._deliver(batch)
            except Exception as exc:  # a bug must not end publishing for the life of the process
                logger.exception("centrifugo.sender_error error=%s", type(exc).__name__)
                self._fail([item for item in batch if not item.settled], "sender_error")
            self._inflight = []

    async def _wait_for_work(self) -> bool:
        """True once there is something to send (after lingering briefly to fill a batch)."""
        while not self._queue:
            if self._close_requested.is_set():
                return False
            self._wake.clear()
            await self._wake.wait()
        if len(self._queue) < self._config.batch_size:
            await self._pause(self._config.flush_interval)
        return True

    async def _deliver(self, batch: list[_Pending]) -> None:
        attempt = 0
        while batch:
            if not await self._breaker_permits():
                self._drop_items(batch, "shutdown")
                return
            batch = await self._attempt(batch)
            if batch:
                attempt += 1
                if attempt > self._config.max_retries:
                    self._fail(batch, "retries_exhausted")
                    return
                await self._pause(self._backoff(attempt))

    async def _breaker_permits(self) -> bool:
        """Wait out an open breaker; gives up (False) when shutdown is requested meanwhile."""
        while True:
            probing = self._breaker.state is BreakerState.HALF_OPEN
            if self._breaker.allow():
                if probing:
                    logger.info("centrifugo.breaker_half_open action=probe url=%s", self._config.api_url)
                return True
            if self._close_requested.is_set():
                return False
            await self._pause(max(self._breaker.retry_after(), 0.01))

    async def _attempt(self, batch: list[_Pending]) -> list[_Pending]:
        """One HTTP request for the batch; returns the publications to try again."""
        ready = self._prepare(batch)
        if not ready:
            return []
        try:
            codes = await self._send(ready)
        except Exception as exc:
            return self._on_error[classify_error(exc)](ready, exc)
        return self._settle(ready, codes)

    async def _send(self, batch: list[_Pending]) -> list[list[int | None]]:
        assert self._session is not None, "start() was not called"
        payload = batch_payload([item.command for item in batch if item.command is not None])
        text = await self._session.make_request(self._config.api_key, "batch", payload)
        return parse_batch_reply(text, [item.channels for item in batch])

    def _prepare(self, batch: list[_Pending]) -> list[_Pending]:
        ready = []
        for item in batch:
            if item.command is None:
                try:
                    self._build_command(item)
                except Exception:
                    logger.warning("centrifugo.envelope_failed seq=%d", item.seq, exc_info=True)
                    self._fail([item], "envelope_error")
                    continue
            ready.append(item)
        return ready

    def _build_command(self, item: _Pending) -> None:
        envelope = build_envelope(
            item.kind, item.client_id, item.message,
            replica=self._replica, seq=item.seq, received_at=item.received_at,
        )
        channels = self._channels.get(item.client_id)
        if channels is None:
            if len(self._channels) >= CHANNEL_CACHE_SIZE:
                self._channels.clear()
            channels = channels_for(item.client_id, self._config.channel_pattern, self._config.all_channel)
            self._channels[item.client_id] = channels
        item.command = broadcast_command(channels, envelope, idempotency_key(self._replica, self._instance, item.seq))
        item.channels = len(channels)
        item.message = None  # the envelope holds everything now

    # ------------------------------------------------------------------ outcomes

    def _settle(self, batch: list[_Pending], codes: Sequence[list[int | None]]) -> list[_Pending]:
        """Per-publication verdicts from the batch reply."""
        verdicts: dict[Outcome, list[_Pending]] = {Outcome.DELIVERED: [], Outcome.REJECT: [], Outcome.RETRY: []}
        for item, item_codes in zip(batch, codes, strict=True):
            verdicts[classify_channel_codes(item_codes)].append(item)
        self._publish_ok(verdicts[Outcome.DELIVERED])
        rejected_codes = [c for item_codes in codes for c in item_codes if c is not None]
        self._fail(verdicts[Outcome.REJECT], "rejected", codes=rejected_codes)
        if verdicts[Outcome.RETRY]:
            self._log_throttled(logging.WARNING, "centrifugo.publish_retry", len(verdicts[Outcome.RETRY]), "api_error")
        self._record_round(healthy=bool(verdicts[Outcome.DELIVERED] or verdicts[Outcome.REJECT]))
        return verdicts[Outcome.RETRY]

    def _on_transient(self, batch: list[_Pending], exc: BaseException) -> list[_Pending]:
        self._log_throttled(logging.WARNING, "centrifugo.publish_retry", len(batch), _reason(exc))
        self._record_round(healthy=False)
        return batch

    def _on_rejected(self, batch: list[_Pending], exc: BaseException) -> list[_Pending]:
        self._fail(batch, _reason(exc))
        self._record_round(healthy=True)
        return []

    def _on_auth_refused(self, batch: list[_Pending], exc: BaseException) -> list[_Pending]:
        """401: count as failed and pause for auth_retry_interval instead of hammering."""
        pause = self._config.auth_retry_interval
        level = logging.DEBUG if self._auth_refused else logging.ERROR  # clearly once, then quietly
        logger.log(
            level,
            "centrifugo.unauthorized status=401 url=%s count=%d action=pause_publishing retry_in=%.0fs "
            "hint=CENTRIFUGO_API_KEY_must_match_the_server_http_api_key",
            self._config.api_url, len(batch), pause,
        )
        self._auth_refused = True
        self._fail(batch, "unauthorized", log=False)
        before = self._breaker.state
        self._breaker.force_open(pause)
        self._log_breaker(before)
        return []

    def _record_round(self, healthy: bool) -> None:
        before = self._breaker.state
        if healthy:
            self._breaker.record_success()
            if self._auth_refused:
                self._auth_refused = False
                logger.info("centrifugo.auth_recovered url=%s", self._config.api_url)
        else:
            self._breaker.record_failure()
        self._log_breaker(before)

    # ------------------------------------------------------------------ counting and logging

    def _publish_ok(self, items: list[_Pending]) -> None:
        for item in items:
            item.settled = True
        self._counts["published"] += len(items)

    def _fail(self, items: list[_Pending], reason: str, codes: Sequence[int] = (), log: bool = True) -> None:
        if not items:
            return
        for item in items:
            item.settled = True
        self._counts["failed"] += len(items)
        if log:
            level = logging.WARNING if reason == "retries_exhausted" else logging.ERROR
            self._log_throttled(level, "centrifugo.publish_failed", len(items), reason, codes=codes)

    def _drop_items(self, items: list[_Pending], reason: str) -> None:
        for item in items:
            item.settled = True
        self._drop(len(items), reason)

    def _drop(self, count: int, reason: str, force_log: bool = False) -> None:
        if count <= 0:
            return
        self._counts["dropped"] += count
        self._log_throttled(logging.WARNING, "centrifugo.dropped", count, reason, force=force_log)

    def _log_throttled(
        self, level: int, event: str, count: int, reason: str, codes: Sequence[int] = (), force: bool = False
    ) -> None:
        due = count if force else self._throttle.admit(f"{event}:{reason}", count)
        if due is None:
            return
        logger.log(
            level, "%s reason=%s count=%d codes=%s total_failed=%d total_dropped=%d queued=%d",
            event, reason, due, ",".join(map(str, sorted(set(codes)))) or "-",
            self._counts["failed"], self._counts["dropped"], len(self._queue),
        )

    def _log_breaker(self, before: BreakerState) -> None:
        after = self._breaker.state
        if after is before:
            return
        level, event = _BREAKER_LOG[after]
        logger.log(
            level, "%s failures=%d retry_in=%.1fs url=%s",
            event, self._breaker.consecutive_failures, self._breaker.retry_after(), self._config.api_url,
        )

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self._config.backoff_base, self._config.backoff_max, self._jitter())

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake early when shutdown is requested so the flush can start."""
        if seconds <= 0 or self._close_requested.is_set():
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._close_requested.wait(), seconds)


def _create_task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=name)


def _muted_types(config: PublisherConfig) -> frozenset[str]:
    toggles = {"command": config.publish_commands, "command_ack": config.publish_acks}
    return frozenset(name for name, on in toggles.items() if not on)


def _reason(exc: BaseException) -> str:
    """e.g. CentTransportError_503, CentNetworkError, CentApiResponseError_107."""
    detail = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    return type(exc).__name__ + (f"_{detail}" if detail is not None else "")


async def _finish_within(task: asyncio.Task[None], timeout: float) -> None:
    """Let `task` finish on its own for `timeout` seconds, then cancel it and wait for it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except asyncio.CancelledError:
        task.cancel()
        raise
