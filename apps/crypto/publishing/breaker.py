"""Circuit breaker as pure state: the sender asks it whether to call Centrifugo, and tells it how it went.

The clock is injected so tests drive time by hand and nothing here sleeps.

Kept rather than aiobreaker 1.2: it stamps openings with datetime.utcnow() but reports opens_at against
datetime.now() (off by the UTC offset), reads the wall clock (no monotonic or injected clock), has no
per-opening cooldown (force_open's long pause after a 401) and wraps calls in exceptions where the sender
records classified outcomes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` lets exactly one probe through."""

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float]) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold must be >= 1 and cooldown > 0")
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._reopen_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        """The state as of now: an expired OPEN reads as HALF_OPEN."""
        if self._state is BreakerState.OPEN and self._clock() >= self._reopen_at:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a request go out now? In HALF_OPEN only one probe is handed out until it reports back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probe_out:
            return False
        self._state = BreakerState.HALF_OPEN
        self._probe_out = True
        return True

    def retry_after(self) -> float:
        """Seconds until `allow()` can say yes (0 when it can now, or while a probe is out)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self._reopen_at - self._clock())
        return 0.0

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_out = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._open(self._cooldown)

    def force_open(self, cooldown: float) -> None:
        """Open now for a custom time, e.g. a long pause after a rejected API key."""
        self._failures = max(self._failures, self._threshold)
        self._open(cooldown)

    def _open(self, cooldown: float) -> None:
        self._state = BreakerState.OPEN
        self._reopen_at = self._clock() + cooldown
        self._probe_out = False
