"""Prometheus metrics of a replica. Labels stay bounded: never a client_id or command_id."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ACTIVE_STREAMS = Gauge("crypto_active_streams", "Client streams held by this replica")
STREAMS_OPENED = Counter("crypto_streams_opened_total", "Client streams accepted")
STREAMS_CLOSED = Counter("crypto_streams_closed_total", "Client streams ended, by reason", ["reason"])
MESSAGES_IN = Counter("crypto_client_messages_total", "Client messages received, by payload type", ["type"])
MESSAGES_REJECTED = Counter("crypto_client_messages_rejected_total", "Client messages refused, by payload type and cause",
                            ["type", "cause"])
COMMANDS = Counter("crypto_commands_total", "Commands accepted by this replica, by RPC, kind and outcome",
                   ["rpc", "kind", "outcome"])
ACK_LATENCY = Histogram("crypto_ack_latency_seconds", "ExecuteCommandSync time to the client's ack", ["route"],
                        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15))
BROADCASTS = Counter("crypto_broadcasts_total", "BroadcastCommand calls this replica accepted, by selector way",
                     ["selector"])
BROADCAST_RESULTS = Counter("crypto_broadcast_results_total",
                            "Per-client results of the broadcasts this replica accepted, by outcome", ["outcome"])
BROADCAST_SECONDS = Histogram("crypto_broadcast_seconds", "BroadcastCommand time from acceptance to the summary",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30))
BROADCAST_LOST_REPLICAS = Counter("crypto_broadcast_lost_replicas_total",
                                  "Replicas that went away during a broadcast this replica accepted")
BUS_ROUTED = Counter("crypto_bus_commands_routed_total", "Commands published to another replica's channel")
BUS_NO_SUBSCRIBER = Counter("crypto_bus_publish_no_subscriber_total", "Publishes that reached no replica (owner gone)")
GRACE_HELD = Gauge("crypto_grace_held_commands", "Commands this replica's callers have waiting in the grace buffer")
KEEPALIVE_PINGS = Counter("crypto_keepalive_pings_total",
                          "Keepalive pings the replica sent to its streams (their acks are not stored as commands)")
JOURNAL_DROPPED = Counter("crypto_journal_dropped_total", "Command records dropped: the write buffer was full")
REDIS_RECONNECTS = Counter("crypto_redis_reconnects_total", "Times the bus listener re-subscribed after a Redis error")

REJECT_CAUSES: tuple[tuple[str, str], ...] = (
    ("storage error", "storage"), ("internal error", "internal"), ("empty payload", "empty"),
    ("unsupported payload", "unsupported"), ("", "invalid"))


def reject_cause(reason: str) -> str:
    """A bounded cause for a free-text rejection reason."""
    return next(cause for prefix, cause in REJECT_CAUSES if reason.startswith(prefix))


class PublisherCollector(Collector):
    """Centrifugo publisher counters, read from the publisher at scrape time."""

    def __init__(self, stats: Callable[[], object]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.stats()
        for name in ("published", "failed", "dropped"):
            yield CounterMetricFamily(f"crypto_centrifugo_{name}", f"Centrifugo publications {name}",
                                      value=getattr(stats, name, 0))
        yield GaugeMetricFamily("crypto_centrifugo_queued", "Publications waiting in the queue",
                                value=getattr(stats, "queued", 0))


_PUBLISHER: list[PublisherCollector] = []


def watch_publisher(stats: Callable[[], object]) -> None:
    """Point the publisher collector at this process's publisher (registered once)."""
    if not _PUBLISHER:
        _PUBLISHER.append(PublisherCollector(stats))
        REGISTRY.register(_PUBLISHER[0])
    _PUBLISHER[0].stats = stats


def serve_metrics(host: str, port: int) -> None:
    """Prometheus exposition over HTTP (a daemon thread); port 0 turns it off."""
    if port:
        start_http_server(port, addr=host)
