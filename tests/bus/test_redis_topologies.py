"""The Cluster and Sentinel fixtures are real topologies: plain redis-py 6 reads, writes, shards pub/sub and
survives a master's death through the replica. Each topology's failover test runs last in its group, since the
fixtures are module-scoped and the kill is not undone."""

from __future__ import annotations

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from tests.support.redis_topologies import RedisClusterSet, SentinelSet, poll


def cluster_client(cluster: RedisClusterSet) -> RedisCluster:
    """Seeded with every live node, so a killed seed does not matter."""
    return RedisCluster(startup_nodes=[ClusterNode(n.address[0], n.port) for n in cluster.live()],
                        decode_responses=True, socket_timeout=1)


def test_cluster_url_names_two_seeds(redis_cluster):
    assert redis_cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for _, p in redis_cluster.seeds)
    assert len(redis_cluster.seeds) == 2 and len(redis_cluster.nodes) == 6


def test_cluster_set_get_across_slots(redis_cluster):
    client = cluster_client(redis_cluster)
    keys = [f"key-{i}" for i in range(30)]
    for key in keys:
        client.set(key, key.upper())
    assert [client.get(key) for key in keys] == [key.upper() for key in keys]
    assert len({redis_cluster.master_for_key(key).port for key in keys}) == 3


def test_cluster_sharded_pubsub_on_the_slot_owner(redis_cluster):
    channel = "crypto:stream:{c1}"
    owner = redis_cluster.master_for_key(channel)
    pubsub = owner.client().pubsub()
    pubsub.ssubscribe(channel)
    assert pubsub.get_sharded_message(timeout=2)["type"] == "ssubscribe"
    assert owner.client().spublish(channel, "hello") == 1
    message = pubsub.get_sharded_message(timeout=2)
    assert (message["type"], message["channel"], message["data"]) == ("smessage", channel, "hello")
    # The cluster client routes SPUBLISH to the same node by slot.
    assert cluster_client(redis_cluster).spublish(channel, "again") == 1
    assert pubsub.get_sharded_message(timeout=2)["data"] == "again"
    pubsub.close()


def replicated_set(client: redis.Redis, key: str, value: str) -> None:
    """SET then WAIT on the same connection (WAIT counts only this connection's writes), so the replica has the
    key before its master dies."""
    assert client.pipeline(transaction=False).set(key, value).wait(1, 2000).execute() == [True, 1]


def test_cluster_master_kill_promotes_its_replica(redis_cluster):
    master = redis_cluster.master_for_key("survivor")
    replicated_set(master.client(), "survivor", "yes")
    redis_cluster.kill(master)
    seconds = redis_cluster.wait_promoted(master, timeout=10)
    print(f"cluster failover took {seconds:.2f}s")
    assert seconds < 6
    promoted = redis_cluster.master_for_key("survivor")
    assert promoted.port != master.port
    assert cluster_client(redis_cluster).get("survivor") == "yes"


def test_sentinel_url_and_master(redis_sentinel):
    ports = ",".join(f"127.0.0.1:{p}" for _, p in redis_sentinel.sentinel_addresses())
    assert redis_sentinel.url == f"redis+sentinel://{ports}/{redis_sentinel.master_name}/0"
    assert redis_sentinel.current_master() == redis_sentinel.data_nodes[0].address


def sentinel_master(topology: SentinelSet) -> redis.Redis:
    sentinel = Sentinel(topology.sentinel_addresses(), socket_timeout=1)
    return sentinel.master_for(topology.master_name, decode_responses=True, socket_timeout=1)


def test_sentinel_master_for_writes(redis_sentinel):
    master = sentinel_master(redis_sentinel)
    master.set("k", "v")
    assert master.get("k") == "v"
    assert redis_sentinel.master_node().client().get("k") == "v"


def test_sentinel_master_kill_fails_over_to_the_replica(redis_sentinel):
    master = sentinel_master(redis_sentinel)
    replicated_set(master, "survivor", "yes")
    old, replica = redis_sentinel.master_node(), redis_sentinel.data_nodes[1]
    redis_sentinel.kill_master()
    seconds = redis_sentinel.wait_failover(timeout=15)
    print(f"sentinel failover took {seconds:.2f}s")
    assert seconds < 8
    assert redis_sentinel.current_master() == replica.address != old.address
    fresh = sentinel_master(redis_sentinel)
    fresh.set("after", "failover")
    assert fresh.get("survivor") == "yes"
    # The client made before the failover finds the new master too, once its dead connection is dropped.
    assert poll(lambda: master.set("again", "1"), 5, "old master_for client writes again")
    assert replica.client().get("after") == "failover"
