"""Operator side: ExecuteCommandSync calls through any replica, each ending classified."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .procs import OPERATOR_TOKEN

EXECUTE_METHOD = "/crypto.CryptoStreamingService/ExecuteCommandSync"
ACKED = "acked"
# Lean caller: no retry buffering (every call has a deadline and its ending is counted as is).
CALLER_OPTIONS = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]


@dataclass(frozen=True)
class Ending:
    """How one call ended: `kind` is acked, error_ack:<cause> or rpc:<STATUS>."""

    kind: str
    seconds: float
    command_id: str
    finished: float  # monotonic
    target: str = ""
    client_id: str = ""
    error: str = ""

    def describe(self, since: float) -> dict[str, object]:
        return {"command_id": self.command_id, "client_id": self.client_id, "target": self.target,
                "kind": self.kind, "error": self.error, "seconds": round(self.seconds, 4),
                "started_at_s": round(self.finished - self.seconds - since, 4)}

    @property
    def acked(self) -> bool:
        return self.kind == ACKED

    @property
    def lost(self) -> bool:
        """Nobody could say what became of it: the caller's deadline passed, or the server's ack wait."""
        return self.kind in ("rpc:DEADLINE_EXCEEDED", "error_ack:timed_out")


def account(kind: str) -> str:
    """acked / explicit_error / lost: the rollout and failover accounting."""
    if kind == ACKED:
        return "acked"
    if kind in ("rpc:DEADLINE_EXCEEDED", "error_ack:timed_out"):
        return "lost"
    return "explicit_error"


def error_cause(error: str) -> str:
    text = error.lower()
    for needle, cause in (("timed out", "timed_out"), ("not connected", "not_connected"),
                          ("disconnected", "disconnected"), ("did not confirm", "unconfirmed"),
                          ("not reached", "not_reached"), ("did not reconnect", "no_reconnect")):
        if needle in text:
            return cause
    return "other"


class Commands:
    """A few channels per replica target; ExecuteCommandSync with a bearer token."""

    def __init__(self, channels_per_target: int = 2, token: str = OPERATOR_TOKEN, caller_ids: bool = True) -> None:
        """caller_ids: each command carries our own command_id (the service reserves it in Redis, one round
        trip, so a retry is refused as a duplicate); False leaves it empty and the service generates one."""
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.caller_ids = caller_ids
        self.per_target = channels_per_target
        self._methods: dict[str, list[grpc.aio.UnaryUnaryMultiCallable]] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._ids = itertools.count()
        self._rr = itertools.count()
        self.run_id = f"{int(time.time() * 1000) % 10**9:09d}"

    def _method(self, target: str) -> grpc.aio.UnaryUnaryMultiCallable:
        if target not in self._methods:
            methods = []
            for i in range(self.per_target):
                channel = grpc.aio.insecure_channel(target, options=CALLER_OPTIONS + [("bench.operator", i)])
                self._channels.append(channel)
                methods.append(channel.unary_unary(EXECUTE_METHOD,
                                                   request_serializer=pb2.SendCommandRequest.SerializeToString,
                                                   response_deserializer=common_pb2.CommandAck.FromString))
            self._methods[target] = methods
        methods = self._methods[target]
        return methods[next(self._rr) % len(methods)]

    def new_command_id(self) -> str:
        return f"bench-{self.run_id}-{next(self._ids)}"

    async def execute(self, target: str, client_id: str, timeout: float = 10.0) -> Ending:
        command_id = self.new_command_id() if self.caller_ids else ""
        command = pb2.DjangoCommand(command_id=command_id, request_status=pb2.RequestStatusCommand())
        request = pb2.SendCommandRequest(client_id=client_id, command=command)
        began = time.perf_counter()
        error = ""
        try:
            ack = await self._method(target)(request, metadata=self.metadata, timeout=timeout)
            kind = ACKED if ack.success else f"error_ack:{error_cause(ack.error)}"
            error, command_id = ack.error, ack.command_id
        except grpc.aio.AioRpcError as exc:
            kind = f"rpc:{exc.code().name}"
            error = exc.details() or ""
        return Ending(kind, time.perf_counter() - began, command_id, time.monotonic(), target, client_id, error)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels), return_exceptions=True)


@dataclass
class Load:
    """Closed-loop background command load: `concurrency` workers, random client, random live replica."""

    commands: Commands
    clients: list[str]
    targets: Callable[[], list[str]]
    timeout: float = 10.0
    endings: list[Ending] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, concurrency: int) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(concurrency)]

    async def _worker(self) -> None:
        while not self._stop.is_set():
            targets = self.targets()
            if not targets:
                await asyncio.sleep(0.05)
                continue
            ending = await self.commands.execute(random.choice(targets), random.choice(self.clients), self.timeout)
            self.endings.append(ending)
            if not ending.acked:
                await asyncio.sleep(0.01)  # a failing cluster is not hammered in a tight loop

    async def stop(self) -> None:
        """Let every call in flight finish (each is bounded by its deadline)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.kind for e in self.endings))

    def accounting(self) -> dict[str, int]:
        totals = Counter({"acked": 0, "explicit_error": 0, "lost": 0})
        totals.update(account(e.kind) for e in self.endings)
        return dict(totals)
