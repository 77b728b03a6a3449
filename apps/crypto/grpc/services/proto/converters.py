"""Wire values <-> Python values, strictly: bots are untrusted, so every refusal names the field and why.

Pure functions, no I/O and no Django model imports (importable before the app registry is ready);
status values are the plain strings of models.ClientStatus.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
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
_STATUS_TO_PROTO: Final[dict[str, int]] = {value: key for key, value in _STATUS_FROM_PROTO.items()}


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
    """Namespace of the conversions the handlers and the command path share."""

    @staticmethod
    def parse_decimal(raw: str, field: str, *, allow_negative: bool = False) -> Decimal:
        """A plain decimal string that fits DecimalField(38, 18) exactly; NaN, Infinity and huge exponents fail."""
        return Decimal(CryptoProtobufConverter.decimal_text(raw, field, allow_negative=allow_negative))

    @staticmethod
    def decimal_text(raw: str, field: str, *, allow_negative: bool = False) -> str:
        """parse_decimal's checks on the text alone: the Decimal is made later, once per stored row.

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
    def from_datetime(when: datetime) -> Timestamp:
        """A Timestamp for an aware datetime; naive ones are refused rather than guessed."""
        if when.tzinfo is None:
            raise ValueError("naive datetime; pass an aware one")
        ts = Timestamp()
        ts.FromDatetime(when.astimezone(UTC))
        return ts

    @staticmethod
    def set_timestamp(message: Message, when: datetime | None = None) -> Message:
        """Stamp message.timestamp with `when` (default: now); returns the message for chaining."""
        stamp = CryptoProtobufConverter.from_datetime(when or datetime.now(UTC))
        message.timestamp.CopyFrom(stamp)  # type: ignore[attr-defined]
        return message

    @staticmethod
    def generate_uuid() -> str:
        return str(uuid.uuid4())

    @staticmethod
    def status_from_proto(value: int, field: str = "status") -> str:
        """models.ClientStatus value for a wire enum; numbers from a newer contract are refused."""
        try:
            return _STATUS_FROM_PROTO[value]
        except KeyError:
            raise Rejected(f"{field}: unknown client status {value}") from None

    @staticmethod
    def status_to_proto(value: str) -> int:
        """Wire enum for a models.ClientStatus value; server-only states (disconnected) map to UNKNOWN."""
        return _STATUS_TO_PROTO.get(value, common_pb2.CLIENT_STATUS_UNKNOWN)

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

    @staticmethod
    def command_kind(command: Message) -> str:
        """Name of the set `command` oneof field (CommandRecord.kind); '' when none is set."""
        return command.WhichOneof("command") or ""

    @staticmethod
    def command_payload_dict(command: Message) -> dict[str, Any]:
        """The set command's fields as JSON-ready data (CommandRecord.payload), defaults included."""
        kind = CryptoProtobufConverter.command_kind(command)
        if not kind:
            return {}
        return MessageToDict(
            getattr(command, kind), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )


__all__ = ["CryptoProtobufConverter", "DECIMAL_PLACES", "INTEGER_DIGITS", "MAX_DIGITS"]
