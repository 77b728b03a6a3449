"""Log throttling as pure state: under overload a warning per dropped publication would be a second outage."""

from __future__ import annotations

from collections.abc import Callable


class LogThrottle:
    """Per key: say yes at most once per `interval`, and report how many events were held back."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, key: str, count: int = 1) -> int | None:
        """Record `count` events. Returns the total to report (held back + these) if a line is due, else None."""
        now = self._clock()
        held = self._held.get(key, 0) + count
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = held
            return None
        self._last[key] = now
        self._held[key] = 0
        return held
