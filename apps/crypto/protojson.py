"""`MessageToDict(message, preserving_proto_field_name=True)` at a fraction of its cost, same output.

json_format's printer is pure Python that re-dispatches on every field's type at every call
(~8 µs for a small command). Here each message type gets a converter built once from its
descriptor: a dict from field to (name, value converter), applied to `ListFields()`, which is
also what the printer walks, so keys come out in the same order. Field types the converter does
not cover (float, double, bytes, maps, closed enums, enums that may carry JSON name options) make
that message type use MessageToDict itself; well-known types other than Timestamp are converted
by MessageToDict per field. Any error falls back to MessageToDict, so it raises exactly as before.
tests/publishing/test_protojson.py compares both on every message the service publishes. One converter
for the whole app: Centrifugo's envelopes and the command journal's payload column both use it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

Convert = Callable[[Any], Any]

TIMESTAMP_MIN, TIMESTAMP_MAX = -62135596800, 253402300799  # json_format's range: years 0001-9999
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_DAY = 86_400
_SECONDS_CACHE_SIZE = 4096
_seconds: dict[int, str] = {}
_converters: dict[Descriptor, Convert] = {}
_F = FieldDescriptor
_AS_IS = frozenset({_F.CPPTYPE_STRING, _F.CPPTYPE_BOOL, _F.CPPTYPE_INT32, _F.CPPTYPE_UINT32})
_AS_STRING = frozenset({_F.CPPTYPE_INT64, _F.CPPTYPE_UINT64})  # ProtoJSON quotes 64-bit integers


class _Unsupported(Exception):
    """A field type this module leaves to MessageToDict."""


def message_to_dict(message: Message) -> dict[str, Any]:
    """What `MessageToDict(message, preserving_proto_field_name=True)` returns."""
    try:
        return _converter(message.DESCRIPTOR)(message)  # type: ignore[no-any-return]
    except Exception:
        return _reference(message)  # the same result, or the same exception


def timestamp_json(seconds: int, nanos: int) -> str:
    """`Timestamp.ToJsonString()`: UTC with a Z and 0, 3, 6 or 9 fractional digits.

    The part up to the seconds is cached per second: a live stream's timestamps share a few recent seconds.
    """
    base = _seconds.get(seconds)
    if base is None or not 0 <= nanos < 1_000_000_000:
        base = _second_text(seconds, nanos)
    if not nanos:
        return base + "Z"
    if not nanos % 1_000_000:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if not nanos % 1_000:
        return f"{base}.{nanos // 1_000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def _second_text(seconds: int, nanos: int) -> str:
    if not (TIMESTAMP_MIN <= seconds <= TIMESTAMP_MAX and 0 <= nanos < 1_000_000_000):
        raise ValueError(f"Timestamp is not valid: seconds={seconds} nanos={nanos}")
    days, second = divmod(seconds, _DAY)
    hour, rest = divmod(second, 3600)
    minute, second = divmod(rest, 60)
    date = datetime.date.fromordinal(_EPOCH_ORDINAL + days).isoformat()  # 4-digit years, as isoformat gives
    if len(_seconds) >= _SECONDS_CACHE_SIZE:
        _seconds.clear()
    text = _seconds[seconds] = f"{date}T{hour:02d}:{minute:02d}:{second:02d}"
    return text


def _reference(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _timestamp(ts: Any) -> str:
    return timestamp_json(ts.seconds, ts.nanos)


def _converter(descriptor: Descriptor) -> Convert:
    convert = _converters.get(descriptor)
    if convert is None:
        try:
            convert = _compile(descriptor)
        except _Unsupported:
            convert = _reference
        _converters[descriptor] = convert
    return convert


def _compile(descriptor: Descriptor) -> Convert:
    if descriptor.GetOptions().map_entry or descriptor.full_name.startswith("google.protobuf."):
        raise _Unsupported(descriptor.full_name)
    table = {field: (field.name, _field_converter(field)) for field in descriptor.fields}

    def convert(message: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            name, value_converter = table[field]  # KeyError (an extension): MessageToDict takes over
            out[name] = value if value_converter is None else value_converter(value)
        return out

    return convert


def _field_converter(field: FieldDescriptor) -> Convert | None:
    """None means the value is already what MessageToDict gives."""
    one = _value_converter(field)
    if not field.is_repeated:
        return one
    if one is None:
        return list
    return lambda values: [one(value) for value in values]


def _value_converter(field: FieldDescriptor) -> Convert | None:
    cpp_type = field.cpp_type
    if cpp_type in _AS_IS and field.type != _F.TYPE_BYTES:
        return None
    if cpp_type in _AS_STRING:
        return str
    if cpp_type == _F.CPPTYPE_ENUM:
        return _enum_converter(field.enum_type)
    if cpp_type == _F.CPPTYPE_MESSAGE:
        sub = field.message_type
        if sub.GetOptions().map_entry:
            raise _Unsupported(field.full_name)
        if sub.full_name == "google.protobuf.Timestamp":
            return _timestamp
        if sub.full_name.startswith("google.protobuf."):
            return _reference  # Duration, Struct, wrappers, ...: rare, and MessageToDict knows them
        return message_to_dict  # looked up per call, so recursive message types work
    raise _Unsupported(field.full_name)  # float, double, bytes


def _enum_converter(enum: EnumDescriptor) -> Convert:
    if enum.is_closed or enum.full_name == "google.protobuf.NullValue" or _json_enum_options_possible():
        raise _Unsupported(enum.full_name)
    names = {value.number: value.name for value in enum.values}
    return lambda number: names.get(number, number)  # an open enum's unknown number stays a number


def _json_enum_options_possible() -> bool:
    """json_format prints an enum value's `pb.enumvalue.json` option instead of its name when that exists."""
    try:
        descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return False
    return True
