"""Bounded FIFO that makes room by evicting the oldest item: a slow Centrifugo costs history, never memory."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Not thread-safe: one event loop owns it (the stream handlers put, the sender takes)."""

    __slots__ = ("_items", "_capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._items: deque[T] = deque()
        self._capacity = capacity

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> T | None:
        """Append; returns the evicted oldest item when the queue was full, else None."""
        evicted = self._items.popleft() if len(self._items) >= self._capacity else None
        self._items.append(item)
        return evicted

    def take(self, limit: int) -> list[T]:
        """Remove and return up to `limit` items, oldest first."""
        count = min(limit, len(self._items))
        popleft = self._items.popleft
        return [popleft() for _ in range(count)]

    def drain(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        return items
