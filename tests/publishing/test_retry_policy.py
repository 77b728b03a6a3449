import pytest
from cent.exceptions import (
    CentApiResponseError,
    CentDecodeError,
    CentNetworkError,
    CentTimeoutError,
    CentTransportError,
    CentUnauthorizedError,
)
from hypothesis import given, strategies as st

from apps.crypto.publishing.retry import Outcome, backoff_delay, classify_channel_codes, classify_error


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (CentNetworkError("refused"), Outcome.RETRY),
        (CentTimeoutError("slow"), Outcome.RETRY),
        (CentDecodeError(), Outcome.RETRY),
        (CentTransportError(500), Outcome.RETRY),
        (CentTransportError(503), Outcome.RETRY),
        (CentTransportError(429), Outcome.RETRY),
        (CentTransportError(400), Outcome.REJECT),
        (CentTransportError(404), Outcome.REJECT),
        (CentTransportError(401), Outcome.AUTH),
        (CentUnauthorizedError(), Outcome.AUTH),
        (CentApiResponseError(107, "bad request"), Outcome.REJECT),
        (CentApiResponseError(102, "unknown channel"), Outcome.REJECT),
        (CentApiResponseError(100, "internal server error"), Outcome.RETRY),
        (KeyError("publish"), Outcome.REJECT),
        (RuntimeError("bug"), Outcome.REJECT),
    ],
)
def test_classify_error(exc: BaseException, outcome: Outcome) -> None:
    assert classify_error(exc) is outcome


@pytest.mark.parametrize(
    ("codes", "outcome"),
    [
        ([None, None], Outcome.DELIVERED),
        ([None, 100], Outcome.RETRY),
        ([102, None], Outcome.REJECT),
        ([100, 107], Outcome.REJECT),
        ([], Outcome.DELIVERED),
    ],
)
def test_classify_channel_codes(codes: list[int | None], outcome: Outcome) -> None:
    assert classify_channel_codes(codes) is outcome


def test_backoff_doubles_then_caps() -> None:
    waits = [backoff_delay(n, base=0.1, cap=1.0, jitter=0.999999) for n in range(1, 7)]
    assert waits[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8], rel=1e-5)
    assert waits[4:] == pytest.approx([1.0, 1.0], rel=1e-5)
    assert backoff_delay(0, base=0.1, cap=1.0, jitter=0.5) == 0.0


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_stays_within_half_and_full_of_the_capped_wait(
    attempt: int, base: float, extra: float, jitter: float
) -> None:
    cap = base + extra
    wait = backoff_delay(attempt, base=base, cap=cap, jitter=jitter)
    full = min(cap, base * 2 ** min(attempt - 1, 62))
    assert full / 2 <= wait <= full
