"""Reconnect policy as pure code: which stream endings are final, and how long to wait before retrying.

No I/O and no clock here, so the policy is unit-testable and bots can tune it without touching the client.
The widening window is tenacity's wait_exponential; the loop stays in the client, since a stream that lived
long enough resets the count (a retry decorator counts failed calls, not connection lifetimes).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from tenacity import RetryCallState, wait_exponential

# Retrying cannot fix these: a wrong key, a key for another client_id, a malformed stream, a wrong server.
FATAL_CODES: frozenset[grpc.StatusCode] = frozenset({
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
})


def is_fatal(code: grpc.StatusCode) -> bool:
    """Everything else (UNAVAILABLE, a drained replica, a lost connection...) is retried."""
    return code in FATAL_CODES


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base * 2**failures))."""

    base: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, failures: int) -> float:
        state = RetryCallState(None, None, (), {})
        state.attempt_number = min(max(failures, 0), 62) + 1
        return float(wait_exponential(multiplier=self.base, max=self.cap)(state))

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter (tenacity's wait_random_exponential, with rand injectable) spreads a fleet reconnecting
        after the same outage over the whole window."""
        return rand() * self.ceiling(failures)


@dataclass
class RetryState:
    """Consecutive failures since the last stable connection, and the next wait they imply."""

    backoff: Backoff
    stable_after: float = 10.0  # a connection that lived this long resets the failure count
    failures: int = 0

    def next_delay(self, connected_for: float | None, rand: Callable[[], float] = random.random) -> float:
        """connected_for: how long the ended stream was accepted, None if it never was."""
        if connected_for is not None and connected_for >= self.stable_after:
            self.failures = 0
        delay = self.backoff.delay(self.failures, rand)
        self.failures += 1
        return delay
