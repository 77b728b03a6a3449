"""Why a stream ends: every close reason in one leaf module (imports nothing of ours), so the bus,
the supervisor and the stream flow can all name them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why a stream ends: the status the client sees and a bounded label for logs and metrics."""

    code: grpc.StatusCode
    details: str
    label: str


NORMAL = CloseReason(grpc.StatusCode.OK, "", "normal")
CLIENT_GONE = CloseReason(grpc.StatusCode.CANCELLED, "client went away", "normal")
DRAINING = CloseReason(grpc.StatusCode.UNAVAILABLE, "replica is draining; reconnect to another replica", "drain")
TAKEOVER = CloseReason(grpc.StatusCode.ABORTED, "replaced by a newer stream for the same client_id", "takeover")
OWNERSHIP_LOST = CloseReason(grpc.StatusCode.ABORTED, "another replica now owns this client", "takeover")


def rate_limited(rate: int) -> CloseReason:
    return CloseReason(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"client sends more than {rate} messages per second (max_messages_per_second)", "rate_limited")


def slow_reader(limit: int) -> CloseReason:
    return CloseReason(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"client is not reading its commands: more than {limit} queued", "slow_reader")


def heartbeat_timeout(timeout: float) -> CloseReason:
    return CloseReason(grpc.StatusCode.DEADLINE_EXCEEDED, f"no heartbeat for {timeout:g}s", "heartbeat_timeout")


def changed_id(expected: str, got: str) -> CloseReason:
    return CloseReason(grpc.StatusCode.INVALID_ARGUMENT,
                       f"client_id changed mid-stream: expected {expected!r}, got {got!r}", "invalid")
