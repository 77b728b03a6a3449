import pytest
from hypothesis import given, strategies as st

from apps.crypto.publishing.queue import DropOldestQueue
from apps.crypto.publishing.throttle import LogThrottle


def test_full_queue_evicts_the_oldest() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(3)
    assert [queue.put(n) for n in range(5)] == [None, None, None, 0, 1]
    assert queue.take(10) == [2, 3, 4]
    assert len(queue) == 0


def test_take_is_fifo_and_bounded_by_limit() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(10)
    for n in range(5):
        queue.put(n)
    assert queue.take(2) == [0, 1]
    assert queue.drain() == [2, 3, 4]
    assert queue.take(2) == []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DropOldestQueue(0)


@given(capacity=st.integers(1, 50), items=st.lists(st.integers(), max_size=200))
def test_queue_keeps_exactly_the_newest_items(capacity: int, items: list[int]) -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(capacity)
    evicted = [e for e in (queue.put(item) for item in items) if e is not None]
    assert len(queue) == min(capacity, len(items))
    kept = queue.drain()
    assert evicted + kept == items


def test_throttle_reports_held_back_events_on_the_next_line() -> None:
    now = [0.0]
    throttle = LogThrottle(10.0, lambda: now[0])
    assert throttle.admit("dropped", 1) == 1
    assert throttle.admit("dropped", 5) is None
    assert throttle.admit("other", 2) == 2  # keys are independent
    now[0] = 10.0
    assert throttle.admit("dropped", 1) == 6
    assert throttle.admit("dropped", 1) is None
