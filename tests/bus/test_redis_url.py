"""REDIS_URL parsing: every mode, every error message, and no password ever leaking into logs or errors."""

from __future__ import annotations

import dataclasses

import pytest

from apps.crypto.grpc.services.bus.redis_url import (InvalidRedisUrl, RedisMode, RedisTarget, mask_password,
                                                     parse_redis_url)

SECRET = "s3cr3t"


def test_empty_url_is_embedded():
    assert parse_redis_url("").mode is RedisMode.EMBEDDED
    assert parse_redis_url("   ").mode is RedisMode.EMBEDDED
    assert parse_redis_url("").describe() == "embedded redis (REDIS_URL empty)"


def test_single_keeps_the_original_url_for_from_url():
    url = f"rediss://app:{SECRET}@cache.internal:6380/2?ssl_cert_reqs=none"
    target = parse_redis_url(url)
    assert target == RedisTarget(RedisMode.SINGLE, url, (("cache.internal", 6380),), db=2, username="app",
                                 password=SECRET, tls=True)
    assert target.describe() == "single redis rediss://app:***@cache.internal:6380/2?ssl_cert_reqs=none"


def test_single_defaults_port_and_db_and_takes_the_env_password():
    target = parse_redis_url("redis://localhost", password="from-env")
    assert (target.nodes, target.db, target.password, target.tls) == ((("localhost", 6379),), 0, "from-env", False)


def test_the_url_password_wins_over_the_env_password():
    assert parse_redis_url(f"redis://:{SECRET}@h/0", password="from-env").password == SECRET


def test_percent_encoded_credentials_are_decoded():
    target = parse_redis_url("redis://us%40er:p%2Fw%40rd@h:1/3")
    assert (target.username, target.password, target.db) == ("us@er", "p/w@rd", 3)


def test_single_ipv6_host():
    assert parse_redis_url("redis://[::1]:6390/1").nodes == (("::1", 6390),)
    assert parse_redis_url("redis://[::1]").nodes == (("::1", 6379),)


def test_sentinel():
    target = parse_redis_url(f"redis+sentinel://app:{SECRET}@s1:26380,s2,[::1]:26381/mymaster/4",
                             sentinel_password="sent-pw")
    assert target.mode is RedisMode.SENTINEL
    assert target.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (target.master_name, target.db, target.username) == ("mymaster", 4, "app")
    assert (target.password, target.sentinel_password, target.tls) == (SECRET, "sent-pw", False)
    assert target.describe() == ("sentinel master=mymaster db=4 sentinels=s1:26380,s2:26379,[::1]:26381 "
                                 "user=app password=set sentinel_password=set")


def test_sentinel_tls_default_db_and_trailing_slash():
    target = parse_redis_url("rediss+sentinel://s1/mymaster/", password="pw")
    assert (target.tls, target.db, target.master_name, target.password) == (True, 0, "mymaster", "pw")
    assert target.describe() == "sentinel master=mymaster db=0 sentinels=s1:26379 password=set tls"


def test_cluster():
    target = parse_redis_url(f"redis+cluster://:{SECRET}@c1:7000,c2:7001,c3", password="ignored")
    assert target.mode is RedisMode.CLUSTER
    assert target.nodes == (("c1", 7000), ("c2", 7001), ("c3", 6379))
    assert (target.db, target.password, target.tls) == (0, SECRET, False)
    assert target.describe() == "cluster seeds=c1:7000,c2:7001,c3:6379 password=set"


def test_cluster_tls_and_explicit_db_zero():
    target = parse_redis_url("rediss+cluster://[::1]:7000/0")
    assert (target.tls, target.nodes, target.db) == (True, (("::1", 7000),), 0)


def test_scheme_is_case_insensitive():
    assert parse_redis_url("REDIS+CLUSTER://c1:7000").mode is RedisMode.CLUSTER


