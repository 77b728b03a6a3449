"""Fleet commands (BroadcastCommand): one command to many clients, O(replicas) bus messages, every ack back.

The accepting replica (the caller's) reads the live replicas' leases and publishes ONE `bcast` envelope to
each other replica's channel, in one Lua call (FAN_OUT; a cluster sends one SPUBLISH per replica), carrying
the command, the selector, the time left and the broadcast's id. A per-replica channel and not a shared
broadcast channel: the replicas already listen on theirs, and each publish's receiver count tells the
caller which replicas it actually asked (a replica with no subscriber is gone: it has nothing to report).

Each replica (the caller's own part runs in-process) picks its matching local streams *at receipt*
(client_ids it holds / client_type, from the database / all), gives each bot its own command_id
(`bot_command_id`), offers the copies to the streams and collects their acks locally, the way an
ExecuteCommandSync for a local stream is settled (session.inflight -> this replica -> the waiting future):
no Redis call per bot. It reports in batches on the broadcast's list (`crypto:bcast:{id}`, one Lua
RPUSH+PEXPIRE per batch): the first batch, after at most FIRST_BATCH seconds, names its targets; later
ones come at most every BATCH_WINDOW seconds while acks arrive; the last says done. The caller pops every
waiting batch in one BLMPOP. With bots that ack within FIRST_BATCH a broadcast costs
1 (leases) + 1 (FAN_OUT) + 1 per replica (its batch) + about 1 BLMPOP per replica + 1 (DEL).

Every targeted client gets exactly one result: its ack; else success=false with the reason ("not acked
before the deadline", the stream that ended, a slow reader's queue). A replica that stops answering
(its channel has no subscriber any more) has its reported targets failed at once. The caller's deadline
bounds every part; a caller that goes away sends `bcancel`, which withdraws the copies not yet written.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from apps.crypto.limits import ID_MAX as MAX_COMMAND_ID

from ...generated import common_pb2
from ...generated import crypto_streaming_pb2 as pb2
from .link import BusUnavailable
from .messages import Envelope, EnvelopeKind
from .outcomes import failure_ack

logger = logging.getLogger(__name__)
FIRST_BATCH = 0.05  # a replica's first batch (with its targets) goes out after at most this
BATCH_WINDOW = 0.05  # later results are gathered this long into one batch
REPLY_MARGIN = 0.15  # a replica ends its part this long before the caller's deadline, so its last batch arrives
PROBE_EVERY = 0.5  # a replica silent this long is checked: still subscribed?
NOT_ACKED = "not acked before the deadline"
NOT_CONNECTED = "not connected"

ClientTypes = Callable[[str, list[str]], Awaitable[set[str]]]  # (client_type, client_ids) -> those of that type
OnResult = Callable[[str, common_pb2.CommandAck, str], Awaitable[None]]  # (client_id, ack, replica)


def bot_command_id(broadcast_id: str, client_id: str) -> str:
    """The bot's own command_id: "<broadcast_id>:<client_id>", or a digest of the client_id when too long."""
    plain = f"{broadcast_id}:{client_id}"
    if len(plain) <= MAX_COMMAND_ID:  # CommandRecord.command_id's max_length
        return plain
    return f"{broadcast_id}:{hashlib.sha1(client_id.encode()).hexdigest()[:24]}"


def encode_batch(replica: str, targets: list[str] | None, results: list[tuple[str, common_pb2.CommandAck]],
                 done: bool) -> str:
    data: dict[str, Any] = {"r": replica, "a": [[c, base64.b64encode(a.SerializeToString()).decode()]
                                                 for c, a in results]}
    if targets is not None:
        data["t"] = targets
    if done:
        data["d"] = 1
    return json.dumps(data, separators=(",", ":"))


@dataclass
class Batch:
    replica: str
    targets: list[str] | None
    results: list[tuple[str, common_pb2.CommandAck]]
    done: bool


