"""REDIS_URL -> a typed Redis target (embedded, single server, Sentinel or Cluster), chosen by the URL alone.

Pure parsing, no I/O: the caller picks the client (Redis.from_url, Sentinel, RedisCluster) from `mode`, so a
typo in the deployment config fails at start-up with a message that says what is wrong, never later as a
confusing connection error. Passwords never appear in `describe()` or in error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

SENTINEL_PORT = 26379
REDIS_PORT = 6379

_SINGLE = {"redis": False, "rediss": True}
_SENTINEL = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER = {"redis+cluster": False, "rediss+cluster": True}
ACCEPTED_SCHEMES = (*_SINGLE, *_SENTINEL, *_CLUSTER)

_SENTINEL_SHAPE = "redis+sentinel://host:port[,host:port]/<master-name>[/<db>]"
_CLUSTER_SHAPE = "redis+cluster://host:port[,host:port]"


class InvalidRedisUrl(ValueError):
    """REDIS_URL cannot be used; the message names the problem and shows the URL with its password masked."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"REDIS_URL {mask_password(url)}: {problem}")


class RedisMode(StrEnum):
    EMBEDDED = "embedded"
    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """Where the bus's Redis lives. `url` is the original string, so SINGLE can still go through
    Redis.from_url and keep query options such as ?ssl_cert_reqs=. repr() is describe(): no password."""

    mode: RedisMode
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    db: int = 0
    username: str = ""
    password: str = ""
    sentinel_password: str = ""
    tls: bool = False

    def __repr__(self) -> str:
        return f"RedisTarget({self.describe()})"

    def describe(self) -> str:
        """One line for logs, without any password."""
        if self.mode is RedisMode.EMBEDDED:
            return "embedded redis (REDIS_URL empty)"
        if self.mode is RedisMode.SINGLE:
            return f"single redis {mask_password(self.url)}"
        nodes = ",".join(_join_host_port(host, port) for host, port in self.nodes)
        auth = f" user={self.username}" if self.username else ""
        auth += " password=set" if self.password else ""
        tls = " tls" if self.tls else ""
        if self.mode is RedisMode.SENTINEL:
            sentinel_auth = " sentinel_password=set" if self.sentinel_password else ""
            return f"sentinel master={self.master_name} db={self.db} sentinels={nodes}{auth}{sentinel_auth}{tls}"
        return f"cluster seeds={nodes}{auth}{tls}"


def parse_redis_url(url: str, password: str = "", sentinel_password: str = "") -> RedisTarget:
    """Parse REDIS_URL. `password` (REDIS_PASSWORD) is for data nodes when the URL carries none;
    `sentinel_password` (REDIS_SENTINEL_PASSWORD) is for the sentinels."""
    url = url.strip()
    if not url:
        return RedisTarget(RedisMode.EMBEDDED)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ACCEPTED_SCHEMES:
        shown = f"'{scheme}'" if sep else "missing"
        accepted = ", ".join(f"{name}://" for name in ACCEPTED_SCHEMES)
        raise InvalidRedisUrl(url, f"unknown scheme {shown} (accepted: {accepted})")
    username, url_password, hosts, path = _split(rest)
    data_password = url_password or password

    if scheme in _SINGLE:
        return _single(url, scheme, hosts, path, username, data_password)
    if scheme in _SENTINEL:
        master_name, db = _sentinel_path(url, path)
        return RedisTarget(RedisMode.SENTINEL, url, _nodes(url, hosts, SENTINEL_PORT), master_name, db,
                           username, data_password, sentinel_password, _SENTINEL[scheme])
    if path.strip("/") not in ("", "0"):
        raise InvalidRedisUrl(url, f"cluster has only db 0, got path '/{path}' (expected {_CLUSTER_SHAPE})")
    return RedisTarget(RedisMode.CLUSTER, url, _nodes(url, hosts, REDIS_PORT), db=0, username=username,
                       password=data_password, tls=_CLUSTER[scheme])


def _split(rest: str) -> tuple[str, str, str, str]:
    """'user:pass@hosts/path?query' -> (user, pass, hosts, path). Not urlsplit: it rejects several hosts."""
    before_query = rest.partition("?")[0]
    userinfo, _, host_path = before_query.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts, _, path = host_path.partition("/")
    return unquote(username), unquote(password), hosts, path


def _single(url: str, scheme: str, hosts: str, path: str, username: str, password: str) -> RedisTarget:
    """One server; query options are left to Redis.from_url(target.url)."""
    if "," in hosts:
        raise InvalidRedisUrl(url, f"{scheme}:// takes one host; use redis+sentinel:// or redis+cluster:// "
                                   "for several")
    nodes = _nodes(url, hosts, REDIS_PORT)
    db_text = path.strip("/") or "0"
    if not db_text.isdigit():
        raise InvalidRedisUrl(url, f"db must be an integer, got '{db_text}'")
    return RedisTarget(RedisMode.SINGLE, url, nodes, db=int(db_text), username=username, password=password,
                       tls=_SINGLE[scheme])


def _sentinel_path(url: str, path: str) -> tuple[str, int]:
    """'/<master-name>[/<db>]' -> (name, db); the master name is required because sentinels watch many."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    if not parts or not parts[0]:
        raise InvalidRedisUrl(url, f"missing master name (expected {_SENTINEL_SHAPE})")
    if len(parts) > 2:
        raise InvalidRedisUrl(url, f"too many path segments '/{path}' (expected {_SENTINEL_SHAPE})")
    db_text = parts[1] if len(parts) == 2 else "0"
    if not db_text.isdigit():
        raise InvalidRedisUrl(url, f"db must be an integer, got '{db_text}' (expected {_SENTINEL_SHAPE})")
    return unquote(parts[0]), int(db_text)


_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*))(?::(?P<port>[^:]*))?$")


def _nodes(url: str, hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """'h1:p1,[::1]:p2,h3' -> ((h1, p1), ('::1', p2), (h3, default_port))."""
    nodes = []
    for item in hosts.split(","):
        match = _HOST_PORT.match(item.strip())
        if not match:
            raise InvalidRedisUrl(url, f"cannot read host:port '{item}' (IPv6 hosts go in brackets: [::1]:6379)")
        host = match["ipv6"] if match["ipv6"] is not None else match["host"]
        if not host:
            raise InvalidRedisUrl(url, f"empty host in '{hosts}'" if hosts else "empty host")
        port_text = match["port"]
        if port_text is None:
            nodes.append((host, default_port))
            continue
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidRedisUrl(url, f"bad port '{port_text}' for host {host} (expected 1-65535)")
        nodes.append((host, int(port_text)))
    return tuple(nodes)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def mask_password(url: str) -> str:
    """The URL with the password in its user-info replaced by '***' (for logs and errors). The user-info ends
    at the last '@' before the query, so a password holding an unencoded '/' or '@' is still masked."""
    scheme, sep, rest = url.partition("://")
    before_query, q, query = rest.partition("?")
    userinfo, at, host_path = before_query.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host_path}{q}{query}"
