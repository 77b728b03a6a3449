"""The bot's reconnect policy: full-jitter exponential backoff and which statuses are final."""

from __future__ import annotations

import grpc
import pytest

from apps.crypto.grpc.examples.reconnect import FATAL_CODES, Backoff, RetryState, is_fatal


def test_ceiling_doubles_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.ceiling(10_000) == 30.0
    assert backoff.ceiling(-3) == 0.5


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    backoff = Backoff()
    assert backoff.delay(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay(3, rand=lambda: 0.5) == 2.0
    assert backoff.delay(3, rand=lambda: 0.999) == pytest.approx(3.996)
    assert all(0.0 <= backoff.delay(20) <= 30.0 for _ in range(200))


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_invalid_backoff(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)


def test_failures_grow_until_a_stable_connection_resets_them() -> None:
    state = RetryState(Backoff(0.5, 30.0), stable_after=10.0)
    full = lambda: 1.0  # noqa: E731
    assert [state.next_delay(None, full) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert state.next_delay(3.0, full) == 8.0  # connected, but not long enough to count as stable
    assert state.next_delay(10.0, full) == 0.5
    assert state.failures == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.INVALID_ARGUMENT])
def test_auth_and_argument_errors_are_fatal(code: grpc.StatusCode) -> None:
    assert is_fatal(code) and code in FATAL_CODES


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK, grpc.StatusCode.CANCELLED,
                                  grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN])
def test_transient_endings_are_retried(code: grpc.StatusCode) -> None:
    assert not is_fatal(code)
