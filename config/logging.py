"""Plain, structured log lines: `event key=value ...` text by default, one JSON object per line
with LOG_FORMAT=json (the event and its key=value pairs become fields). Every line names the replica.

Client text is data, never structure. Log calls look like
`logger.info("stream.opened client_id=%s epoch=%d", client_id, epoch)`: the event and the field
names come from the format string `record.msg` (code, a literal; a test checks every call site),
each value from its own argument, so a value is never parsed back into fields. In text, a value
that could read as more than one token (whitespace, `=`, quotes, backslash, control or other
non-printable characters) is written as a JSON string; ordinary values stay bare (`key=value`).
A record is one line: control characters in the format string are escaped, and the continuation
lines of a traceback are indented, so no line of one record can pass for the start of another.

The JSON formatter is python-json-logger's, given the fields render() derives and the reserved-name guard;
the text rendering (render, quote) stays here: no library quotes per argument from the format string.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

# Fields of every JSON line; a message field or `extra` of the same name never replaces them.
RESERVED = frozenset({"ts", "level", "logger", "replica", "msg", "event", "exc"})
RENAMED_PREFIX = "field_"  # `bus.reply_lost replica=r2` on replica r1 -> "replica": "r1", "field_replica": "r2"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s replica=%(replica)s %(message)s"

_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "replica"}
_SPEC = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?"
                   r"(?P<conv>[diouxXeEfFgGcrsa%])")
_EVENT = re.compile(r"[a-z_]+\.[a-z_.]+")
_KEY = re.compile(r"(\w+)=")
# A value written as is (printable, too): no whitespace, quote, backslash or '=', or such a
# value in single quotes (%r of an ordinary string: message_id='m-1'). Anything else is quoted.
_BARE = re.compile(r"[^\s\"'\\=]*|'[^\s\"'\\=]*'")
_SPACE = re.compile(r"(\s+)")


class _Spec(NamedTuple):
    """One conversion of a format string (`%s`, `%.2f`, `%(name)r`, `%*d`)."""

    text: str
    name: str | None
    stars: int  # `*` width/precision: extra arguments it takes
    conv: str


class _Slot(NamedTuple):
    """A whitespace-free run of the format string that holds arguments; `key` is the `key=` before it."""

    key: str
    parts: tuple[str | _Spec, ...]


class _Plan(NamedTuple):
    """A format string read once: literal text (code, escaped) and slots in order, event, literal fields."""

    segments: tuple[str | _Slot, ...]
    event: str | None
    fields: dict[str, str]  # its literal key=value pairs (setting=CRYPTO_AUTH)
    positional: int  # arguments it takes
    simple: bool = False  # every slot is one bare `%s`: the common case, filled by _fill_simple


class Line(NamedTuple):
    """One record rendered: the text message, its event and fields (names from code, values as given)."""

    text: str
    event: str | None = None
    fields: dict[str, Any] = {}


def _tokens(fmt: str, formatted: bool) -> list[str | tuple[str | _Spec, ...]]:
    """The format string cut at whitespace: separators (str) and tokens (tuples of text and conversions).
    Unformatted (a record without args: logging does no %-formatting), every token is literal text."""
    if not formatted:
        return [piece if piece.isspace() else (piece,) for piece in _SPACE.split(fmt) if piece]
    items: list[str | tuple[str | _Spec, ...]] = []
    token: list[str | _Spec] = []

    def literal(text: str) -> None:
        for piece in _SPACE.split(text):
            if piece and piece.isspace():
                if token:
                    items.append(tuple(token))
                    token.clear()
                items.append(piece)
            elif piece:
                token.append(piece)

    position = 0
    for match in _SPEC.finditer(fmt):
        literal(fmt[position:match.start()])
        if match["conv"] == "%":
            token.append("%")
        else:
            stars = (match["width"] == "*") + (match["precision"] == "*")
            token.append(_Spec(match.group(), match["name"], stars, match["conv"]))
        position = match.end()
    literal(fmt[position:])
    if token:
        items.append(tuple(token))
    return items


def _build_plan(fmt: str, formatted: bool) -> _Plan:
    segments: list[str | _Slot] = []
    literal: list[str] = []
    fields: dict[str, str] = {}
    event, positional = None, 0
    for index, token in enumerate(_tokens(fmt, formatted)):
        if isinstance(token, str) or all(isinstance(part, str) for part in token):
            text = token if isinstance(token, str) else "".join(part for part in token if isinstance(part, str))
            literal.append(escape_controls(text))
            if index == 0 and _EVENT.fullmatch(text):
                event = text
            elif match := _KEY.match(text):
                fields[match[1]] = text[match.end():]
            continue
        key, parts = "", token
        if isinstance(token[0], str) and (match := _KEY.match(token[0])):
            key, parts = match[1], (token[0][match.end():], *token[1:])
            literal.append(escape_controls(match.group()))
        segments.append("".join(literal))
        literal = []
        parts = tuple(escape_controls(part) if isinstance(part, str) else part for part in parts if part)
        segments.append(_Slot(key, parts))
        positional += sum(part.stars + 1 for part in parts if isinstance(part, _Spec) and part.name is None)
    segments.append("".join(literal))
    kept = tuple(segment for segment in segments if segment)
    simple = all(isinstance(segment, str) or (len(segment.parts) == 1 and isinstance(segment.parts[0], _Spec)
                                              and segment.parts[0].text == "%s") for segment in kept)
    return _Plan(kept, event, fields if event else {}, positional, simple)


_plan = lru_cache(maxsize=1024)(_build_plan)  # format strings are code: a bounded set


def escape_controls(text: str) -> str:
    """Control and other non-printable characters as backslash escapes; the rest unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def quote(value: str) -> str:
    """A value as one token: bare when it is ordinary, else a JSON string (ASCII, escaped)."""
    if _BARE.fullmatch(value) and value.isprintable():
        return value
    return json.dumps(value)


