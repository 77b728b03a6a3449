"""The bus's Redis steps (Lua scripts) against fakeredis: fast, no server needed."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from apps.crypto.grpc.services.bus import messages as m
from apps.crypto.grpc.services.bus.keys import Keys
from apps.crypto.grpc.services.bus.link import (Hold, HoldStatus, RedisLink, Refresh, RefreshStatus, Route,
                                                Settlement)


@pytest.fixture
def server():
    return fakeredis.FakeServer()


def link_for(server, replica: str, grace: float = 5.0) -> RedisLink:
    return RedisLink(fakeredis.FakeAsyncRedis(server=server), Keys("t"), replica, owner_ttl=10, grace=grace)


async def test_claim_epochs_grow_and_report_the_previous_owner(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    first = await a.claim("c1")
    second = await b.claim("c1")
    assert second.epoch > first.epoch  # fencing: a newer claim always has a higher epoch
    assert second.previous == m.Owner("A", first.epoch)
    assert await a.owner("c1") == m.Owner("B", second.epoch)


async def test_every_key_written_has_a_ttl(server):
    a = link_for(server, "A")
    claim = await a.claim("c1")
    await a.route("c1", "cmd1", "envelope", ack_wait=5)
    await a.settle_ack("cmd1", "c1", "", "envelope")
    await a.post_listing("req1", "{}")
    await a.release("c1", claim.epoch, grace=True)
    await a.hold("c1", "envelope")
    redis = a.redis
    keys = await redis.keys("t:*")
    assert len(keys) >= 4
    for key in keys:
        assert await redis.pttl(key) > 0, key


async def test_upkeep_state_is_one_key_per_client_and_one_lease_per_replica(server):
    """What a connected client costs in Redis: its owner key, nothing else (no epoch, no presence)."""
    a, b = link_for(server, "A"), link_for(server, "B")
    for n in range(50):
        await (a if n % 2 else b).claim(f"c{n}")
    await a.beat(25)
    await b.beat(25)
    keys = sorted(k.decode() for k in await a.redis.keys("t:*"))
    assert len(keys) == 51 and "t:replicas" in keys
    assert set(await a.redis.hkeys("t:replicas")) == {b"A", b"B"}
    await a.retire()
    assert set(await a.redis.hkeys("t:replicas")) == {b"B"}


def test_every_key_of_a_client_shares_its_hash_tag():
    """One hash slot per client on a Redis Cluster: each Lua script touches keys of one client."""
    from redis.crc import key_slot

    k = Keys("t")
    for client in ("c1", "bot-7", "we{ird}", "}x", "{"):
        slots = {key_slot(key.encode()) for key in (k.owner(client), k.held(client), k.recent(client),
                                                    k.ack_wait(client, "cmd"), k.ack_result(client, "cmd"))}
        assert len(slots) == 1, client
    with pytest.raises(ValueError, match="hash tags"):
        Keys("bad{prefix}")


async def test_refresh_keeps_detects_takeover_and_reclaims_after_loss(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    claim = await a.claim("c1")
    assert await a.refresh([("c1", claim.epoch)]) == [Refresh(RefreshStatus.KEPT)]
    await a.redis.delete("t:owner:{c1}")  # as after a Redis restart
    [reclaimed] = await a.refresh([("c1", claim.epoch)])
    assert reclaimed.status is RefreshStatus.RECLAIMED and reclaimed.epoch > claim.epoch
    assert await a.owner("c1") == m.Owner("A", reclaimed.epoch)
    await b.claim("c1")
    assert await a.refresh([("c1", reclaimed.epoch)]) == [Refresh(RefreshStatus.TAKEN)]


async def test_release_never_deletes_a_newer_claim(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    old = await a.claim("c1")
    new = await b.claim("c1")
    assert not await a.release("c1", old.epoch, grace=True)
    assert await a.owner("c1") == m.Owner("B", new.epoch)
    assert await b.release("c1", new.epoch, grace=True)
    assert await a.owner("c1") is None


async def test_hold_routes_to_owner_holds_in_grace_and_refuses_outside(server):
    a = link_for(server, "A")
    assert await a.hold("c1", "e1") == Hold(HoldStatus.OFFLINE)
    claim = await a.claim("c1")
    assert await a.hold("c1", "e1") == Hold(HoldStatus.OWNED, m.Owner("A", claim.epoch))
    await a.release("c1", claim.epoch, grace=True)
    assert await a.hold("c1", "e1") == Hold(HoldStatus.HELD)
    assert await a.hold("c1", "e2") == Hold(HoldStatus.HELD)
    again = await link_for(server, "B").claim("c1")
    assert again.held == [b"e1", b"e2"]


async def test_withdraw_is_atomic_against_a_claim(server):
    a = link_for(server, "A")
    claim = await a.claim("c1")
    await a.release("c1", claim.epoch, grace=True)
    await a.hold("c1", "e1")
    assert await a.withdraw("c1", "e1")
    assert (await a.claim("c1")).held == []
    await a.release("c1", claim.epoch + 1, grace=True)
    await a.hold("c1", "e2")
    await a.claim("c1")
    assert not await a.withdraw("c1", "e2")


async def test_release_without_grace_leaves_client_offline(server):
    a = link_for(server, "A")
    claim = await a.claim("c1")
    await a.release("c1", claim.epoch, grace=False)
    assert await a.hold("c1", "e1") == Hold(HoldStatus.OFFLINE)


async def test_ack_recorded_once_and_routed_to_waiter(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    await a.route("c1", "cmd1", "cmd-envelope", ack_wait=5)
    async with a.redis.pubsub() as sub:
        await sub.subscribe("t:chan:A")
        assert await b.settle_ack("cmd1", "c2", "", "x") == Settlement("", 0)  # another client's: not its wait
        assert await b.settle_ack("cmd1", "c1", "", "ack-envelope") == Settlement("A", 1)
        assert await b.settle_ack("cmd1", "c1", "A", "again") == Settlement(duplicate=True)  # not published
        assert await published(sub) == ["ack-envelope"]


async def test_an_ack_nobody_waits_for_stores_nothing_in_redis(server):
    """A bot acking command_ids never sent to it (random, or predicted) cannot make Redis store anything,
    and cannot spoil a later command with that id."""
    a, b = link_for(server, "A"), link_for(server, "B")
    before = await a.redis.dbsize()
    for n in range(200):
        assert await b.settle_ack(f"random-{n}", "c1", "", "x" * 2048) == Settlement("", 0)
    assert await a.redis.dbsize() == before
    await a.route("c2", "random-7", "cmd-envelope", ack_wait=5)  # now really sent, to another client
    assert await b.settle_ack("random-7", "c2", "", "ack") == Settlement("A", 0)  # its real ack still counts


async def test_settle_ack_publishes_to_the_replica_the_owner_names(server):
    b = link_for(server, "B")
    async with b.redis.pubsub() as sub:
        await sub.subscribe("t:chan:C")
        assert await b.settle_ack("cmd1", "c1", "C", "ack-envelope") == Settlement("C", 1)
        assert await published(sub) == ["ack-envelope"]


async def test_a_caller_chosen_command_id_is_taken_once(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    assert await a.reserve("mine-1", 60)
    assert not await b.reserve("mine-1", 60)
    assert 0 < await a.redis.pttl("t:cmdid:mine-1") <= 60_000


async def test_route_publishes_to_the_owner_in_one_call(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    claim = await b.claim("c1")
    async with a.redis.pubsub() as sub:
        await sub.subscribe("t:chan:B")
        route = await a.route("c1", "cmd1", "cmd-envelope", ack_wait=5)
        assert route == Route(m.Owner("B", claim.epoch), 1)
        assert await published(sub) == ["cmd-envelope"]
    assert await a.redis.get("t:ackwait:{c1}:cmd1") == b"A"
    await link_for(server, "C").claim("c2")
    assert (await a.route("c2", "cmd2", "x")).receivers == 0  # nobody listens on C's channel
    assert await a.redis.get("t:ackwait:{c2}:cmd2") is None  # not awaited: no ack wait recorded


async def test_route_publishes_nothing_without_a_remote_owner(server):
    a = link_for(server, "A")
    assert await a.route("c1", "cmd1", "x") == Route(None, -1)
    claim = await a.claim("c1")
    assert await a.route("c1", "cmd2", "x") == Route(m.Owner("A", claim.epoch), -1)


async def published(sub, wait: float = 0.3) -> list[str]:
    """Messages that reached a subscription within `wait` seconds (subscribe confirmations skipped)."""
    out, until = [], asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < until:
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            out.append(message["data"].decode())
    return out


async def test_clean_stale_only_removes_the_claim_it_saw(server):
    a, b = link_for(server, "A"), link_for(server, "B")
    old = await a.claim("c1")
    seen = m.Owner("A", old.epoch)
    await b.claim("c1")
    assert not await a.clean_stale("c1", seen)
    assert (await a.owner("c1")).replica_id == "B"


def test_envelope_round_trip_and_rejects_garbage():
    env = m.Envelope(m.EnvelopeKind.COMMAND, client_id="c", command_id="x", reply_to="A", body=b"\x00\x01",
                     wait_ack=True)
    assert m.decode(m.encode(env)) == env
    for bad in (b"not json", b'{"kind": "cmd", "unknown": 1}', b"[]", b'{"kind": "nope"}', b"{}"):
        with pytest.raises(ValueError):
            m.decode(bad)


def test_envelope_kinds_keep_their_wire_values():
    """Replicas of different versions talk during a rollout: these strings must never change."""
    assert {k.name: k.value for k in m.EnvelopeKind} == {
        "COMMAND": "cmd", "DELIVERED": "dlv", "UNDELIVERABLE": "nodlv", "ACK": "ack", "EVICT": "evict", "LIST": "list",
        "BROADCAST": "bcast", "BROADCAST_CANCEL": "bcancel"}  # #16 added the last two
    decoded = m.decode(m.encode(m.Envelope(m.EnvelopeKind.EVICT, epoch=3)))
    assert decoded.kind is m.EnvelopeKind.EVICT
    assert '"kind":"evict"' in m.encode(decoded)


async def test_listening_sees_subscribers(server):
    a = link_for(server, "A")
    assert not await a.listening("B")
    pubsub = a.redis.pubsub()
    await pubsub.subscribe(a.keys.channel("B"))
    assert await a.listening("B")
    await pubsub.aclose()


async def test_a_reclaim_takes_the_commands_held_while_the_claim_was_gone(server):
    """A router that found the owner's channel silent (its subscription was moving during a Redis failover)
    cleans the claim and holds the command; the owner's recovery re-claims and takes it."""
    a, router = link_for(server, "A"), link_for(server, "B")
    claim = await a.claim("c1")
    assert await router.clean_stale("c1", m.Owner("A", claim.epoch))
    assert await router.hold("c1", "held-envelope") == Hold(HoldStatus.HELD)
    [reclaimed] = await a.refresh([("c1", claim.epoch)])
    assert reclaimed.status is RefreshStatus.RECLAIMED and reclaimed.held == [b"held-envelope"]
    assert not await router.withdraw("c1", "held-envelope")  # taken: the caller waits for its confirmation
