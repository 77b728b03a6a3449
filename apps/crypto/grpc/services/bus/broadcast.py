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
no Redis call per bot. Before delivering it records its targets in the broadcast's targets hash (one Lua
HSET+PEXPIRE; the caller reads it only if this replica dies). Then it posts results on the broadcast's list
(`crypto:bcast:{id}`, one Lua RPUSH+PEXPIRE per batch): once when every ack is in, or every PROGRESS_EVERY
seconds while acks arrive; the first batch names the targets again, the last says done. The caller pops
every waiting batch in one BLMPOP; the popped-empty list is gone, no DEL. So a broadcast costs
1 (leases) + 1 (FAN_OUT) + 2 per other replica (targets, results) + about 1 BLMPOP per other replica.

Named clients (client_ids) that no replica held when the broadcast came go the single-command way
(`_direct`): a client in its grace window gets the copy when it reconnects, or is reported failed.

Every targeted client gets exactly one result: its ack; else success=false with the reason ("not acked
before the deadline", the stream that ended, a slow reader's queue). A replica that stops answering
(its channel has no subscriber any more) has its targets failed at once. The caller's deadline
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
BATCH_WINDOW = 0.05  # the caller's own replica hands its results on this often (in-process: no Redis call)
PROGRESS_EVERY = 1.0  # another replica posts its results this often while acks arrive, and once when done
REPLY_MARGIN = 0.15  # a replica ends its part this long before the caller's deadline, so its last batch arrives
TARGETS_KEPT = 5.0  # a replica's targets outlive the broadcast's deadline by this in Redis
PROBE_EVERY = 0.5  # a replica silent this long is checked: still subscribed?
DIRECT = ""  # the part of named clients no replica held, each sent the single-command way
DIRECT_MARGIN = 0.05  # those end this long before the deadline, so their result is in
NOT_ACKED = "not acked before the deadline"
NOT_CONNECTED = "not connected"

ClientTypes = Callable[[str, list[str]], Awaitable[set[str]]]  # (client_type, client_ids) -> those of that type
OnResult = Callable[[str, common_pb2.CommandAck, str], Awaitable[None]]  # (client_id, ack, replica)
Post = Callable[["Batch"], Awaitable[None] | None]  # a part's batch to the caller (Redis, or in-process)


def bot_command_id(broadcast_id: str, client_id: str) -> str:
    """The bot's own command_id: "<broadcast_id>:<client_id>", or a digest of the client_id when too long."""
    plain = f"{broadcast_id}:{client_id}"
    if len(plain) <= MAX_COMMAND_ID:  # CommandRecord.command_id's max_length
        return plain
    return f"{broadcast_id}:{hashlib.sha1(client_id.encode()).hexdigest()[:24]}"


def bot_copy(command: pb2.DjangoCommand, broadcast_id: str, client_id: str) -> pb2.DjangoCommand:
    """One bot's copy of the broadcast's command, under its own command_id."""
    copy = pb2.DjangoCommand()
    copy.CopyFrom(command)
    copy.command_id = bot_command_id(broadcast_id, client_id)
    return copy


def bot_failure(broadcast_id: str, client_id: str, error: str) -> common_pb2.CommandAck:
    """The result of a bot whose copy got no ack (success=false, why), under its copy's command_id."""
    return failure_ack(bot_command_id(broadcast_id, client_id), error)


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
    replica: str  # the part it belongs to
    targets: list[str] | None
    results: list[tuple[str, common_pb2.CommandAck]]
    done: bool
    via: str = ""  # the replica that delivered, when not the part's own (a named client reached directly)


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
                        on_result: OnResult, summary: Summary | None = None) -> Summary:
        """Run a broadcast; on_result gets exactly one result per targeted client. Ends by the timeout.
        `summary` (when given) is filled in as results come, so a cancelled caller still has the counts."""
        from .cluster_view import live_leases  # the view module reads config at import; only needed here

        bus, link = self.bus, self.bus.link
        broadcast_id = command.command_id
        deadline = time.monotonic() + timeout
        summary = summary or Summary(broadcast_id)
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
        tasks = [asyncio.create_task(self._serve(request, broadcast_id, timeout, batches.put_nowait, BATCH_WINDOW),
                                     name="bcast-local")]
        if len(asked) > 1:
            tasks.append(asyncio.create_task(self._read_batches(broadcast_id, deadline, batches, len(asked) - 1),
                                             name="bcast-read"))
        named = list(_asked_ids(selector))
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

        def reach_unheld() -> None:
            """Once every replica named its targets: named clients none of them held go the direct way."""
            if not named or DIRECT in parts or not all(p.targets is not None or p.done for p in parts.values()):
                return
            unheld = [c for c in named if not any(c in (p.targets or ()) for p in parts.values())]
            if unheld:  # maybe in its grace window, or it reconnected after its replica chose its targets
                parts[DIRECT] = _Part(targets=set(unheld))
                tasks.extend(asyncio.create_task(self._direct(command, c, deadline, batches.put_nowait),
                                                 name="bcast-direct") for c in unheld)

        finished = False
        try:
            probed = time.monotonic()
            while not all(p.done for p in parts.values()) and (left := deadline - time.monotonic()) > 0:
                if time.monotonic() - probed >= PROBE_EVERY:  # even while other replicas keep answering
                    probed = time.monotonic()
                    await self._probe(parts, summary, report)
                    reach_unheld()
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
                    await report(client_id, ack, batch.via or batch.replica)
                part.done = part.done or batch.done or (part.targets is not None and part.reported >= part.targets)
                reach_unheld()
            for replica, part in parts.items():  # the deadline: whatever is still open failed
                for client_id in sorted((part.targets or set()) - part.reported):
                    await report(client_id, bot_failure(broadcast_id, client_id, NOT_ACKED), replica)
            for client_id in named:
                if client_id not in reported:  # no replica named its targets in time
                    await report(client_id, bot_failure(broadcast_id, client_id,
                                                        f"client {client_id} is {NOT_CONNECTED}"), "")
            finished = all(p.done for p in parts.values())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            open_parts = [r for r, p in parts.items() if not p.done and r not in (bus.me, DIRECT)]
            await self._clean_up(broadcast_id, open_parts, not finished and len(asked) > 1)
        summary.finished = time.time()
        return summary

    async def _direct(self, command: pb2.DjangoCommand, client_id: str, deadline: float,
                      put: Callable[[Batch], None]) -> None:
        """A named client no replica held: the single-command path, which holds the copy while the client is in
        its grace window (delivered when it reconnects) and routes it to a replica it reconnected to."""
        copy = bot_copy(command, command.command_id, client_id)
        try:
            answer = await self.bus.execute(client_id, copy, max(0.0, deadline - time.monotonic() - DIRECT_MARGIN))
            ack = failure_ack(copy.command_id, NOT_ACKED) if answer.timed_out else answer.ack
            via = answer.delivery.routed_to
        except BusUnavailable as exc:
            ack, via = failure_ack(copy.command_id, f"command bus unavailable: {exc}"), ""
        put(Batch(DIRECT, None, [(client_id, ack)], done=False, via=via))

    async def _probe(self, parts: dict[str, _Part], summary: Summary, report: OnResult) -> None:
        """Replicas silent for a while: one that left its channel is gone, its open targets fail now."""
        now = time.monotonic()
        for replica, part in parts.items():
            if part.done or replica in (self.bus.me, DIRECT) or now - part.heard < PROBE_EVERY:
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
            if part.targets is None:  # it died before its first results: its targets are in Redis (if it chose)
                part.targets = await self._targets_of(summary.broadcast_id, replica)
            for client_id in sorted((part.targets or set()) - part.reported):
                await report(client_id, bot_failure(summary.broadcast_id, client_id,
                                                    f"replica {replica} went away before the ack"), replica)

    async def _targets_of(self, broadcast_id: str, replica: str) -> set[str]:
        try:
            raw = await self.bus.link.read_targets(broadcast_id, replica)
            return set(json.loads(raw)) if raw else set()
        except (BusUnavailable, ValueError) as exc:
            logger.warning("broadcast.targets_unread broadcast_id=%s replica=%s error=%s", broadcast_id, replica, exc)
            return set()

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
        """Replicas still at work withdraw their undelivered copies; a list left behind is dropped (a finished
        broadcast popped its list empty, and Redis removed it then)."""
        link = self.bus.link
        try:
            if cancel:
                await link.fan_out(cancel, Envelope(EnvelopeKind.BROADCAST_CANCEL, command_id=broadcast_id,
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
            if batch.targets is not None and not batch.results and not batch.done:  # read only if we die
                return link.post_targets(broadcast_id, json.dumps(batch.targets), envelope.timeout + TARGETS_KEPT)
            return link.post_batch(broadcast_id, encode_batch(batch.replica, batch.targets, batch.results, batch.done))

        self.bus.own(self._serve(request, broadcast_id, envelope.timeout - REPLY_MARGIN, post, PROGRESS_EVERY))

    def on_cancel(self, envelope: Envelope) -> None:
        task = self._parts.get(envelope.command_id)
        if task is not None:
            logger.info("broadcast.cancelled broadcast_id=%s", envelope.command_id)
            task.cancel()

    async def _serve(self, request: pb2.BroadcastCommandRequest, broadcast_id: str, timeout: float,
                     post: Post, window: float) -> None:
        """This replica's part, registered so a `bcancel` can stop it."""
        task = asyncio.current_task()
        assert task is not None
        self._parts[broadcast_id] = task
        try:
            await self._deliver(request, broadcast_id, time.monotonic() + max(0.0, timeout), post, window)
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
                       post: Post, window: float) -> None:
        """Targets first (before any copy goes out: a replica dying later still has them failed), then the
        results every `window` seconds while acks arrive, the last batch saying done."""
        bus = self.bus
        sessions = await self._select(request.selector)
        targets: list[str] | None = [s.client_id for s in sessions]
        await _posted(post(Batch(bus.me, targets, [], done=not sessions)))
        if not sessions:
            return
        results: list[tuple[str, common_pb2.CommandAck]] = []
        waits: dict[asyncio.Future[common_pb2.CommandAck], tuple[str, str, Any]] = {}
        try:
            for session in sessions:
                command = bot_copy(request.command, broadcast_id, session.client_id)
                waiting = bus.wait_ack(command.command_id, session.client_id)
                if waiting is None:  # that command_id is in flight already
                    results.append((session.client_id, failure_ack(command.command_id, "command_id already in flight")))
                elif bus.offer_awaited(session, command):
                    waits[waiting] = (session.client_id, command.command_id, session)
                else:
                    bus.stop_waiting(command.command_id)
                    reason = session.close_reason.details if session.close_reason else "stream not taking commands"
                    results.append((session.client_id, failure_ack(command.command_id, f"stream ended: {reason}")))
            while True:
                if waits:  # every ack, or the window's end, or the deadline
                    until = min(deadline, time.monotonic() + window)
                    await asyncio.wait(waits, timeout=max(0.0, until - time.monotonic()))
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
                if results or not waits:  # the first result batch names the targets again
                    await _posted(post(Batch(bus.me, targets, results, done=not waits)))
                    results, targets = [], None
                if not waits:
                    return
        finally:
            for client_id, command_id, session in waits.values():  # cancelled: withdraw what was not written
                bus.stop_waiting(command_id)
                session.withdraw(command_id)
                session.inflight.pop(command_id, None)


async def _posted(outcome: Awaitable[None] | None) -> None:
    if outcome is not None:
        await outcome


async def _no_types(client_type: str, client_ids: list[str]) -> set[str]:
    return set()


def _asked_ids(selector: pb2.ClientSelector) -> Iterable[str]:
    return dict.fromkeys(selector.client_ids)
