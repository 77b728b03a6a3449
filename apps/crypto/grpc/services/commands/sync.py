"""A blocking facade over StreamingCommandClient for sync code (management commands, admin actions).

The async client lives on a private event loop in a daemon thread, so calls work from any thread:
one without a loop, or even one whose loop is running (that loop is blocked for the call's length).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, Self, TypeVar

from .base import AckT, CommandT, ResponseT, StreamingCommandClient

T = TypeVar("T")
ClientFactory = Callable[[], StreamingCommandClient[CommandT, ResponseT, AckT]]


class _LoopThread:
    """An event loop running forever in a daemon thread until stop()."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncCommandClient(Generic[CommandT, ResponseT, AckT]):
    """Blocking send/execute/dispatch; thread-safe; use `with` or call close()."""

    def __init__(self, factory: ClientFactory[CommandT, ResponseT, AckT]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._runner: _LoopThread | None = None
        self._client: StreamingCommandClient[CommandT, ResponseT, AckT] | None = None

    def send(self, client_id: str, command: CommandT, timeout: float | None = None) -> ResponseT:
        return self._run(lambda client: client.send(client_id, command, timeout))

    def execute(self, client_id: str, command: CommandT, timeout: float | None = None) -> AckT:
        return self._run(lambda client: client.execute(client_id, command, timeout))

    def dispatch(self, client_id: str, command: CommandT, *, wait: bool,
                 timeout: float | None = None) -> ResponseT | AckT:
        return self._run(lambda client: client.dispatch(client_id, command, wait=wait, timeout=timeout))

    def run(self, call: Callable[[StreamingCommandClient[CommandT, ResponseT, AckT]], Coroutine[Any, Any, T]]) -> T:
        """Any call of the async client, blocking (for example `run(lambda c: c.broadcast(...))`)."""
        return self._run(call)

    def _run(self, call: Callable[[StreamingCommandClient[CommandT, ResponseT, AckT]], Coroutine[Any, Any, T]]) -> T:
        runner = self._started()
        future = runner.submit(self._invoke(call))
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the RPC running
            raise

    async def _invoke(self, call: Callable[[StreamingCommandClient[CommandT, ResponseT, AckT]],
                                           Coroutine[Any, Any, T]]) -> T:
        if self._client is None:  # built on the private loop: grpc.aio channels bind to their loop
            self._client = self._factory()
        return await call(self._client)

    def _started(self) -> _LoopThread:
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread("sync-command-client")
            return self._runner

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None:
            return
        client, self._client = self._client, None
        if client is not None:
            runner.submit(client.close()).result()
        runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
