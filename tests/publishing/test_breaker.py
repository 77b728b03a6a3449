import pytest

from apps.crypto.publishing.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_threshold_consecutive_failures(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)


def test_success_resets_the_failure_streak(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_hands_out_exactly_one_probe_after_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # the probe is out
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)


def test_force_open_uses_its_own_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    breaker.force_open(60.0)
    clock.now += 59.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_rejects_nonsense_settings(clock: Clock) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0, cooldown=1.0, clock=clock)
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=1, cooldown=0.0, clock=clock)
