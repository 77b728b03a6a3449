"""Issue 11, finding 9: client text in a log value is data. It cannot add, replace or fake a field,
in JSON or in text, and it cannot start a new line.

The formatters are built from build_logging() exactly as the settings build them. The records use
the format strings of the real call sites (`message.rejected ...` logs a transaction type a bot sent).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import logging.config
import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from config.logging import ReplicaFilter, build_logging
from tests.service.test_streaming import connected_bot
from tests.support.grpc_server import running_server
from tests.support.rawbot import message
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
REJECTED = "message.rejected client_id=%s message_id=%r payload=%s reason=%s"
FORGED_TYPE = "x event=auth.disabled level=CRITICAL"
# What the transaction handler makes of that type (apps/crypto/grpc/services/handlers/transaction.py).
FORGED_REASON = f"transaction.type: {FORGED_TYPE!r} is not one of deposit, withdrawal, transfer"
FAKE_LINE = "bot-1\n2026-01-01 00:00:00,000 CRITICAL apps.crypto replica=r-7 auth.disabled setting=CRYPTO_AUTH"


def formatter(log_format: str) -> logging.Formatter:
    config = build_logging(log_format, "INFO", "r-7")
    return logging.config.DictConfigurator(config).configure_formatter(config["formatters"][log_format])


def record(msg: str, *args: object, level: int = logging.WARNING, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("apps.crypto.grpc.services.handlers.dispatch", level, __file__, 1, msg, args or None,
                            None)
    rec.__dict__.update(extra)
    ReplicaFilter("r-7").filter(rec)
    return rec


def json_line(rec: logging.LogRecord) -> dict[str, Any]:
    text = formatter("json").format(rec)
    assert "\n" not in text
    return json.loads(text)


_KEY = re.compile(r"(\w+)=")


def logfmt(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """A reader of text lines: bare words and key=value pairs; a value is bare (up to a space) or a JSON string."""
    words: list[str] = []
    pairs: dict[str, list[str]] = {}
    decoder, position = json.JSONDecoder(), 0
    while position < len(text):
        if text[position] == " ":
            position += 1
            continue
        key = _KEY.match(text, position)
        if key:
            position = key.end()
        if text.startswith('"', position):
            value, position = decoder.raw_decode(text, position)
        else:
            end = text.find(" ", position)
            end = len(text) if end < 0 else end
            value, position = text[position:end], end
        if key:
            pairs.setdefault(key[1], []).append(value)
        else:
            words.append(value)
    return words, pairs


def text_line(rec: logging.LogRecord) -> tuple[list[str], dict[str, list[str]]]:
    text = formatter("text").format(rec)
    assert text.splitlines() == [text], f"one record, one line: {text!r}"
    return logfmt(text)


async def test_a_bot_cannot_forge_log_fields_over_a_real_stream():
    """The reported case end to end: a bot sends a transaction whose type reads like fields."""
    root, streams, handlers = logging.getLogger(), {"json": io.StringIO(), "text": io.StringIO()}, []
    for log_format, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(log_format))
        handler.addFilter(ReplicaFilter("r-7"))
        handlers.append(handler)
        root.addHandler(handler)
    try:
        async with running_server() as server:
            bot = await connected_bot(server)
            bot.send(message(bot.client_id, transaction=pb2.TransactionReport(
                transaction_id="t1", type=FORGED_TYPE, symbol="BTC", amount="1")))
            await eventually(lambda: "message.rejected" in streams["text"].getvalue(), message="rejection logged")
            await bot.__aexit__()
    finally:
        for handler in handlers:
            root.removeHandler(handler)
    (line,) = [json.loads(text) for text in streams["json"].getvalue().splitlines() if "message.rejected" in text]
    assert (line["event"], line["level"], line["client_id"]) == ("message.rejected", "WARNING", bot.client_id)
    assert FORGED_TYPE in line["reason"]
    (text,) = [text for text in streams["text"].getvalue().splitlines() if "message.rejected" in text]
    words, pairs = logfmt(text)
    assert words[2] == "WARNING" and words[4] == "message.rejected"
    assert set(pairs) == {"replica", "client_id", "message_id", "payload", "reason"}
    assert FORGED_TYPE in pairs["reason"][0]


def test_json_client_text_cannot_forge_event_or_level():
    line = json_line(record(REJECTED, "bot-1", "m-1", "transaction", FORGED_REASON))
    assert (line["event"], line["level"], line["replica"]) == ("message.rejected", "WARNING", "r-7")
    assert line["reason"] == FORGED_REASON
    assert set(line) == {"ts", "level", "logger", "replica", "event", "client_id", "message_id", "payload", "reason",
                         "msg"}


def test_json_newline_in_client_value_stays_in_its_field():
    line = json_line(record("stream.opened client_id=%s replica=%s epoch=%d", FAKE_LINE, "r-7", 3))
    assert (line["event"], line["client_id"], line["epoch"]) == ("stream.opened", FAKE_LINE, "3")
    assert "setting" not in line and "\n" not in line["msg"]


def test_text_client_text_is_one_quoted_value():
    words, pairs = text_line(record(REJECTED, "bot-1", "m-1", "transaction", FORGED_REASON))
    assert words[2:5] == ["WARNING", "apps.crypto.grpc.services.handlers.dispatch", "message.rejected"]
    assert pairs == {"replica": ["r-7"], "client_id": ["bot-1"], "message_id": ["'m-1'"],
                     "payload": ["transaction"], "reason": [FORGED_REASON]}


def test_text_newline_in_client_value_cannot_start_a_line():
    words, pairs = text_line(record("stream.opened client_id=%s replica=%s epoch=%d", FAKE_LINE, "r-7", 3))
    assert words[2:] == ["WARNING", "apps.crypto.grpc.services.handlers.dispatch", "stream.opened"]
    assert pairs == {"replica": ["r-7", "r-7"], "client_id": [FAKE_LINE], "epoch": ["3"]}


def test_text_value_outside_a_key_is_quoted_too():
    words, pairs = text_line(record("Not Found: %s", "/x level=CRITICAL\nforged"))
    assert words[-1] == "/x level=CRITICAL\nforged" and pairs == {"replica": ["r-7"]}


@settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_any_client_value_reads_back_as_itself(value: str):
    rec = record(REJECTED, value, value, "transaction", value)
    line = json_line(rec)
    assert (line["event"], line["level"], line["client_id"], line["message_id"], line["reason"]) == (
        "message.rejected", "WARNING", value, value, value)
    words, pairs = text_line(rec)
    assert words[2:] == ["WARNING", "apps.crypto.grpc.services.handlers.dispatch", "message.rejected"]
    assert pairs["client_id"] == [value] and pairs["reason"] == [value] and pairs["payload"] == ["transaction"]
    assert set(pairs) == {"replica", "client_id", "message_id", "payload", "reason"}


def test_fields_never_replace_the_reserved_ones():
    line = json_line(record("bus.reply_lost replica=%s command_id=%s", "r-2", "k1"))
    assert (line["replica"], line["field_replica"], line["command_id"]) == ("r-7", "r-2", "k1")
    # the replica's own id repeated in the message is not repeated as a field
    assert "field_replica" not in json_line(record("drain.start replica=%s streams=%d", "r-7", 2))
    line = json_line(record("bus.x level=%s msg=%s ts=%s logger=%s exc=%s", "CRITICAL", "m", "t", "l", "e",
                            event="auth.disabled"))
    assert (line["level"], line["event"], line["logger"]) == ("WARNING", "bus.x",
                                                              "apps.crypto.grpc.services.handlers.dispatch")
    assert {line[f"field_{k}"] for k in ("level", "msg", "ts", "logger", "exc", "event")} == {
        "CRITICAL", "m", "t", "l", "e", "auth.disabled"}
    # no event name in front: no fields at all, so `event=` from an argument is never an event
    assert "event" not in json_line(record("something happened event=%s", "auth.disabled"))


def test_traceback_lines_cannot_pass_for_records():
    try:
        raise ValueError(f"bad input {FAKE_LINE!s}")
    except ValueError as exc:
        rec = record("rpc.internal_error method=%s", "ConnectClient", level=logging.ERROR)
        rec.exc_info = (type(exc), exc, exc.__traceback__)
    first, *rest = formatter("text").format(rec).split("\n")
    assert first.endswith("rpc.internal_error method=ConnectClient") and rest
    assert all(line.startswith(" ") for line in rest), rest
    line = json_line(rec)
    assert line["event"] == "rpc.internal_error" and "CRITICAL" in line["exc"] and "setting" not in line


def test_logging_a_broken_format_fails_as_logging_does():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("text"))
    handler.addFilter(ReplicaFilter("r-7"))
    logging.raiseExceptions, saved = False, logging.raiseExceptions
    try:
        handler.handle(record("bus.x a=%s b=%s", "only one"))
    finally:
        logging.raiseExceptions = saved
    assert stream.getvalue() == ""


def test_every_log_call_passes_a_literal_format_string():
    """Field names come from `record.msg`; that is safe only while no call puts data into it."""
    levels = {"debug", "info", "warning", "error", "exception", "critical"}
    calls, offenders = 0, []
    for path in sorted((ROOT / "apps").rglob("*.py")) + sorted((ROOT / "config").rglob("*.py")):
        if "generated" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            if not (name.lower().endswith("logger") or name in {"log", "logging"}):
                continue
            if node.func.attr == "log":
                args = node.args[1:]
            elif node.func.attr in levels:
                args = node.args
            else:
                continue
            calls += 1
            if not (args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert calls > 50
    assert not offenders, "pass client data as arguments (`%s`), never inside the format string:\n" + "\n".join(
        offenders)
