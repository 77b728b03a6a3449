"""CommandBus: local streams, claims in Redis, routing to owners, and ack correlation.

A command for a client held on this replica goes straight into its stream; otherwise it
is published on the owner's channel (owner lookup, ack-wait record and publish in one Lua
call) and the owner confirms delivery over ours. For ExecuteCommandSync the client's ack
is the confirmation; the owner sends a separate one only when that ack is slow. A client
that disconnected within the grace window gets its commands held in Redis and delivered
when it reconnects anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ...generated import common_pb2
from ...generated import crypto_streaming_pb2 as pb2
from .. import metrics
from ..streaming.reasons import OWNERSHIP_LOST, TAKEOVER
from ..streaming.session import StreamSession
from . import messages as m
from ..tasks import TaskOwner
from .broadcast import FleetCommands
from .link import BusUnavailable, HoldStatus, RedisLink, RefreshStatus, Route, Settlement
from .messages import EnvelopeKind as Kind
from .outcomes import Answer, Delivery, failure_ack

logger = logging.getLogger(__name__)
DISCONNECTED = "client disconnected before acknowledging"
RETRY_PAUSE = 0.02
FollowUp = Coroutine[Any, Any, None] | None  # I/O an envelope handler leaves for the caller to await
PROBE_AFTER = 0.5  # no delivery confirmation by then: check that the owner still listens
CONFIRM_AFTER = 0.1  # an awaited command not acked by then gets a separate delivery confirmation
TAKEN_CONFIRM = 0.2  # a held command a new stream took: its confirmation gets this long (within the RPC margin)
EXPIRED_KEPT = 10_000  # commands whose caller gave up waiting, remembered so a late ack is recorded as late
DELIVERED_KEPT = 10_000  # command_ids delivered from the bus lately, so a repeated publish is not delivered twice
RATE_SPAN = 60  # seconds over which a listing reports this replica's commands per second


@dataclass(slots=True)
class Pending:
    """A command this replica accepted and waits on.

    `events` (delivery confirmations) is made on first use: a command put into a local stream is
    confirmed at once and never needs it."""

    client_id: str
    ack: asyncio.Future[common_pb2.CommandAck] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    confirmed: bool = False  # delivery is known: an ack need not confirm it again
    _events: asyncio.Queue[m.Envelope] | None = None

    @property
    def events(self) -> asyncio.Queue[m.Envelope]:
        if self._events is None:
            self._events = asyncio.Queue()
        return self._events


class CommandBus:
    """The seam between streams and callers; the same code serves one or many replicas."""

    def __init__(self, link: RedisLink, grace: float, confirm_timeout: float, tasks: TaskOwner | None = None) -> None:
        self.link, self.me = link, link.replica_id
        self.grace, self.confirm_timeout = grace, confirm_timeout
        self.sessions: dict[str, StreamSession] = {}
        self.detaching = 0  # streams releasing their claims right now (shutdown waits for them)
        self._pending: dict[str, Pending] = {}
        # answers that must go out even if their stream ends
        self._replies = (tasks or TaskOwner("bus")).scope("replies")
        self._expired = RecentIds(EXPIRED_KEPT)  # awaited commands that timed out
        # A publish whose reply was lost (a Redis failover) is retried by the client library and so
        # arrives twice; the owner delivers each command_id once.
        self._delivered = RecentIds(DELIVERED_KEPT)
        self.command_rate = RateWindow(RATE_SPAN)  # operator commands put into this replica's streams
        self.on_late_ack: Callable[[common_pb2.CommandAck], None] = lambda ack: None  # the journal records it
        self._handlers = {Kind.COMMAND: self._on_command, Kind.DELIVERED: self._on_delivery,
                          Kind.UNDELIVERABLE: self._on_delivery, Kind.ACK: self._on_ack_envelope,
                          Kind.EVICT: self._on_evict, Kind.LIST: self._on_list,
                          Kind.BROADCAST: self._on_broadcast, Kind.BROADCAST_CANCEL: self._on_broadcast_cancel}
        self.fleet = FleetCommands(self)  # fleet commands (BroadcastCommand), both sides

    # streams -----------------------------------------------------------------
    async def attach(self, session: StreamSession) -> None:
        """Claim the client for this replica; a stream it replaces here or elsewhere is ended."""
        previous = self.sessions.get(session.client_id)
        self.sessions[session.client_id] = session
        if previous is not None:
            previous.close(TAKEOVER)
        try:
            claim = await self.link.claim(session.client_id)
        except BusUnavailable:
            self._forget(session)  # never claimed: it must not linger as a local stream
            raise
        session.epoch = claim.epoch
        if claim.previous and claim.previous.replica_id != self.me:
            evict = m.Envelope(Kind.EVICT, client_id=session.client_id, epoch=claim.epoch, sender=self.me)
            await self.link.publish(claim.previous.replica_id, evict)
        await self._deliver_held(session, claim.held)

    async def detach(self, session: StreamSession) -> None:
        """Answer in-flight commands at once and release the claim (compare-and-delete)."""
        self._forget(session)
        self.detaching += 1
        try:
            await self._detach(session)
        finally:
            self.detaching -= 1

    def _forget(self, session: StreamSession) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    async def _detach(self, session: StreamSession) -> None:
        inflight, session.inflight = session.inflight, {}
        for command_id, reply_to in inflight.items():
            ack = failure_ack(command_id, DISCONNECTED)
            envelope = m.Envelope(Kind.ACK, command_id=command_id, body=ack.SerializeToString(), sender=self.me)
            await self._reply(reply_to, envelope)
        lost = session.close_reason in (TAKEOVER, OWNERSHIP_LOST)
        if session.epoch and not lost:
            await self.link.release(session.client_id, session.epoch, grace=self.grace > 0)

    # commands ----------------------------------------------------------------
    async def send(self, client_id: str, command: pb2.DjangoCommand, timeout: float) -> Delivery:
        """Deliver to the client's live stream; False means it never will be."""
        with self._open(command.command_id, client_id) as pending:
            return await self._deliver(client_id, command, pending, time.monotonic() + timeout, wait_ack=False)

    async def execute(self, client_id: str, command: pb2.DjangoCommand, timeout: float) -> Answer:
        """Deliver and wait for the client's CommandAck; every path ends with an ack."""
        deadline = time.monotonic() + timeout
        with self._open(command.command_id, client_id) as pending:
            delivery = await self._deliver(client_id, command, pending, deadline, wait_ack=True)
            if not delivery.delivered:
                return Answer(failure_ack(command.command_id, delivery.error), delivery)
            try:
                if pending.ack.done():  # routed: the owner's ack was what confirmed delivery; no timer needed
                    return Answer(pending.ack.result(), delivery, from_stream=True)
                ack = await asyncio.wait_for(pending.ack, max(0.0, deadline - time.monotonic()))
                return Answer(ack, delivery, from_stream=True)
            except TimeoutError:
                self._expired.add(command.command_id)
                error = f"timed out after {timeout:g}s waiting for CommandAck"
                return Answer(failure_ack(command.command_id, error), delivery, timed_out=True)

    async def _deliver_held(self, session: StreamSession, held: list[bytes]) -> None:
        """Commands held while the client had no stream, in order; confirmed at once: their callers may
        be about to give up."""
        for raw in held:
            follow_up = self._deliver_here(session, m.decode(raw), confirm_now=True)
            if follow_up is not None:
                await follow_up

    async def on_ack(self, client_id: str, ack: common_pb2.CommandAck) -> bool:
        """A client acknowledged: answer whoever waits, locally or on its replica.

        True when the waiting caller's replica got the ack (it records the outcome) or it was a
        duplicate: the owner need not store it again. False also when Redis is down (stored here then).
        """
        session = self.sessions.get(client_id)
        reply_to = session.inflight.pop(ack.command_id, "") if session is not None else ""
        if reply_to == self.me:
            self._resolve_ack(ack, self.me)
            return True
        envelope = m.encode(m.Envelope(Kind.ACK, command_id=ack.command_id, body=ack.SerializeToString(),
                                       sender=self.me))
        settle = self._settle(ack.command_id, client_id, reply_to, envelope)
        settled = await asyncio.shield(self._owned(settle))  # the ack is out of inflight: it must get through
        if settled is None:
            return False
        if settled.duplicate:
            logger.info("bus.ack_ignored client_id=%s command_id=%s why=duplicate", client_id, ack.command_id)
        return settled.duplicate or settled.receivers > 0

    async def _settle(self, command_id: str, client_id: str, reply_to: str, envelope: str) -> Settlement | None:
        """None when Redis is down: the owner then stores the ack itself."""
        try:
            return await self.link.settle_ack(command_id, client_id, reply_to, envelope)
        except BusUnavailable as exc:
            logger.warning("ack.forward_failed command_id=%s error=%s", command_id, exc)
            return None

    def _open(self, command_id: str, client_id: str) -> "_PendingScope":
        return _PendingScope(self._pending, command_id, client_id)

    async def _deliver(self, client_id: str, command: pb2.DjangoCommand, pending: Pending,
                       deadline: float, wait_ack: bool) -> Delivery:
        raw = ""  # the envelope for other replicas, encoded only once a local offer failed
        while time.monotonic() < deadline:
            session = self.sessions.get(client_id)
            if session is not None and self._offer(session, command, self.me if wait_ack else ""):
                pending.confirmed = True
                return Delivery(True, routed_to=self.me)
            raw = raw or m.encode(m.Envelope(Kind.COMMAND, client_id=client_id, command_id=command.command_id,
                                             reply_to=self.me, body=command.SerializeToString(), wait_ack=wait_ack))
            ack_wait = deadline - time.monotonic() + 1.0 if wait_ack else 0.0
            route = await self.link.route(client_id, command.command_id, raw, ack_wait)
            owner = route.owner
            if owner is None:
                held = await self._hold(client_id, command.command_id, raw, pending, deadline)
                if held is None:  # a new owner claimed the client meanwhile: route to it
                    continue
                return held
            if owner.replica_id == self.me and client_id in self.sessions:
                await asyncio.sleep(RETRY_PAUSE)  # attached meanwhile, or ending shortly (then it is held)
                continue
            if not self._routed(route):
                logger.info("bus.stale_owner client_id=%s owner=%s", client_id, owner.token())
                await self.link.clean_stale(client_id, owner)
                continue
            outcome = await self._confirmation(pending, deadline, PROBE_AFTER)
            if outcome is None and not await self.link.listening(owner.replica_id):
                logger.info("bus.owner_died client_id=%s owner=%s", client_id, owner.token())
                await self.link.clean_stale(client_id, owner)  # it died right after our publish
                command.retry, raw = True, ""  # it may have reached the bot already: the next copy says so
                continue
            if outcome is None:
                outcome = await self._confirmation(pending, deadline, self.confirm_timeout - PROBE_AFTER)
            if outcome is not None and outcome.kind in CONFIRMS:
                return Delivery(True, routed_to=outcome.sender)
            if outcome is None:
                return Delivery(False, f"replica {owner.replica_id} did not confirm delivery in time")
            await asyncio.sleep(RETRY_PAUSE)
        return Delivery(False, f"client {client_id} not reached before the deadline")

    def _routed(self, route: Route) -> bool:
        """Published to another replica; 0 receivers means that owner is gone (its claim is stale)."""
        if route.receivers > 0:
            metrics.BUS_ROUTED.inc()
            return True
        if route.receivers == 0:
            metrics.BUS_NO_SUBSCRIBER.inc()
        return False

    async def _confirmation(self, pending: Pending, deadline: float, limit: float) -> m.Envelope | None:
        wait = min(limit, max(0.0, deadline - time.monotonic()))
        try:
            return await asyncio.wait_for(pending.events.get(), wait)
        except TimeoutError:
            return None

    async def _hold(self, client_id: str, command_id: str, raw: str, pending: Pending,
                    deadline: float) -> Delivery | None:
        """No owner: hold the command (its encoded envelope) while the client is inside its grace window.

        None when an owner appeared in the meantime (the caller routes to it).
        """
        hold = await self.link.hold(client_id, raw)
        if hold.status is HoldStatus.OFFLINE:
            return Delivery(False, f"client {client_id} is not connected")
        if hold.status is HoldStatus.OWNED:
            return None
        logger.info("bus.command_held client_id=%s command_id=%s", client_id, command_id)
        with metrics.GRACE_HELD.track_inprogress():
            outcome = await self._confirmation_until(pending, min(deadline, time.monotonic() + self.grace))
        if outcome is not None:
            return Delivery(True, routed_to=outcome.sender)
        if await self.link.withdraw(client_id, raw):
            return Delivery(False, f"client {client_id} did not reconnect within {self.grace:g}s")
        # a reconnecting stream took it just now; its new owner confirms at once
        outcome = await self._confirmation_until(pending, min(time.monotonic() + self.confirm_timeout,
                                                              max(deadline, time.monotonic() + TAKEN_CONFIRM)))
        return Delivery(outcome is not None, "" if outcome else "delivery of a held command was not confirmed",
                        outcome.sender if outcome else "")

    async def _confirmation_until(self, pending: Pending, until: float) -> m.Envelope | None:
        while (remaining := until - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(pending.events.get(), remaining)
            except TimeoutError:
                return None
            if event.kind in CONFIRMS:
                return event
        return None

    # what a broadcast's part uses: the same local ack settlement as an awaited local command ------------
    def wait_ack(self, command_id: str, client_id: str) -> asyncio.Future[common_pb2.CommandAck] | None:
        """Wait here for the ack of a command offered to a local stream; None when that id is in flight."""
        if command_id in self._pending:
            return None
        pending = self._pending[command_id] = Pending(client_id)
        return pending.ack

    def stop_waiting(self, command_id: str, expired: bool = False) -> None:
        """No longer waiting; `expired`: an ack arriving later is recorded as late."""
        self._pending.pop(command_id, None)
        if expired:
            self._expired.add(command_id)

    def offer_awaited(self, session: StreamSession, command: pb2.DjangoCommand) -> bool:
        """Queue on a local stream; its ack (or the stream's end) settles the wait here, without Redis."""
        return self._offer(session, command, self.me)

    def own(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self._owned(coro)

    def _on_broadcast(self, envelope: m.Envelope) -> FollowUp:
        self.fleet.on_request(envelope)
        return None

    def _on_broadcast_cancel(self, envelope: m.Envelope) -> FollowUp:
        self.fleet.on_cancel(envelope)
        return None

    def _offer(self, session: StreamSession, command: pb2.DjangoCommand, reply_to: str) -> bool:
        if not session.offer(command):
            return False
        self.command_rate.add()
        if reply_to:
            session.inflight[command.command_id] = reply_to
        return True

    # envelopes from other replicas ---------------------------------------------
    def handle(self, raw: bytes | str) -> FollowUp:
        """Act on an envelope at once, in arrival order; returns the reply still to publish, if any.

        Synchronous on purpose: most envelopes need no I/O, so the listener spawns no task for them.
        """
        try:
            envelope = m.decode(raw)
        except ValueError as exc:
            logger.warning("bus.bad_envelope error=%s", exc)
            return None
        return self._dispatch(envelope)

    def _dispatch(self, envelope: m.Envelope) -> FollowUp:
        return self._handlers[envelope.kind](envelope)  # decode() admits only known kinds

    def _on_command(self, envelope: m.Envelope) -> FollowUp:
        session = self.sessions.get(envelope.client_id)
        if session is None or session.closed:
            reply = m.Envelope(Kind.UNDELIVERABLE, command_id=envelope.command_id, sender=self.me)
            return self._reply(envelope.reply_to, reply)
        if envelope.command_id in self._delivered:  # already in this stream: confirm, never deliver twice
            logger.info("bus.duplicate_command client_id=%s command_id=%s", envelope.client_id, envelope.command_id)
            if envelope.wait_ack:
                return None  # the first copy's ack (or its delayed confirmation) answers the caller
            return self._reply(envelope.reply_to, m.Envelope(Kind.DELIVERED, command_id=envelope.command_id,
                                                             sender=self.me))
        self._delivered.add(envelope.command_id)
        return self._deliver_here(session, envelope)

    def _deliver_here(self, session: StreamSession, envelope: m.Envelope, confirm_now: bool = False) -> FollowUp:
        command = pb2.DjangoCommand.FromString(envelope.body)
        ok = self._offer(session, command, envelope.reply_to if envelope.wait_ack else "")
        if ok and envelope.wait_ack and not confirm_now:
            asyncio.get_running_loop().call_later(CONFIRM_AFTER, self._confirm_if_unacked, session, envelope)
            return None
        kind = Kind.DELIVERED if ok else Kind.UNDELIVERABLE
        return self._reply(envelope.reply_to, m.Envelope(kind, command_id=envelope.command_id, sender=self.me))

    def _confirm_if_unacked(self, session: StreamSession, envelope: m.Envelope) -> None:
        """The ack normally proves delivery; a slow one gets a separate confirmation (an owned task)."""
        if session.inflight.get(envelope.command_id) != envelope.reply_to:
            return  # acked, or the stream ended and a failure ack went out
        reply = m.Envelope(Kind.DELIVERED, command_id=envelope.command_id, sender=self.me)
        self._owned(self._reply(envelope.reply_to, reply))

    def _owned(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A reply that outlives whoever started it (a stream being cancelled); awaited on close.

        Started eagerly: its Redis call goes out now, not one loop iteration later."""
        return self._replies.spawn(coro, "bus-reply", eager=True)

    async def close(self) -> None:
        """Wait for replies still being sent."""
        await self._replies.close(grace=None)

    def _on_delivery(self, envelope: m.Envelope) -> FollowUp:
        pending = self._pending.get(envelope.command_id)
        if pending is not None:
            pending.events.put_nowait(envelope)
        return None

    def _on_ack_envelope(self, envelope: m.Envelope) -> FollowUp:
        """An ack from the owner also confirms the delivery the caller may still be waiting on."""
        self._resolve_ack(common_pb2.CommandAck.FromString(envelope.body), envelope.sender)
        return None

    def _on_evict(self, envelope: m.Envelope) -> FollowUp:
        session = self.sessions.get(envelope.client_id)
        if session is not None and session.epoch < envelope.epoch:
            logger.info("bus.evicted client_id=%s epoch=%d newer=%d", envelope.client_id, session.epoch,
                        envelope.epoch)
            session.close(TAKEOVER)
        return None

    def _on_list(self, envelope: m.Envelope) -> FollowUp:
        """A cluster view asks: push our clients (those it names, when it names some) to its listing, with
        this replica's stream count and command rate (the operators' per-replica summary)."""
        chosen = list(self.sessions.values())
        if envelope.body:
            try:
                wanted = json.loads(envelope.body)
            except ValueError:
                wanted = []
            wanted = wanted if isinstance(wanted, list) else []
            chosen = [s for c in wanted if isinstance(c, str) and (s := self.sessions.get(c)) is not None]
        payload = json.dumps({"replica": self.me, "clients": [self._presence(s) for s in chosen if not s.closed],
                              "streams": sum(not s.closed for s in self.sessions.values()),
                              "commands_total": self.command_rate.total,
                              "commands_per_s": round(self.command_rate.rate(), 3)})
        return self.link.post_listing(envelope.command_id, payload)

    def _resolve_ack(self, ack: common_pb2.CommandAck, sender: str) -> None:
        """Answer the waiting caller; the ack also confirms a delivery it may still wait on
        (a held command taken by a new owner, for instance)."""
        pending = self._pending.get(ack.command_id)
        if pending is None or pending.ack.done():
            late = ack.command_id in self._expired
            logger.info("bus.%s command_id=%s", "late_ack" if late else "duplicate_ack", ack.command_id)
            if late:
                self._expired.discard(ack.command_id)
                self.on_late_ack(ack)
            return
        pending.ack.set_result(ack)
        if not pending.confirmed:
            pending.events.put_nowait(m.Envelope(Kind.ACK, command_id=ack.command_id, sender=sender))

    async def _reply(self, replica_id: str, envelope: m.Envelope) -> None:
        """Answer a replica; our own answers skip Redis."""
        if not replica_id:
            return
        if replica_id == self.me:
            follow_up = self._dispatch(envelope)
            if follow_up is not None:
                await follow_up
            return
        try:
            await self.link.publish(replica_id, envelope)
        except BusUnavailable:
            logger.warning("bus.reply_lost replica=%s command_id=%s", replica_id, envelope.command_id)

    # ownership upkeep ----------------------------------------------------------
    async def refresh_claims(self) -> None:
        """The audit (rare, batched) and recovery after a Redis outage: a taken claim ends its stream,
        a vanished one is re-claimed (with the commands held for it meanwhile), the others get their
        long TTL extended."""
        sessions = [s for s in self.sessions.values() if s.epoch and not s.closed]
        results = await self.link.refresh((s.client_id, s.epoch) for s in sessions)
        for session, result in zip(sessions, results):
            if result.status is RefreshStatus.TAKEN:
                session.close(OWNERSHIP_LOST)
            elif result.status is RefreshStatus.RECLAIMED:
                session.epoch = result.epoch
                logger.info("bus.reclaimed client_id=%s epoch=%d held=%d", session.client_id, session.epoch,
                            len(result.held))
                await self._deliver_held(session, result.held)

    def _presence(self, s: StreamSession) -> dict[str, str]:
        return {"client_id": s.client_id, "replica": self.me, "connected_at": f"{s.connected_at:.3f}",
                "last_heartbeat": f"{s.last_heartbeat:.3f}"}


CONFIRMS = frozenset({Kind.DELIVERED, Kind.ACK})  # events that prove a command reached the client


class RecentIds:
    """The last `limit` ids added, the oldest forgotten first: bounded memory for "seen lately"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, id_: str) -> None:
        self._ids[id_] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def discard(self, id_: str) -> None:
        self._ids.pop(id_, None)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._ids


class RateWindow:
    """Events per second over the last `span` seconds, counted in whole-second buckets: O(1) per event,
    at most span + 1 buckets. `total` counts every event since start."""

    def __init__(self, span: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.span, self.clock, self.total = span, clock, 0
        self._started = clock()
        self._buckets: deque[list[int]] = deque()  # [second, events in it], oldest first

    def add(self, events: int = 1) -> None:
        self.total += events
        second = int(self.clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += events
            return
        self._buckets.append([second, events])
        self._trim(second)

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self.span:
            self._buckets.popleft()

    def rate(self) -> float:
        """Events per second in the last span (or since start, when that is shorter)."""
        now = self.clock()
        self._trim(int(now))
        return sum(events for _, events in self._buckets) / min(float(self.span), max(now - self._started, 1.0))


class DuplicateCommand(ValueError):
    """Two callers used one command_id at once; acks could not be told apart."""


class _PendingScope:
    """Registers a Pending for the duration of one RPC; always removed afterwards."""

    def __init__(self, table: dict[str, Pending], command_id: str, client_id: str) -> None:
        self.table, self.command_id = table, command_id
        self.pending = Pending(client_id)

    def __enter__(self) -> Pending:
        if self.command_id in self.table:
            raise DuplicateCommand(f"command_id {self.command_id!r} is already in flight")
        self.table[self.command_id] = self.pending
        return self.pending

    def __exit__(self, *exc: object) -> None:
        self.table.pop(self.command_id, None)