def _fill_simple(plan: _Plan, values: tuple[Any, ...], with_fields: bool) -> Line:
    """_fill for a plan of bare `%s` slots (nearly every log call): the same line, a third of the work."""
    out: list[str] = []
    fields = dict(plan.fields) if with_fields and plan.event else None
    position = 0
    for segment in plan.segments:
        if isinstance(segment, str):
            out.append(segment)
            continue
        value = values[position]
        text = value if type(value) is str else "%s" % (value,)
        position += 1
        out.append(quote(text))
        if fields is not None and segment.key:
            fields[segment.key] = text
    return Line("".join(out), plan.event, fields or {})


def _fill(plan: _Plan, args: Any) -> Line:
    """The plan with its arguments: each slot's text quoted as needed; fields keep the values."""
    mapping = args if isinstance(args, Mapping) else None
    values = (args,) if mapping is not None else tuple(args)
    if plan.positional != len(values) and not (mapping is not None and plan.positional == 0):
        raise TypeError("not all arguments converted during string formatting")
    out: list[str] = []
    fields = dict(plan.fields)
    position = 0
    for segment in plan.segments:
        if isinstance(segment, str):
            out.append(segment)
            continue
        texts: list[str] = []
        value: Any = None
        for part in segment.parts:
            if isinstance(part, str):
                texts.append(part)
                continue
            if part.name is not None:
                if mapping is None:
                    raise TypeError("format requires a mapping")
                value, text = mapping[part.name], part.text % mapping
            elif part.text == "%s" and isinstance(values[position], str):  # the common case, quicker
                value = text = values[position]
                position += 1
            else:
                chunk = values[position:position + part.stars + 1]
                position += part.stars + 1
                value, text = chunk[-1], part.text % chunk
            texts.append(text)
            # %r of a string shows it quoted in text; the JSON field keeps the string itself.
            if not (part.conv in "ra" and isinstance(value, str)):
                value = text
        text = "".join(texts)
        out.append(quote(text))
        if plan.event and segment.key:
            fields[segment.key] = value if len(segment.parts) == 1 else text
    return Line("".join(out), plan.event, fields)


def render(record: logging.LogRecord, with_fields: bool = True) -> Line:
    """The record's message with every argument quoted as needed, and its event and fields.

    Fields exist only when the format string starts with an event name (`stream.opened ...`),
    as before; their names come from the format string, their values are the arguments.
    `with_fields=False` (text lines) may leave them out.
    """
    if not isinstance(record.msg, str):  # an object logged as the message: all of it is data
        return Line(quote(record.getMessage()))
    if not record.args:  # no %-formatting; not cached, such texts need not be constants
        return _fill(_build_plan(record.msg, formatted=False), ())
    try:
        plan = _plan(record.msg, True)
        args = record.args
        if plan.simple and type(args) is tuple and len(args) == plan.positional:
            return _fill_simple(plan, args, with_fields)
        return _fill(plan, args)
    except (TypeError, ValueError, KeyError, IndexError):
        pass
    # What `format % args` refuses: getMessage() raises the error logging reports as usual;
    # whatever it does return is one value.
    return Line(quote(record.getMessage()))


class ReplicaFilter(logging.Filter):
    """Stamps every record with this process's replica id."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        record.replica = self.replica
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger replica=r event key=value ...`, arguments quoted as needed, one line per record
    (a traceback's lines follow indented)."""

    def __init__(self, fmt: str | None = TEXT_FORMAT, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)
        self._second: tuple[int, str] = (-1, "")  # the last second's formatted time, reused within it

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's default time text, the strftime done once per second instead of once per record."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], record.msecs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = render(record, with_fields=False).text
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return "\n  ".join(super().format(record).splitlines())


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per record (python-json-logger): time, level, logger, replica, event, its fields, the text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json_default", str)  # any other value logged as an extra is written as its str()
        super().__init__(*args, **kwargs)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        line = render(record)
        log_record["ts"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        log_record["replica"] = getattr(record, "replica", "")
        if line.event:
            log_record["event"] = line.event
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
        for key, value in {**line.fields, **extras}.items():
            if key in RESERVED:
                if log_record.get(key) == value:
                    continue
                key = RENAMED_PREFIX + key
            log_record[key] = value
        log_record["msg"] = line.text
        if message_dict.get("exc_info"):
            log_record["exc"] = message_dict["exc_info"]


def lean_records() -> None:
    """Records skip what no line of ours shows: thread, process and task names and the caller's file and
    line (logging's documented switches; about 4 us of every record, one per command at INFO)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False
    logging._srcfile = None  # type: ignore[attr-defined]  # documented: skips the caller lookup


def build_logging(log_format: str, level: str, replica: str = "") -> dict[str, Any]:
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"replica": {"()": ReplicaFilter, "replica": replica}},
        "formatters": {
            "text": {"()": TextFormatter, "fmt": TEXT_FORMAT},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["replica"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django": {"level": "WARNING"}, "django_cfg": {"level": "WARNING"}},
    }