def decode_batch(raw: str) -> Batch:
    data = json.loads(raw)
    results = [(c, common_pb2.CommandAck.FromString(base64.b64decode(a))) for c, a in data.get("a", [])]
    return Batch(data["r"], data.get("t"), results, bool(data.get("d")))


@dataclass
class Summary:
    broadcast_id: str
    targeted: int = 0
    acked: int = 0
    failed: int = 0
    replicas: list[str] = field(default_factory=list)  # the replicas asked
    lost: list[str] = field(default_factory=list)  # asked replicas that went away mid-broadcast
    started: float = field(default_factory=time.time)
    finished: float = 0.0


@dataclass
class _Part:
    """What the caller knows of one replica's part."""

    targets: set[str] | None = None
    reported: set[str] = field(default_factory=set)
    done: bool = False
    heard: float = field(default_factory=time.monotonic)


class FleetCommands:
    """Both sides of a broadcast on one replica; `bus` is its CommandBus (sessions, offers, ack waits)."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.client_types: ClientTypes = _no_types  # the runtime wires the database lookup
        self.lease_max_age = 15.0  # a lease renewed within this is a live replica (3 beats)
        self._parts: dict[str, asyncio.Task[None]] = {}  # broadcast_id -> this replica's running part

    # the caller's side -------------------------------------------------------------
    async def broadcast(self, selector: pb2.ClientSelector, command: pb2.DjangoCommand, timeout: float,
                        on_result: OnResult) -> Summary:
        """Run a broadcast; on_result gets exactly one result per targeted client. Ends by the timeout."""
        from .cluster_view import live_leases  # the view module reads config at import; only needed here

        bus, link = self.bus, self.bus.link
        broadcast_id = command.command_id
        deadline = time.monotonic() + timeout
        summary = Summary(broadcast_id)
        leases = await live_leases(link, self.lease_max_age)
        others = sorted({lease["replica"] for lease in leases} - {bus.me})
        request = pb2.BroadcastCommandRequest(selector=selector, command=command)
        envelope = Envelope(EnvelopeKind.BROADCAST, command_id=broadcast_id, reply_to=bus.me, sender=bus.me,
                            body=request.SerializeToString(), timeout=round(timeout, 3))
        reached = await link.fan_out(others, envelope)
        asked = [bus.me] + [r for r in others if reached.get(r, 0) > 0]
        summary.replicas = asked
        parts = {replica: _Part() for replica in asked}
        batches: asyncio.Queue[Batch] = asyncio.Queue()
        tasks = [asyncio.create_task(self._serve(request, broadcast_id, timeout, batches.put_nowait), name="bcast-local")]
        if len(asked) > 1:
            tasks.append(asyncio.create_task(self._read_batches(broadcast_id, deadline, batches, len(asked) - 1), name="bcast-read"))
        reported: set[str] = set()

        async def report(client_id: str, ack: common_pb2.CommandAck, replica: str) -> None:
            if client_id in reported:
                return  # exactly one result per client (a client that moved is reported once)
            reported.add(client_id)
            summary.targeted += 1
            if ack.success:
                summary.acked += 1
            else:
                summary.failed += 1
            await on_result(client_id, ack, replica)

        finished = False
        try:
            probed = time.monotonic()
            while not all(p.done for p in parts.values()) and (left := deadline - time.monotonic()) > 0:
                if time.monotonic() - probed >= PROBE_EVERY:  # even while other replicas keep answering
                    probed = time.monotonic()
                    await self._probe(parts, summary, report)
                    continue
                try:
                    batch = await asyncio.wait_for(batches.get(), min(left, PROBE_EVERY))
                except TimeoutError:
                    continue
                part = parts.get(batch.replica)
                if part is None:
                    continue
                part.heard = time.monotonic()
                if batch.targets is not None:
                    part.targets = set(batch.targets)
                for client_id, ack in batch.results:
                    part.reported.add(client_id)
                    await report(client_id, ack, batch.replica)
                part.done = part.done or batch.done
            for replica, part in parts.items():  # the deadline: whatever is still open failed
                for client_id in sorted((part.targets or set()) - part.reported):
                    await report(client_id, failure_ack(bot_command_id(broadcast_id, client_id), NOT_ACKED), replica)
            for client_id in _asked_ids(selector):
                if client_id not in reported:  # no replica held it when the broadcast arrived
                    await report(client_id, failure_ack(bot_command_id(broadcast_id, client_id),
                                                        f"client {client_id} is {NOT_CONNECTED}"), "")
            finished = True
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._clean_up(broadcast_id, asked if not finished else [], len(asked) > 1)
        summary.finished = time.time()
        return summary

    async def _probe(self, parts: dict[str, _Part], summary: Summary, report: OnResult) -> None:
        """Replicas silent for a while: one that left its channel is gone, its open targets fail now."""
        now = time.monotonic()
        for replica, part in parts.items():
            if part.done or replica == self.bus.me or now - part.heard < PROBE_EVERY:
                continue
            try:
                alive = await self.bus.link.listening(replica)
            except BusUnavailable:
                continue
            if alive:
                part.heard = now
                continue
            logger.info("broadcast.replica_gone broadcast_id=%s replica=%s", summary.broadcast_id, replica)
            summary.lost.append(replica)
            part.done = True
            for client_id in sorted((part.targets or set()) - part.reported):
                await report(client_id, failure_ack(bot_command_id(summary.broadcast_id, client_id),
                                                    f"replica {replica} went away before the ack"), replica)

    async def _read_batches(self, broadcast_id: str, deadline: float, batches: asyncio.Queue[Batch],
                            remote: int) -> None:
        """Pops batches until every remote part said done (no pop left blocking) or the deadline."""
        finished = 0
        while finished < remote and (left := deadline - time.monotonic()) > 0:
            try:
                raws = await self.bus.link.take_batches(broadcast_id, min(left, PROBE_EVERY))
            except BusUnavailable as exc:
                logger.warning("broadcast.read_failed broadcast_id=%s error=%s", broadcast_id, exc)
                await asyncio.sleep(0.1)
                continue
            for raw in raws:
                try:
                    batch = decode_batch(raw)
                    finished += batch.done
                    batches.put_nowait(batch)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("broadcast.bad_batch broadcast_id=%s error=%s", broadcast_id, exc)

    async def _clean_up(self, broadcast_id: str, cancel: list[str], remote: bool) -> None:
        """Always drop the result list; a broadcast that did not finish withdraws its undelivered copies."""
        link = self.bus.link
        try:
            if cancel:
                others = [r for r in cancel if r != self.bus.me]
                await link.fan_out(others, Envelope(EnvelopeKind.BROADCAST_CANCEL, command_id=broadcast_id,
                                                    sender=self.bus.me))
            if remote:
                await link.drop_batches(broadcast_id)
        except BusUnavailable as exc:
            logger.warning("broadcast.cleanup_failed broadcast_id=%s error=%s", broadcast_id, exc)

    # every replica's side -----------------------------------------------------------
    def on_request(self, envelope: Envelope) -> None:
        """A `bcast` envelope: run our part as an owned task (the listener must not wait for it)."""
        try:
            request = pb2.BroadcastCommandRequest.FromString(envelope.body)
        except Exception as exc:  # a corrupt envelope: nothing to answer
            logger.warning("broadcast.bad_request error=%s", type(exc).__name__)
            return
        broadcast_id, link = envelope.command_id, self.bus.link

        def post(batch: Batch) -> Awaitable[None]:
            return link.post_batch(broadcast_id, encode_batch(batch.replica, batch.targets, batch.results, batch.done))

        self.bus.own(self._serve(request, broadcast_id, envelope.timeout - REPLY_MARGIN, post))

    def on_cancel(self, envelope: Envelope) -> None:
        task = self._parts.get(envelope.command_id)
        if task is not None:
            logger.info("broadcast.cancelled broadcast_id=%s", envelope.command_id)
            task.cancel()

    async def _serve(self, request: pb2.BroadcastCommandRequest, broadcast_id: str, timeout: float,
                     post: Callable[[Batch], Awaitable[None] | None]) -> None:
        """This replica's part, registered so a `bcancel` can stop it."""
        task = asyncio.current_task()
        assert task is not None
        self._parts[broadcast_id] = task
        try:
            await self._deliver(request, broadcast_id, time.monotonic() + max(0.0, timeout), post)
        except asyncio.CancelledError:
            pass  # the caller went away: nothing to report
        except BusUnavailable as exc:
            logger.warning("broadcast.post_failed broadcast_id=%s error=%s", broadcast_id, exc)
        finally:
            if self._parts.get(broadcast_id) is task:
                del self._parts[broadcast_id]

    async def _select(self, selector: pb2.ClientSelector) -> list[Any]:
        """The matching streams held here now (the broadcast's targets on this replica)."""
        sessions = self.bus.sessions
        if selector.client_ids:
            chosen = [s for c in dict.fromkeys(selector.client_ids) if (s := sessions.get(c)) is not None]
        elif selector.client_type:
            live = [c for c, s in sessions.items() if not s.closed]
            typed = await self.client_types(selector.client_type, live) if live else set()
            chosen = [s for c in live if c in typed and (s := sessions.get(c)) is not None]
        elif selector.all_connected:
            chosen = list(sessions.values())
        else:
            chosen = []
        return [s for s in chosen if not s.closed]

    async def _deliver(self, request: pb2.BroadcastCommandRequest, broadcast_id: str, deadline: float,
                       post: Callable[[Batch], Awaitable[None] | None]) -> None:
        bus = self.bus
        sessions = await self._select(request.selector)
        targets = [s.client_id for s in sessions]
        results: list[tuple[str, common_pb2.CommandAck]] = []
        waits: dict[asyncio.Future[common_pb2.CommandAck], tuple[str, str, Any]] = {}
        try:
            for session in sessions:
                command = pb2.DjangoCommand()
                command.CopyFrom(request.command)
                command.command_id = bot_command_id(broadcast_id, session.client_id)
                waiting = bus.wait_ack(command.command_id, session.client_id)
                if waiting is None:  # that command_id is in flight already
                    results.append((session.client_id, failure_ack(command.command_id, "command_id already in flight")))
                elif bus.offer_awaited(session, command):
                    waits[waiting] = (session.client_id, command.command_id, session)
                else:
                    bus.stop_waiting(command.command_id)
                    reason = session.close_reason.details if session.close_reason else "stream not taking commands"
                    results.append((session.client_id, failure_ack(command.command_id, f"stream ended: {reason}")))
            first, until = True, time.monotonic() + FIRST_BATCH
            while True:
                if waits and not first:  # wait for one result, then gather a batch behind it
                    await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()),
                                       return_when=asyncio.FIRST_COMPLETED)
                    until = time.monotonic() + BATCH_WINDOW
                if waits:
                    await asyncio.wait(waits, timeout=max(0.0, min(until, deadline) - time.monotonic()))
                for future in [f for f in waits if f.done()]:
                    client_id, _, _ = waits.pop(future)
                    results.append((client_id, future.result()))
                if time.monotonic() >= deadline:
                    for client_id, command_id, session in waits.values():
                        bus.stop_waiting(command_id, expired=True)
                        unread = any(c.command_id == command_id for c in session.pending())
                        error = NOT_ACKED + (" (never read: the bot is not reading its stream)" if unread else "")
                        results.append((client_id, failure_ack(command_id, error)))
                    waits.clear()
                outcome = post(Batch(bus.me, targets if first else None, results, done=not waits))
                if outcome is not None:
                    await outcome
                first, results = False, []
                if not waits:
                    return
        finally:
            for client_id, command_id, session in waits.values():  # cancelled: withdraw what was not written
                bus.stop_waiting(command_id)
                session.withdraw(command_id)
                session.inflight.pop(command_id, None)


async def _no_types(client_type: str, client_ids: list[str]) -> set[str]:
    return set()


def _asked_ids(selector: pb2.ClientSelector) -> Iterable[str]:
    return dict.fromkeys(selector.client_ids)