@pytest.mark.parametrize("url, message", [
    ("redis+sentinel://h:26379",
     "REDIS_URL redis+sentinel://h:26379: missing master name "
     "(expected redis+sentinel://host:port[,host:port]/<master-name>[/<db>])"),
    ("redis+sentinel://h:26379/",
     "REDIS_URL redis+sentinel://h:26379/: missing master name "
     "(expected redis+sentinel://host:port[,host:port]/<master-name>[/<db>])"),
    ("redis+sentinel://h/m/x",
     "REDIS_URL redis+sentinel://h/m/x: db must be an integer, got 'x' "
     "(expected redis+sentinel://host:port[,host:port]/<master-name>[/<db>])"),
    ("redis+sentinel://h/m/0/extra",
     "REDIS_URL redis+sentinel://h/m/0/extra: too many path segments '/m/0/extra' "
     "(expected redis+sentinel://host:port[,host:port]/<master-name>[/<db>])"),
    ("http://h:6379",
     "REDIS_URL http://h:6379: unknown scheme 'http' (accepted: redis://, rediss://, redis+sentinel://, "
     "rediss+sentinel://, redis+cluster://, rediss+cluster://)"),
    ("h:6379",
     "REDIS_URL h:6379: unknown scheme missing (accepted: redis://, rediss://, redis+sentinel://, "
     "rediss+sentinel://, redis+cluster://, rediss+cluster://)"),
    ("redis://h:abc/0", "REDIS_URL redis://h:abc/0: bad port 'abc' for host h (expected 1-65535)"),
    ("redis://h:70000", "REDIS_URL redis://h:70000: bad port '70000' for host h (expected 1-65535)"),
    ("redis+cluster://c1:7000,c2:0", "REDIS_URL redis+cluster://c1:7000,c2:0: bad port '0' for host c2 "
                                     "(expected 1-65535)"),
    ("redis://:6379/0", "REDIS_URL redis://:6379/0: empty host in ':6379'"),
    ("redis:///0", "REDIS_URL redis:///0: empty host"),
    ("redis+cluster://c1,,c2", "REDIS_URL redis+cluster://c1,,c2: empty host in 'c1,,c2'"),
    ("redis://[]:6379", "REDIS_URL redis://[]:6379: empty host in '[]:6379'"),
    ("redis://h/zero", "REDIS_URL redis://h/zero: db must be an integer, got 'zero'"),
    ("redis://a,b/0", "REDIS_URL redis://a,b/0: redis:// takes one host; use redis+sentinel:// or "
                      "redis+cluster:// for several"),
    ("redis+cluster://c1:7000/1", "REDIS_URL redis+cluster://c1:7000/1: cluster has only db 0, got path '/1' "
                                  "(expected redis+cluster://host:port[,host:port])"),
    ("rediss+cluster://c1/x", "REDIS_URL rediss+cluster://c1/x: cluster has only db 0, got path '/x' "
                              "(expected redis+cluster://host:port[,host:port])"),
    ("redis://::1:6379", "REDIS_URL redis://::1:6379: cannot read host:port '::1:6379' "
                         "(IPv6 hosts go in brackets: [::1]:6379)"),
])
def test_errors_name_the_problem(url, message):
    with pytest.raises(InvalidRedisUrl) as caught:
        parse_redis_url(url)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", [
    f"redis+sentinel://u:{SECRET}@h:26379",
    f"redis://:{SECRET}@h:bad/0",
    f"ftp://u:{SECRET}@h",
    f"redis+cluster://u:{SECRET}@c1/3",
    f"redis://u:{SECRET}/with/slash@h:x",
])
def test_errors_mask_the_password(url):
    with pytest.raises(InvalidRedisUrl) as caught:
        parse_redis_url(url, password="env-" + SECRET, sentinel_password="sent-" + SECRET)
    assert SECRET not in str(caught.value)
    assert ":***@" in str(caught.value)


@pytest.mark.parametrize("url", [
    f"redis://u:{SECRET}@h/0",
    f"rediss://:{SECRET}@h:6380/0?ssl_cert_reqs=none",
    "redis://h/0",
    f"redis+sentinel://u:{SECRET}@s1,s2/m/1",
    "redis+sentinel://s1/m",
    f"redis+cluster://:{SECRET}@c1,c2",
    "rediss+cluster://c1",
])
def test_describe_and_repr_never_show_a_password(url):
    target = parse_redis_url(url, password="env-" + SECRET, sentinel_password="sent-" + SECRET)
    assert SECRET not in target.describe()
    assert SECRET not in repr(target)


def test_target_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_redis_url("redis://h").db = 3  # type: ignore[misc]


def test_mask_password_leaves_password_free_urls_alone():
    assert mask_password("redis://h:1/0?x=y") == "redis://h:1/0?x=y"
    assert mask_password("redis://user@h") == "redis://user@h"
    assert mask_password(f"redis://u:{SECRET}@h/0?a=b") == "redis://u:***@h/0?a=b"
