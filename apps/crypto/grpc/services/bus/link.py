"""The only Redis I/O of the bus: scripts, publish, presence. Errors surface as BusUnavailable.

Multi-key steps run as Lua, so each is atomic inside Redis; each script sits above the method that
runs it. Owner values are "replica|epoch"; the epoch grows on every claim (fencing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .keys import Keys
from .messages import Envelope, Owner, encode

EPOCH_TTL_MS = 7 * 24 * 3600 * 1000
ACK_RESULT_TTL_MS = 10 * 60 * 1000
HELD_SLACK_MS = 5000  # held lists outlive the grace window by this, for withdrawals


class BusUnavailable(Exception):
    """Redis cannot be reached; callers answer UNAVAILABLE and try again later."""


@dataclass(frozen=True)
class Route:
    """Where a command went: the owner seen, and how many replicas its publish reached (-1: none made)."""

    owner: Owner | None
    receivers: int


@dataclass(frozen=True)
class Settlement:
    """What settling a client's ack did, so the owner knows whether it must record the ack itself."""

    waiter: str = ""  # the replica the ack was forwarded to; "" when nobody waits (the owner records it)
    receivers: int = 0  # subscribers the forwarded ack reached
    duplicate: bool = False  # refused: this ack was settled before
    foreign: bool = False  # refused: the command was sent to another client


@dataclass(frozen=True)
class Claim:
    """What claiming a client gave: our epoch, the owner we replaced, the commands held for the client."""

    epoch: int
    previous: Owner | None
    held: list[bytes]


class HoldStatus(Enum):
    """Where a command for a client without a stream went."""

    OWNED = "owned"  # an owner appeared meanwhile: route to it
    HELD = "held"  # kept in Redis for the client's grace window
    OFFLINE = "offline"  # the client is not connected and not expected back soon


@dataclass(frozen=True)
class Hold:
    """What hold() did, with the owner when one appeared meanwhile."""

    status: HoldStatus
    owner: Owner | None = None


class RefreshStatus(Enum):
    """What refreshing one of our claims found."""

    KEPT = "kept"  # still ours, TTL extended
    TAKEN = "taken"  # another stream owns the client now
    RECLAIMED = "reclaimed"  # the claim was gone (a Redis restart): claimed again with a new epoch


@dataclass(frozen=True)
class Refresh:
    """The outcome of refreshing one claim; epoch is set only when it was re-claimed."""

    status: RefreshStatus
    epoch: int = 0


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLink:
    """Wraps a redis.asyncio client (real or the in-process stand-in) with the bus's operations."""

    def __init__(self, redis: Redis, keys: Keys, replica_id: str, owner_ttl: float, grace: float) -> None:
        self.redis, self.keys, self.replica_id = redis, keys, replica_id
        self.owner_ttl_ms, self.grace_ms = _ms(owner_ttl), int(grace * 1000)
        self._claim = redis.register_script(self.CLAIM)
        self._refresh = redis.register_script(self.REFRESH)
        self._release = redis.register_script(self.RELEASE)
        self._hold = redis.register_script(self.HOLD)
        self._withdraw = redis.register_script(self.WITHDRAW)
        self._route = redis.register_script(self.ROUTE)
        self._settle_ack = redis.register_script(self.SETTLE_ACK)
        self._clean_stale = redis.register_script(self.CLEAN_STALE)

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable: {type(exc).__name__}") from exc

    # KEYS[1] owner, KEYS[2] epoch counter, KEYS[3] held list, KEYS[4] recent marker
    # ARGV[1] replica id, ARGV[2] owner TTL ms, ARGV[3] epoch counter TTL ms
    # Returns {epoch, previous owner or "", held command envelopes...}. Held commands are taken
    # only inside the grace window (recent marker alive); later ones stay for their callers to withdraw.
    CLAIM = """
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local previous = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
local held = {}
if redis.call('EXISTS', KEYS[4]) == 1 then
  held = redis.call('LRANGE', KEYS[3], 0, -1)
  redis.call('DEL', KEYS[3], KEYS[4])
end
local result = {epoch, previous}
for _, item in ipairs(held) do table.insert(result, item) end
return result
"""

    async def claim(self, client_id: str) -> Claim:
        k = self.keys
        raw = await self._run(self._claim(
            keys=[k.owner(client_id), k.epoch(client_id), k.held(client_id), k.recent(client_id)],
            args=[self.replica_id, self.owner_ttl_ms, EPOCH_TTL_MS]))
        return Claim(int(raw[0]), Owner.parse(raw[1]), list(raw[2:]))

    # KEYS[1] owner, KEYS[2] epoch counter
    # ARGV[1] "replica|epoch" this replica holds, ARGV[2] owner TTL ms, ARGV[3] replica id, ARGV[4] epoch TTL ms
    # Returns 1 refreshed, 0 taken by another owner, or a new epoch (>1 as {epoch}) when the claim was gone.
    REFRESH = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[3] .. '|' .. epoch, 'PX', ARGV[2])
