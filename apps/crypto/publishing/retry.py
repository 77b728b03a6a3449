"""Retry policy as pure functions: what a cent error or a per-channel reply means, and how long to wait.

The exponential part of the wait is tenacity's wait_exponential. The retry loop itself stays in the sender:
it retries a batch by outcome (not by exception), shares the breaker and re-reads the queue between rounds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from cent.exceptions import (
    CentApiResponseError,
    CentDecodeError,
    CentNetworkError,
    CentTimeoutError,
    CentTransportError,
    CentUnauthorizedError,
)
from tenacity import RetryCallState, wait_exponential


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: network, timeout, 5xx, garbage reply; counts against the breaker
    REJECT = "reject"  # Centrifugo answered and refused; retrying cannot help
    AUTH = "auth"  # 401: bad or missing API key; pause for a long time, never loop


# Per-channel / per-command API error codes. 100 "internal" is the only one Centrifugo marks temporary.
_REPLY_CODES: dict[int, Outcome] = {100: Outcome.RETRY}

# Exception type -> outcome; looked up along the MRO so subclasses inherit their parent's meaning.
_ERRORS: dict[type[BaseException], Outcome] = {
    CentUnauthorizedError: Outcome.AUTH,
    CentNetworkError: Outcome.RETRY,
    CentTimeoutError: Outcome.RETRY,
    CentDecodeError: Outcome.RETRY,
    CentApiResponseError: Outcome.REJECT,
}

_RETRYABLE_STATUS = frozenset({408, 425, 429})


def classify_reply_code(code: int) -> Outcome:
    return _REPLY_CODES.get(code, Outcome.REJECT)


def classify_channel_codes(codes: Iterable[int | None]) -> Outcome:
    """One publication fanned out to several channels: None means that channel took it.

    Any permanent refusal makes the whole publication REJECT (re-sending cannot fix it);
    otherwise any temporary error makes it RETRY (the idempotency key stops duplicates on
    the channels that already took it).
    """
    outcomes = {classify_reply_code(code) for code in codes if code is not None}
    for verdict in (Outcome.REJECT, Outcome.RETRY):
        if verdict in outcomes:
            return verdict
    return Outcome.DELIVERED


def classify_error(exc: BaseException) -> Outcome:
    """Unknown exceptions are REJECT: the batch is counted as failed and the sender lives on."""
    if isinstance(exc, CentTransportError):
        return _classify_status(exc.status_code)
    if isinstance(exc, CentApiResponseError):
        return classify_reply_code(exc.code)
    for klass in type(exc).__mro__:
        if klass in _ERRORS:
            return _ERRORS[klass]
    return Outcome.REJECT


def _classify_status(status: int) -> Outcome:
    if status == 401:
        return Outcome.AUTH
    return Outcome.RETRY if status >= 500 or status in _RETRYABLE_STATUS else Outcome.REJECT


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter: attempt 1 waits ~base, doubling up to cap.

    `jitter` in [0, 1) scales the wait into [50%, 100%) so replicas that failed together
    do not retry in lockstep.
    """
    if attempt < 1:
        return 0.0
    return exponential_wait(attempt, base, cap) * (0.5 + jitter / 2)


def exponential_wait(attempt: int, base: float, cap: float) -> float:
    """min(cap, base * 2**(attempt - 1)) for attempt >= 1, by tenacity's wait_exponential."""
    state = RetryCallState(None, None, (), {})
    state.attempt_number = min(max(attempt, 1), 63)  # past 2**62 the cap has long won; bounds the power
    return wait_exponential(multiplier=base, max=cap)(state)
