"""The only Redis I/O of the bus: scripts, publish, presence. Errors surface as BusUnavailable.

Multi-key steps run as Lua, so each is atomic inside Redis; each script sits above the method that
runs it, and touches only keys of one client (one hash slot, for Redis Cluster). Owner values are
"replica|epoch"; the epoch is the claim's Redis time in ms, and always above the replaced claim's
(fencing). On a cluster (sharded) the scripts publish nothing: pub/sub channels hash to other slots,
so the link sends the SPUBLISH itself, right after.

Upkeep cost grows with replicas, not clients: owner keys live long (ownership_ttl, extended by a rare
batched audit), a replica's liveness is its subscription (a publish's receiver count, 0 once it is
gone) and its lease in one fleet-wide hash, and listings ask the replicas themselves.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .keys import Keys
from .messages import Envelope, Owner, encode

ACK_RESULT_TTL_MS = 10 * 60 * 1000
HELD_SLACK_MS = 5000  # held lists outlive the grace window by this, for withdrawals
BROADCAST_TTL_MS = 60_000  # a broadcast's result list outlives its caller by at most this (a caller that died)
BROADCAST_POP = 1_000  # result batches taken per BLMPOP
LISTING_TTL_MS = 30_000  # a listing's replies, kept this long for a slow reader
LEASE_FORGOTTEN = 3600.0  # a replica lease this old (a killed replica) is removed by the next reader
CLUSTER_FANOUT = 64  # scripts in flight at once when refreshing claims on a cluster (no pipelines there)
NOT_PUBLISHED = -2  # a script's receiver count when it left the publish to the link (sharded)


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
    """The outcome of refreshing one claim; epoch and held are set only when it was re-claimed."""

    status: RefreshStatus
    epoch: int = 0
    held: list[bytes] = field(default_factory=list)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLink:
    """Wraps a redis.asyncio client (one server, Sentinel's master, a cluster, or the in-process
    stand-in) with the bus's operations. `sharded`: a Redis Cluster (SPUBLISH, no inline publish)."""

    def __init__(self, redis: Any, keys: Keys, replica_id: str, owner_ttl: float, grace: float,
                 sharded: bool = False) -> None:
        self.redis, self.keys, self.replica_id, self.sharded = redis, keys, replica_id, sharded
        self.owner_ttl_ms, self.grace_ms = _ms(owner_ttl), int(grace * 1000)
        self._inline = "" if sharded else keys.channel_prefix()  # scripts publish only when not sharded
        self._claim = redis.register_script(self.CLAIM)
        self._refresh = redis.register_script(self.REFRESH)
        self._release = redis.register_script(self.RELEASE)
        self._hold = redis.register_script(self.HOLD)
        self._withdraw = redis.register_script(self.WITHDRAW)
        self._route = redis.register_script(self.ROUTE)
        self._settle_ack = redis.register_script(self.SETTLE_ACK)
        self._reserve = redis.register_script(self.RESERVE)
        self._fan_out = redis.register_script(self.FAN_OUT)
        self._post_batch = redis.register_script(self.POST_BATCH)
        self._post_targets = redis.register_script(self.POST_TARGETS)

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable: {type(exc).__name__}") from exc

    # Shared by CLAIM and REFRESH: the next epoch, the claim's Redis time in ms and above `previous`'s.
    _NEXT_EPOCH = """
local function next_epoch(previous)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(string.match(previous or '', '|(%d+)$') or '0')
  return string.format('%d', math.max(now, last + 1))
end
"""

    # Shared by CLAIM and REFRESH (KEYS[2] held list, KEYS[3] recent marker): appends the commands held for
    # the client to `result` and drops them, but only inside the grace window (recent marker alive).
    _TAKE_HELD = """
local function take_held(result)
  if redis.call('EXISTS', KEYS[3]) == 1 then
    for _, item in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do table.insert(result, item) end
    redis.call('DEL', KEYS[2], KEYS[3])
  end
  return result
end
"""

    # KEYS[1] owner, KEYS[2] held list, KEYS[3] recent marker
    # ARGV[1] replica id, ARGV[2] owner TTL ms
    # Returns {epoch, previous owner or "", held command envelopes...}. Held commands are taken
    # only inside the grace window (recent marker alive); later ones stay for their callers to withdraw.
    CLAIM = _NEXT_EPOCH + _TAKE_HELD + """
local previous = redis.call('GET', KEYS[1]) or ''
local epoch = next_epoch(previous)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
return take_held({epoch, previous})
"""

    async def claim(self, client_id: str) -> Claim:
        k = self.keys
        raw = await self._run(self._claim(keys=[k.owner(client_id), k.held(client_id), k.recent(client_id)],
                                          args=[self.replica_id, self.owner_ttl_ms]))
        return Claim(int(raw[0]), Owner.parse(raw[1]), list(raw[2:]))

    # KEYS[1] owner, KEYS[2] held list, KEYS[3] recent marker
    # ARGV[1] "replica|epoch" this replica holds, ARGV[2] owner TTL ms, ARGV[3] replica id
    # Returns 1 kept (TTL extended), 0 taken by another owner, or {epoch, held...} when the claim was
    # gone (a Redis restart or failover lost it, or a router found our channel silent meanwhile) and is
    # claimed again; commands held for the client in the meantime come with it, as on a claim.
    REFRESH = _NEXT_EPOCH + _TAKE_HELD + """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
local epoch = next_epoch(ARGV[1])
redis.call('SET', KEYS[1], ARGV[3] .. '|' .. epoch, 'PX', ARGV[2])
return take_held({epoch})
"""

    async def refresh(self, claims: Iterable[tuple[str, int]]) -> list[Refresh]:
        """Re-check every local claim in one batch (the audit, and recovery after a Redis outage)."""
        k = self.keys
        calls = [([k.owner(client_id), k.held(client_id), k.recent(client_id)],
                  [f"{self.replica_id}|{epoch}", self.owner_ttl_ms, self.replica_id]) for client_id, epoch in claims]
        if self.sharded:  # a cluster runs no multi-slot pipelines: bounded concurrency instead
            gate = asyncio.Semaphore(CLUSTER_FANOUT)

            async def one(keys: list[str], args: list[Any]) -> Any:
                async with gate:
                    return await self._refresh(keys=keys, args=args)
            replies = await self._run(asyncio.gather(*(one(k, a) for k, a in calls)))
        else:
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                await self._refresh(keys=keys, args=args, client=pipe)
            replies = await self._run(pipe.execute())
        return [self._refreshed(reply) for reply in replies]

    @staticmethod
    def _refreshed(reply: int | list[int]) -> Refresh:
        if isinstance(reply, list):
            return Refresh(RefreshStatus.RECLAIMED, int(reply[0]), list(reply[1:]))
        return Refresh(RefreshStatus.KEPT if reply == 1 else RefreshStatus.TAKEN)

    # KEYS[1] owner, KEYS[2] recent marker
    # ARGV[1] "replica|epoch" expected, ARGV[2] grace ms (0: no marker)
    # Compare-and-delete: never removes a newer owner's claim. Returns 1 released, 0 not ours.
    # Used both by the owner ending a stream and by a router that found the owner's replica gone.
    RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

    async def release(self, client_id: str, epoch: int, grace: bool) -> bool:
        return await self._release_claim(client_id, f"{self.replica_id}|{epoch}", self.grace_ms if grace else 0)

    async def clean_stale(self, client_id: str, owner: Owner) -> bool:
        """The owner's replica no longer listens: the client was connected a moment ago, so it enters
        the grace window. True when cleaned."""
        return await self._release_claim(client_id, owner.token(), self.grace_ms)

    async def _release_claim(self, client_id: str, token: str, grace_ms: int) -> bool:
        keys = [self.keys.owner(client_id), self.keys.recent(client_id)]
        return bool(await self._run(self._release(keys=keys, args=[token, grace_ms])))

    async def owner(self, client_id: str) -> Owner | None:
        return Owner.parse(await self._run(self.redis.get(self.keys.owner(client_id))))

    # KEYS[1] owner, KEYS[2] ack wait
    # ARGV[1] this replica id, ARGV[2] channel name prefix ("": publish nothing, sharded),
    # ARGV[3] ack wait TTL ms (0: nobody waits), ARGV[4] command envelope
    # One round trip for a command: look up the owner, note who waits for the ack, publish to the
    # owner's channel. Returns {owner or "", receivers}; receivers is -1 when nothing is to be published
    # (no owner, or this replica owns the client), -2 when the caller must publish (sharded).
    ROUTE = """
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
local owner = redis.call('GET', KEYS[1])
if not owner then return {'', -1} end
local replica = string.match(owner, '^(.*)|%d+$')
if not replica or replica == ARGV[1] then return {owner, -1} end
if ARGV[2] == '' then return {owner, -2} end
return {owner, redis.call('PUBLISH', ARGV[2] .. replica, ARGV[4])}
"""

    async def route(self, client_id: str, command_id: str, raw_envelope: str, ack_wait: float = 0.0) -> Route:
        """Publish a command to the client's owner (one round trip; two on a cluster); with ack_wait
        (seconds) also record that this replica waits for the ack (another owner may receive it)."""
        keys = [self.keys.owner(client_id), self.keys.ack_wait(client_id, command_id)]
        args = [self.replica_id, self._inline, _ms(ack_wait) if ack_wait > 0 else 0, raw_envelope]
        raw_owner, receivers = await self._run(self._route(keys=keys, args=args))
        owner = Owner.parse(raw_owner)
        if receivers == NOT_PUBLISHED and owner is not None:
            receivers = await self._publish_raw(owner.replica_id, raw_envelope)
        return Route(owner, int(receivers))

    async def publish(self, replica_id: str, envelope: Envelope) -> int:
        return await self._publish_raw(replica_id, encode(envelope))

    async def _publish_raw(self, replica_id: str, raw: str) -> int:
        channel = self.keys.channel(replica_id)
        sent = self.redis.execute_command("SPUBLISH", channel, raw) if self.sharded else self.redis.publish(channel, raw)
        return int(await self._run(sent))

    async def listening(self, replica_id: str) -> bool:
        """Whether a replica is still subscribed to its channel (a killed one drops off at once)."""
        channel = self.keys.channel(replica_id)
        if self.sharded:  # PUBSUB SHARDNUMSUB on the node that serves the channel's slot
            node = self.redis.get_node_from_key(channel)
            counts = await self._run(self.redis.execute_command("PUBSUB SHARDNUMSUB", channel, target_nodes=node))
            counts = list(zip(counts[::2], counts[1::2])) if counts and not isinstance(counts[0], tuple) else counts
        else:
            counts = await self._run(self.redis.pubsub_numsub(channel))
        return any(int(count) > 0 for _, count in counts)

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

    # KEYS[1] ack result marker, KEYS[2] ack wait (the waiting replica); both carry the acking client's tag,
    # so a bot can only ever reach the waits of commands sent to itself
    # ARGV[1] marker TTL ms, ARGV[2] replica the owner knows waits ("" if none), ARGV[3] channel name prefix
    # ("": publish nothing, sharded), ARGV[4] ack envelope
    # Forwards the ack to the replica waiting for it, once. Only a command that was sent to this client
    # leaves anything in Redis (a 1-byte marker that spots duplicates), so a bot cannot make Redis store
    # what it likes. Returns {waiting replica, receivers (-2: the caller publishes)}; {"", 0} when nobody
    # waits (the owner records the ack itself); false for a duplicate.
    SETTLE_ACK = """
local replica = redis.call('GET', KEYS[2]) or ''
if ARGV[2] ~= '' then replica = ARGV[2] end
if replica == '' then return {'', 0} end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return false end
redis.call('DEL', KEYS[2])
if ARGV[3] == '' then return {replica, -2} end
return {replica, redis.call('PUBLISH', ARGV[3] .. replica, ARGV[4])}
"""

    async def settle_ack(self, command_id: str, client_id: str, reply_to: str, raw_envelope: str) -> Settlement:
        """Forward the ack to the waiting replica (reply_to if the owner knows it), once."""
        keys = [self.keys.ack_result(client_id, command_id), self.keys.ack_wait(client_id, command_id)]
        args = [ACK_RESULT_TTL_MS, reply_to, self._inline, raw_envelope]
        reply = await self._run(self._settle_ack(keys=keys, args=args))
        if reply is None:  # Lua's false: a duplicate
            return Settlement(duplicate=True)
        waiter, receivers = _text(reply[0]), int(reply[1])
        if receivers == NOT_PUBLISHED:
            receivers = await self._publish_raw(waiter, raw_envelope)
        return Settlement(waiter, receivers)

    # KEYS[1] command id marker   ARGV[1] this reservation's token, ARGV[2] TTL ms
    # Returns 1 when the id is ours: newly taken, or taken by this very reservation (a retry after the
    # reply was lost to a failover must not report our own id as in use); 0 when another caller has it.
    RESERVE = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""

    async def reserve(self, command_id: str, ttl: float) -> bool:
        """Take a caller-chosen command_id; False when it is already in use."""
        token = f"{self.replica_id}:{uuid.uuid4().hex[:12]}"
        return bool(await self._run(self._reserve(keys=[self.keys.command_id(command_id)], args=[token, _ms(ttl)])))

    async def beat(self, clients: int) -> None:
        """This replica's lease in the fleet-wide hash: one call per interval, whatever its client count."""
        lease = json.dumps({"replica": self.replica_id, "clients": clients, "at": time.time()})
        await self._run(self.redis.hset(self.keys.replicas(), self.replica_id, lease))

    async def retire(self) -> None:
        """A replica shutting down removes its lease at once."""
        await self._run(self.redis.hdel(self.keys.replicas(), self.replica_id))

    async def leases(self) -> dict[str, dict[str, Any]]:
        """Every replica's lease, by replica id."""
        raw = await self._run(self.redis.hgetall(self.keys.replicas()))
        return {_text(field): json.loads(value) for field, value in raw.items()}

    async def forget_leases(self, replica_ids: list[str]) -> None:
        if replica_ids:
            await self._run(self.redis.hdel(self.keys.replicas(), *replica_ids))

    async def collect_listing(self, request_id: str, expected: int, timeout: float) -> list[str]:
        """The replies to a listing request that arrive within timeout (at most `expected`)."""
        key, replies = self.keys.listing(request_id), []
        until = time.monotonic() + timeout
        while len(replies) < expected and (left := until - time.monotonic()) > 0:
            popped = await self._run(self.redis.blpop([key], timeout=min(left, 1.0)))
            if popped:
                replies.append(_text(popped[1]))
        await self._run(self.redis.delete(key))
        return replies

    async def post_listing(self, request_id: str, payload: str) -> None:
        """Answer a listing request: push this replica's clients to the requester's list."""
        key = self.keys.listing(request_id)
        await self._run(self.redis.rpush(key, payload))
        await self._run(self.redis.pexpire(key, LISTING_TTL_MS))

    # no keys; ARGV[1] channel name prefix, ARGV[2] envelope, ARGV[3..] replica ids
    # A broadcast's one round trip out: the envelope to every replica's channel; returns each one's receivers.
    FAN_OUT = """
local reached = {}
for i = 3, #ARGV do reached[#reached + 1] = redis.call('PUBLISH', ARGV[1] .. ARGV[i], ARGV[2]) end
return reached
"""

    async def fan_out(self, replica_ids: list[str], envelope: Envelope) -> dict[str, int]:
        """The same envelope to each replica's channel, in one call (one SPUBLISH each on a cluster, where
        the channels live on different shards); the receivers each publish reached."""
        if not replica_ids:
            return {}
        raw = encode(envelope)
        if self.sharded:
            counts = await self._run(asyncio.gather(*(self._publish_raw(r, raw) for r in replica_ids)))
        else:
            counts = await self._run(self._fan_out(keys=[], args=[self._inline, raw, *replica_ids]))
        return {replica: int(count) for replica, count in zip(replica_ids, counts)}

    # KEYS[1] the broadcast's result list   ARGV[1] batch, ARGV[2] TTL ms
    POST_BATCH = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

    async def post_batch(self, broadcast_id: str, payload: str) -> None:
        """A replica's batch of results for the broadcast's caller: one call."""
        key = self.keys.broadcast(broadcast_id)
        await self._run(self._post_batch(keys=[key], args=[payload, BROADCAST_TTL_MS]))

    # KEYS[1] the broadcast's targets hash   ARGV[1] replica, ARGV[2] its targets (JSON), ARGV[3] TTL ms
    POST_TARGETS = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

    async def post_targets(self, broadcast_id: str, payload: str, ttl: float) -> None:
        """A replica's targets, before it delivers: read by the caller only if that replica dies."""
        key = self.keys.broadcast_targets(broadcast_id)
        await self._run(self._post_targets(keys=[key], args=[self.replica_id, payload, _ms(ttl)]))

    async def read_targets(self, broadcast_id: str, replica_id: str) -> str | None:
        raw = await self._run(self.redis.hget(self.keys.broadcast_targets(broadcast_id), replica_id))
        return None if raw is None else _text(raw)

    async def take_batches(self, broadcast_id: str, timeout: float) -> list[str]:
        """Every batch waiting (one BLMPOP), or [] after timeout seconds."""
        key = self.keys.broadcast(broadcast_id)
        reply = await self._run(self.redis.blmpop(max(timeout, 0.01), 1, key, direction="LEFT", count=BROADCAST_POP))
        return [_text(item) for item in reply[1]] if reply else []

    async def drop_batches(self, broadcast_id: str) -> None:
        await self._run(self.redis.delete(self.keys.broadcast(broadcast_id)))

    async def ping(self) -> bool:
        return bool(await self._run(self.redis.ping()))


def new_request_id() -> str:
    return uuid.uuid4().hex