return {epoch}
"""

    async def refresh(self, claims: Iterable[tuple[str, int]]) -> list[Refresh]:
        """One round trip for every local claim, one Refresh each, in order."""
        pipe = self.redis.pipeline(transaction=False)
        for client_id, epoch in claims:
            await self._refresh(keys=[self.keys.owner(client_id), self.keys.epoch(client_id)],
                          args=[f"{self.replica_id}|{epoch}", self.owner_ttl_ms, self.replica_id, EPOCH_TTL_MS],
                          client=pipe)
        return [self._refreshed(reply) for reply in await self._run(pipe.execute())]

    @staticmethod
    def _refreshed(reply: int | list[int]) -> Refresh:
        if isinstance(reply, list):
            return Refresh(RefreshStatus.RECLAIMED, int(reply[0]))
        return Refresh(RefreshStatus.KEPT if reply == 1 else RefreshStatus.TAKEN)

    # KEYS[1] owner, KEYS[2] recent marker, KEYS[3] presence
    # ARGV[1] "replica|epoch" expected, ARGV[2] grace ms (0: no marker)
    # Compare-and-delete: never removes a newer owner's claim. Returns 1 released, 0 not ours.
    RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

    async def release(self, client_id: str, epoch: int, grace: bool) -> bool:
        k = self.keys
        keys = [k.owner(client_id), k.recent(client_id), k.presence(client_id)]
        args = [f"{self.replica_id}|{epoch}", self.grace_ms if grace else 0]
        return bool(await self._run(self._release(keys=keys, args=args)))

    async def owner(self, client_id: str) -> Owner | None:
        return Owner.parse(await self._run(self.redis.get(self.keys.owner(client_id))))

    # KEYS[1] owner, KEYS[2] ack wait
    # ARGV[1] this replica id, ARGV[2] channel name prefix, ARGV[3] ack wait TTL ms (0: nobody waits),
    # ARGV[4] ack wait value ("replica\nclient_id"), ARGV[5] command envelope
    # One round trip for a command: look up the owner, note who waits for the ack, publish to the
    # owner's channel. Returns {owner or "", receivers}; receivers is -1 when nothing was published
    # (no owner, or this replica owns the client).
    ROUTE = """
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3]) end
local owner = redis.call('GET', KEYS[1])
if not owner then return {'', -1} end
local replica = string.match(owner, '^(.*)|%d+$')
if not replica or replica == ARGV[1] then return {owner, -1} end
return {owner, redis.call('PUBLISH', ARGV[2] .. replica, ARGV[5])}
"""

    async def route(self, client_id: str, command_id: str, raw_envelope: str, ack_wait: float = 0.0) -> Route:
        """Publish a command to the client's owner in one round trip; with ack_wait (seconds) also
        record that this replica waits for the ack (another owner may receive it)."""
        keys = [self.keys.owner(client_id), self.keys.ack_wait(command_id)]
        args = [self.replica_id, self.keys.channel_prefix(), _ms(ack_wait) if ack_wait > 0 else 0,
                f"{self.replica_id}\n{client_id}", raw_envelope]
        owner, receivers = await self._run(self._route(keys=keys, args=args))
        return Route(Owner.parse(owner), int(receivers))

    async def publish(self, replica_id: str, envelope: Envelope) -> int:
        return int(await self._run(self.redis.publish(self.keys.channel(replica_id), encode(envelope))))

    async def listening(self, replica_id: str) -> bool:
        """Whether a replica is still subscribed to its channel (a killed one drops off at once)."""
        channel = self.keys.channel(replica_id)
        counts = await self._run(self.redis.pubsub_numsub(channel))
        return any(int(count) > 0 for _, count in counts)

    # KEYS[1] owner, KEYS[2] recent marker, KEYS[3] presence
    # ARGV[1] "replica|epoch" seen stale (its replica no longer listens), ARGV[2] grace ms
    # The client was connected a moment ago, so it enters the grace window. Returns 1 when cleaned.
    CLEAN_STALE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

    async def clean_stale(self, client_id: str, owner: Owner) -> bool:
        k = self.keys
        keys = [k.owner(client_id), k.recent(client_id), k.presence(client_id)]
        return bool(await self._run(self._clean_stale(keys=keys, args=[owner.token(), self.grace_ms])))

    # KEYS[1] owner, KEYS[2] held list, KEYS[3] recent marker
    # ARGV[1] command envelope, ARGV[2] held TTL ms (outlives the window so callers can withdraw)
    # Returns "owner:<replica|epoch>" (route there instead), "held", or "offline".
    HOLD = """
