"""Wire values <-> Python values, strictly: bots are untrusted, so every refusal names the field and why.

Pure functions, no I/O and no Django model imports (importable before the app registry is ready);
status values are the plain strings of models.ClientStatus.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from ...generated import common_pb2
from ..inbound import Rejected

MAX_DIGITS: Final = 38  # models.DECIMAL
DECIMAL_PLACES: Final = 18
INTEGER_DIGITS: Final = MAX_DIGITS - DECIMAL_PLACES
MAX_DECIMAL_CHARS: Final = 64  # longer strings cannot be a valid value; refuse before parsing
_SHOWN_CHARS: Final = 40  # how much of a bad value a reason quotes
_DECIMAL_SYNTAX: Final = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?")

_STATUS_FROM_PROTO: Final[dict[int, str]] = {
    common_pb2.CLIENT_STATUS_UNKNOWN: "unknown",
    common_pb2.CLIENT_STATUS_ACTIVE: "active",
    common_pb2.CLIENT_STATUS_PAUSED: "paused",
    common_pb2.CLIENT_STATUS_ERROR: "error",
    common_pb2.CLIENT_STATUS_STOPPED: "stopped",
}


def _shown(raw: str) -> str:
    """A bounded, escaped quote of bot input, safe for reasons and log lines."""
    return repr(raw if len(raw) <= _SHOWN_CHARS else raw[:_SHOWN_CHARS] + "...")


def _digit_counts(whole: str, fraction: str, exponent_text: str | None) -> tuple[int, int]:
    """(integer digits, significant fractional digits) of a decimal literal's parts, from the text alone."""
    digits = (whole + fraction).lstrip("0")
    significant = digits.rstrip("0")
    if not significant:
        return 0, 0
    exponent = (int(exponent_text) if exponent_text else 0) - len(fraction)
    exponent += len(digits) - len(significant)  # trailing zeros lose no precision
    return max(len(significant) + exponent, 0), max(-exponent, 0)


class CryptoProtobufConverter:
    """Namespace of the conversions the handlers share."""

    @staticmethod
    def decimal_text(raw: str, field: str, *, allow_negative: bool = False) -> str:
        """A plain decimal literal that fits DecimalField(38, 18) exactly; NaN, Infinity and huge exponents fail.

        Checked on the text alone: the Decimal is made later, once per stored row.

        Returns the literal unchanged (it is a valid Decimal literal), except that any zero becomes "0".
        """
        if raw == "":
            raise Rejected(f"{field}: empty, expected a decimal")
        match = _DECIMAL_SYNTAX.fullmatch(raw) if len(raw) <= MAX_DECIMAL_CHARS else None
        if match is None:
            raise Rejected(f"{field}: not a decimal: {_shown(raw)}")
        sign, whole, fraction, exponent = match.groups()
        integer, places = _digit_counts(whole, fraction or "", exponent)
        if integer > INTEGER_DIGITS:
            raise Rejected(f"{field}: more than {INTEGER_DIGITS} integer digits: {_shown(raw)}")
        if places > DECIMAL_PLACES:
            raise Rejected(f"{field}: more than {DECIMAL_PLACES} decimal places: {_shown(raw)}")
        if not (integer or places):
            return "0"  # every zero (-0, 0e5, 0.000) is stored as plain 0
        if sign == "-" and not allow_negative:
            raise Rejected(f"{field}: negative: {_shown(raw)}")
        return raw

    @staticmethod
    def to_datetime(ts: Timestamp, field: str) -> datetime | None:
        """An aware UTC datetime; None for an unset (all-zero) Timestamp."""
        if ts.seconds == 0 and ts.nanos == 0:
            return None
        try:
            return ts.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise Rejected(f"{field}: timestamp out of range: seconds={ts.seconds} nanos={ts.nanos}") from None

    @staticmethod
    def status_from_proto(value: int, field: str = "status") -> str:
        """models.ClientStatus value for a wire enum; numbers from a newer contract are refused."""
        try:
            return _STATUS_FROM_PROTO[value]
        except KeyError:
            raise Rejected(f"{field}: unknown client status {value}") from None

    @staticmethod
    def check_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
        """Refuse over-long, empty-when-required, and NUL-carrying text (PostgreSQL cannot store NUL)."""
        if required and not value:
            raise Rejected(f"{field}: required")
        if len(value) > limit:
            raise Rejected(f"{field}: too long ({len(value)} chars, max {limit})")
        if "\x00" in value:
            raise Rejected(f"{field}: contains a NUL character")
        return value


__all__ = ["CryptoProtobufConverter", "DECIMAL_PLACES", "INTEGER_DIGITS", "MAX_DIGITS"]
