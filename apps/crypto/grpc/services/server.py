"""CryptoStreamingService: the RPCs of the contract, thin over the runtime."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict

import grpc

from ..generated import common_pb2
from ..generated import crypto_streaming_pb2 as pb2
from ..generated import crypto_streaming_pb2_grpc as pb2_grpc
from . import metrics
from .errors import NotServing, rpc_boundary
from .bus.bus import DuplicateCommand
from .bus.broadcast import NOT_ACKED, Summary
from .bus.outcomes import Answer
from .commands.base import stamp
from .proto.validation import MAX_TEXT_CHARS, validate_broadcast, validate_client_id, validate_command
from .records import ack_outcome
from .runtime import Runtime
from .streaming.stream import ConnectFlow, metadata_of

logger = logging.getLogger(__name__)
DEADLINE_MARGIN = 0.25  # answer this long before the caller's deadline, so our ack reaches it under load


class CryptoStreamingService(pb2_grpc.CryptoStreamingServiceServicer):
    """Streams from bots in, commands from operators out, through any replica."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._connect = ConnectFlow(runtime.stream_port())

    async def ConnectClient(self, request_iterator: AsyncIterator[pb2.ClientMessage],
                            context: grpc.aio.ServicerContext) -> None:
        await self._connect.run(request_iterator, context)

    @rpc_boundary
    async def SendCommandToClient(self, request: pb2.SendCommandRequest,
                                  context: grpc.aio.ServicerContext) -> pb2.SendCommandResponse:
        operator, command = await self._accept(request, context, wait=False)
        delivery = await self.rt.bus.send(request.client_id, command, self._timeout(context, self.rt.config.send_timeout))
        self.rt.journal.delivery(command.command_id, delivery)
        metrics.child(metrics.COMMANDS, "send", command.WhichOneof("command"),
                      "delivered" if delivery.delivered else "not_delivered").inc()
        logger.info("command.sent client_id=%s command_id=%s operator=%s delivered=%s", request.client_id,
                    command.command_id, operator, delivery.delivered)
        return pb2.SendCommandResponse(success=delivery.delivered, error=delivery.error, command_id=command.command_id)

    @rpc_boundary
    async def ExecuteCommandSync(self, request: pb2.SendCommandRequest,
                                 context: grpc.aio.ServicerContext) -> common_pb2.CommandAck:
        operator, command = await self._accept(request, context, wait=True)
        timeout = self._timeout(context, self.rt.config.ack_timeout)
        started = time.perf_counter()
        answer = await self.rt.bus.execute(request.client_id, command, timeout)
        ack = answer.ack
        self._observe(command, answer, time.perf_counter() - started)
        self.rt.journal.delivery(command.command_id, answer.delivery)
        self.rt.journal.outcome(ack, timed_out=answer.timed_out)
        if not answer.from_stream:  # the client's own acks were published from its stream
            self.rt.publisher.publish_ack(request.client_id, ack)
        logger.info("command.executed client_id=%s command_id=%s operator=%s success=%s", request.client_id,
                    command.command_id, operator, ack.success)
        return ack

    @rpc_boundary
    async def BroadcastCommand(self, request: pb2.BroadcastCommandRequest,
                               context: grpc.aio.ServicerContext) -> None:
        """One command to every client the selector matches: a result per targeted client, then the summary."""
        operator = self.rt.authenticator.authenticate_operator(metadata_of(context))
        if not self.rt.runner.healthy:
            raise NotServing("command bus unavailable: redis unreachable")
        validate_broadcast(request, max_text_chars=self.rt.config.max_text_chars)
        command = pb2.DjangoCommand()
        command.CopyFrom(request.command)
        command.retry = False
        stamp(command)
        if request.command.command_id and not await self.rt.bus.link.reserve(command.command_id,
                                                                              self.rt.config.command_id_ttl):
            raise DuplicateCommand(f"command_id {command.command_id!r} was used before; leave command_id empty "
                                   "and the server generates a fresh one")
        timeout = self._timeout(context, self.rt.config.ack_timeout)
        accepted_at, replica, journal = datetime.now(UTC), self.rt.replica_id, self.rt.journal
        payload = {"kind": command.WhichOneof("command") or "",
                   "command": MessageToDict(command, preserving_proto_field_name=True)}
        logger.info("broadcast.accepted broadcast_id=%s operator=%s timeout=%.2f", command.command_id, operator, timeout)

        async def on_result(client_id: str, ack: common_pb2.CommandAck, routed_to: str) -> None:
            timed_out = ack.error.startswith(NOT_ACKED)
            metrics.BROADCAST_RESULTS.labels(ack_outcome(ack.success, timed_out).value).inc()
            journal.broadcast_copy(client_id, payload, ack, sent_by=operator, replica=replica, routed_to=routed_to,
                                   accepted_at=accepted_at, timed_out=timed_out)
            await context.write(pb2.BroadcastResult(client=pb2.BroadcastClientResult(client_id=client_id, ack=ack)))

        metrics.BROADCASTS.labels(selector_way(request.selector)).inc()
        started, summary, ending = time.perf_counter(), Summary(command.command_id), "finished"
        try:
            await self.rt.bus.fleet.broadcast(request.selector, command, timeout, on_result, summary)
        except asyncio.CancelledError:
            ending = "cancelled"  # the caller went away: the record keeps what was known by then
            raise
        finally:
            metrics.BROADCAST_SECONDS.observe(time.perf_counter() - started)
            metrics.BROADCAST_LOST_REPLICAS.inc(len(summary.lost))
            counts = {"targeted": summary.targeted, "acked": summary.acked, "failed": summary.failed,
                      "replicas": summary.replicas, "lost_replicas": summary.lost, "ending": ending}
            journal.broadcast(command.command_id, MessageToDict(request.selector, preserving_proto_field_name=True),
                              payload, counts, sent_by=operator, replica=replica, accepted_at=accepted_at,
                              finished_at=datetime.fromtimestamp(summary.finished or time.time(), UTC))
            logger.info("broadcast.%s broadcast_id=%s targeted=%d acked=%d failed=%d replicas=%d lost=%d", ending,
                        command.command_id, summary.targeted, summary.acked, summary.failed,
                        len(summary.replicas), len(summary.lost))
        await context.write(pb2.BroadcastResult(summary=pb2.BroadcastSummary(
            broadcast_id=command.command_id, targeted=summary.targeted, acked=summary.acked, failed=summary.failed)))

    def _observe(self, command: pb2.DjangoCommand, answer: Answer, elapsed: float) -> None:
        outcome = ack_outcome(answer.ack.success, answer.timed_out)
        metrics.child(metrics.COMMANDS, "execute", command.WhichOneof("command"), outcome.value).inc()
        if answer.from_stream:
            route = "same" if answer.delivery.routed_to == self.rt.replica_id else "cross"
            metrics.child(metrics.ACK_LATENCY, route).observe(elapsed)

    async def _accept(self, request: pb2.SendCommandRequest, context: grpc.aio.ServicerContext,
                      wait: bool) -> tuple[str, pb2.DjangoCommand]:
        operator = self.rt.authenticator.authenticate_operator(metadata_of(context))
        if not self.rt.runner.healthy:
            raise NotServing("command bus unavailable: redis unreachable")
        command = prepare_command(request, self.rt.config.max_text_chars)
        if request.command.command_id and not await self.rt.bus.link.reserve(command.command_id,
                                                                              self.rt.config.command_id_ttl):
            raise DuplicateCommand(f"command_id {command.command_id!r} was used before; leave command_id empty "
                                   "and the server generates a fresh one")
        self.rt.journal.accepted(request.client_id, command, operator, self.rt.replica_id, wait)
        return operator, command

    @staticmethod
    def _timeout(context: grpc.aio.ServicerContext, default: float) -> float:
        remaining = context.time_remaining()
        return default if remaining is None else max(0.0, min(default, remaining - DEADLINE_MARGIN))


def selector_way(selector: pb2.ClientSelector) -> str:
    """The selector's one way (validated), a bounded metric label."""
    return "client_ids" if selector.client_ids else "client_type" if selector.client_type else "all_connected"


def prepare_command(request: pb2.SendCommandRequest, max_text_chars: int = MAX_TEXT_CHARS) -> pb2.DjangoCommand:
    """Validate a command request; a copy with command_id (fresh when empty) and timestamp filled in.
    The caller-chosen `retry` flag is cleared: only the service marks a re-sent command."""
    validate_client_id(request.client_id)
    validate_command(request.command, max_text_chars=max_text_chars)
    command = pb2.DjangoCommand()
    command.CopyFrom(request.command)
    command.retry = False
    return stamp(command)