local owner = redis.call('GET', KEYS[1])
if owner then return 'owner:' .. owner end
if redis.call('EXISTS', KEYS[3]) == 0 then return 'offline' end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 'held'
"""

    async def hold(self, client_id: str, raw_envelope: str) -> Hold:
        """No owner seen: hold the command while the client is inside its grace window."""
        k = self.keys
        keys = [k.owner(client_id), k.held(client_id), k.recent(client_id)]
        reply = _text(await self._run(self._hold(keys=keys, args=[raw_envelope, self.grace_ms + HELD_SLACK_MS])))
        if reply.startswith("owner:"):
            return Hold(HoldStatus.OWNED, Owner.parse(reply.removeprefix("owner:")))
        return Hold(HoldStatus(reply))  # "held" or "offline"

    # KEYS[1] held list   ARGV[1] command envelope
    # Returns 1 when the caller withdrew it (it will never be delivered), 0 when a new owner took it.
    WITHDRAW = """
return redis.call('LREM', KEYS[1], 1, ARGV[1])
"""

    async def withdraw(self, client_id: str, raw_envelope: str) -> bool:
        return bool(await self._run(self._withdraw(keys=[self.keys.held(client_id)], args=[raw_envelope])))

    # KEYS[1] ack result marker, KEYS[2] ack wait ("replica\nclient_id")
    # ARGV[1] marker TTL ms, ARGV[2] client_id that sent the ack, ARGV[3] replica the owner knows waits ("" if
    # none), ARGV[4] channel name prefix, ARGV[5] ack envelope
    # Forwards the ack to the replica waiting for it, once, in one round trip. Only a command that was sent to
    # this client leaves anything in Redis (a 1-byte marker that spots duplicates), so a bot cannot make Redis
    # store what it likes. Returns {waiting replica, receivers}; {"", 0} when nobody waits (the owner records
    # the ack itself); "\n" when the command belongs to another client; false for a duplicate.
    SETTLE_ACK = """
local waiter = redis.call('GET', KEYS[2])
local replica = ''
if waiter then
  local sep = string.find(waiter, '\\n', 1, true)
  if string.sub(waiter, sep + 1) ~= ARGV[2] then return '\\n' end
  replica = string.sub(waiter, 1, sep - 1)
end
if ARGV[3] ~= '' then replica = ARGV[3] end
if replica == '' then return {'', 0} end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return false end
redis.call('DEL', KEYS[2])
return {replica, redis.call('PUBLISH', ARGV[4] .. replica, ARGV[5])}
"""
    _FOREIGN = "\n"  # SETTLE_ACK's reply for an ack of another client's command

    async def settle_ack(self, command_id: str, client_id: str, reply_to: str, raw_envelope: str) -> Settlement:
        """Forward the ack to the waiting replica (reply_to if the owner knows it), once."""
        keys = [self.keys.ack_result(command_id), self.keys.ack_wait(command_id)]
        args = [ACK_RESULT_TTL_MS, client_id, reply_to, self.keys.channel_prefix(), raw_envelope]
        return self._settled(await self._run(self._settle_ack(keys=keys, args=args)))

    @classmethod
    def _settled(cls, reply: list[Any] | bytes | str | None) -> Settlement:
        """SETTLE_ACK's reply as a Settlement; Lua's false (a duplicate) arrives as None."""
        if reply is None:
            return Settlement(duplicate=True)
        if isinstance(reply, (bytes, str)):
            if _text(reply) != cls._FOREIGN:
                raise ValueError(f"unexpected SETTLE_ACK reply {reply!r}")
            return Settlement(foreign=True)
        waiter, receivers = reply
        return Settlement(_text(waiter), int(receivers))

    async def reserve(self, command_id: str, ttl: float) -> bool:
        """Take a caller-chosen command_id; False when it is already in use."""
        return bool(await self._run(self.redis.set(self.keys.command_id(command_id), "1", nx=True, px=_ms(ttl))))

    async def beat(self, presences: dict[str, dict[str, Any]], ttl: float, replica_ttl: float) -> None:
        """Replica heartbeat plus the cluster view of its clients, each key with a TTL."""
        pipe = self.redis.pipeline(transaction=False)
        info = json.dumps({"replica": self.replica_id, "clients": len(presences), "at": time.time()})
        pipe.set(self.keys.replica(self.replica_id), info, px=_ms(replica_ttl))
        for client_id, fields in presences.items():
            pipe.hset(self.keys.presence(client_id), mapping=fields)
            pipe.pexpire(self.keys.presence(client_id), _ms(ttl))
        await self._run(pipe.execute())

    async def ping(self) -> bool:
        return bool(await self._run(self.redis.ping()))
