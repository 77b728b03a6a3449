"""Bounds on what an operator's command request may carry, checked before anything is stored or routed.

A command is journalled (CommandRecord), published through Redis to the owning replica, written to the
bot's stream and to Centrifugo; a field without a bound would let one request carry megabytes through all
of them. Pure functions, no I/O and no Django model imports (importable before the app registry is ready);
every refusal is an InvalidRequest (INVALID_ARGUMENT) naming the field, its size and the limit.

The bounds:
- client_id: required, at most auth.MAX_CLIENT_ID (128) characters, the column size of every client_id;
- command_id: at most 128 characters (CommandRecord.command_id max_length);
- pause.reason, resume.message: at most max_text_chars characters, by default
  CryptoStreamingConfig.max_text_chars (10,000, the same as models.MAX_TEXT: the longest free text a bot
  may send in one field); the caller passes the replica's configured value;
- sync_wallets.symbols: at most MAX_SYMBOLS (1,000) symbols, each non-empty and at most MAX_SYMBOL_CHARS
  (32) characters (Wallet.symbol max_length);
- no NUL character in any text (PostgreSQL cannot store it);
- timestamp, when set, inside the range protobuf can render (0001-01-01 .. 9999-12-31), since the command
  is published as JSON;
- a broadcast's selector (ClientSelector): exactly one of client_ids, client_type, all_connected set;
  at most MAX_SELECTOR_IDS (10,000) client_ids, each a valid client_id; client_type at most
  MAX_CLIENT_TYPE (64) characters (Client.client_type max_length); a broadcast's command_id at most
  MAX_BROADCAST_ID (64) characters, so "<broadcast_id>:<client_id>" fits a command_id or is shortened
  with a digest of the client_id (bus/broadcast.py);
- the whole command at most MAX_COMMAND_BYTES (256 KiB) serialized, checked after the fields (so an
  oversize field is named): the largest command the bounds above allow (1,000 symbols of 32 four-byte
  UTF-8 characters, about 130 KB) stays under it, while unknown fields cannot smuggle megabytes to the bot.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.limits import ID_MAX as MAX_COMMAND_ID

from ...generated import crypto_streaming_pb2 as pb2
from ..auth import MAX_CLIENT_ID
from ..config import CryptoStreamingConfig

MAX_TEXT_CHARS: Final[int] = CryptoStreamingConfig.max_text_chars  # 10,000, as models.MAX_TEXT
MAX_SYMBOLS: Final = 1_000
MAX_SYMBOL_CHARS: Final = 32  # Wallet.symbol max_length
MAX_COMMAND_BYTES: Final = 256 * 1024
MIN_TIMESTAMP_SECONDS: Final = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_SELECTOR_IDS: Final = 10_000
MAX_CLIENT_TYPE: Final = 64  # Client.client_type max_length
MAX_BROADCAST_ID: Final = 64  # leaves room for ":<client_id digest>" inside MAX_COMMAND_ID
SELECTOR_WAYS: Final = ("client_ids", "client_type", "all_connected")
COMMAND_KINDS: Final = ("ping", "pause", "resume", "sync_wallets", "request_status")
# command_id prefix of the replica's own keepalive pings (streaming/supervisor.py): an operator may not use
# it, or the ack of its command could be taken for a keepalive's and left unstored
KEEPALIVE_PREFIX: Final = "keepalive-"


class InvalidRequest(ValueError):
    """The caller sent something this service will not act on (errors.py answers INVALID_ARGUMENT)."""


def _check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidRequest(f"{field} too long: {len(value)} characters, max {limit}")
    if "\x00" in value:
        raise InvalidRequest(f"{field} contains a NUL character")


def _check_timestamp(ts: Timestamp, field: str) -> None:
    if not MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidRequest(f"{field} out of range: seconds={ts.seconds}, expected a date in 0001..9999")
    if not 0 <= ts.nanos <= 999_999_999:
        raise InvalidRequest(f"{field} out of range: nanos={ts.nanos}, expected 0..999999999")


def validate_client_id(client_id: str) -> None:
    """The target of a command request: required, at most 128 characters, no NUL."""
    if not client_id:
        raise InvalidRequest("client_id is required")
    _check_text(client_id, "client_id", MAX_CLIENT_ID)


def validate_command(command: pb2.DjangoCommand, *, max_text_chars: int = MAX_TEXT_CHARS) -> None:
    """Raise InvalidRequest when `command` breaks a bound (see the module docstring); returns None if it fits.

    An empty command_id is allowed (the server fills one in); `max_text_chars` is the replica's
    CryptoStreamingConfig.max_text_chars.
    """
    _check_text(command.command_id, "command_id", MAX_COMMAND_ID)
    if command.command_id.startswith(KEEPALIVE_PREFIX):
        raise InvalidRequest(f"command_id: the prefix {KEEPALIVE_PREFIX!r} is the server's own (keepalive pings)")
    if command.HasField("timestamp"):
        _check_timestamp(command.timestamp, "command.timestamp")
    kind = command.WhichOneof("command")
    if kind is None:
        raise InvalidRequest(f"command must set one of: {', '.join(COMMAND_KINDS)}")
    if kind not in COMMAND_KINDS:  # a MessageReceipt is the stream's own bookkeeping, never an operator's
        raise InvalidRequest(f"command.{kind} is sent by the service itself; set one of: {', '.join(COMMAND_KINDS)}")
    if kind == "pause":
        _check_text(command.pause.reason, "pause.reason", max_text_chars)
    elif kind == "resume":
        _check_text(command.resume.message, "resume.message", max_text_chars)
    elif kind == "sync_wallets":
        symbols = command.sync_wallets.symbols
        if len(symbols) > MAX_SYMBOLS:
            raise InvalidRequest(f"sync_wallets.symbols: too many symbols: {len(symbols)}, max {MAX_SYMBOLS}")
        for index, symbol in enumerate(symbols):
            field = f"sync_wallets.symbols[{index}]"
            if not symbol:
                raise InvalidRequest(f"{field} is empty (leave the list empty to sync all)")
            _check_text(symbol, field, MAX_SYMBOL_CHARS)
    size = command.ByteSize()  # what is left: unknown fields
    if size > MAX_COMMAND_BYTES:
        raise InvalidRequest(f"command too large: {size} bytes serialized, max {MAX_COMMAND_BYTES}")


def validate_request(request: pb2.SendCommandRequest, *, max_text_chars: int = MAX_TEXT_CHARS) -> None:
    """validate_client_id and validate_command for a whole SendCommandRequest."""
    validate_client_id(request.client_id)
    if not request.HasField("command"):
        raise InvalidRequest(f"command must set one of: {', '.join(COMMAND_KINDS)}")
    validate_command(request.command, max_text_chars=max_text_chars)


def validate_selector(selector: pb2.ClientSelector) -> None:
    """Exactly one way of choosing clients, within its bounds."""
    chosen = [way for way in SELECTOR_WAYS if (selector.client_ids if way == "client_ids" else getattr(selector, way))]
    if len(chosen) != 1:
        found = "none" if not chosen else " and ".join(chosen)
        raise InvalidRequest(f"selector must set exactly one of client_ids, client_type, all_connected (found {found})")
    if len(selector.client_ids) > MAX_SELECTOR_IDS:
        raise InvalidRequest(f"selector.client_ids: too many: {len(selector.client_ids)}, max {MAX_SELECTOR_IDS}")
    for index, client_id in enumerate(selector.client_ids):
        if not client_id:
            raise InvalidRequest(f"selector.client_ids[{index}] is empty")
        _check_text(client_id, f"selector.client_ids[{index}]", MAX_CLIENT_ID)
    _check_text(selector.client_type, "selector.client_type", MAX_CLIENT_TYPE)


def validate_broadcast(request: pb2.BroadcastCommandRequest, *, max_text_chars: int = MAX_TEXT_CHARS) -> None:
    """A BroadcastCommandRequest: its selector, then its command as any other command's."""
    if not request.HasField("selector"):
        raise InvalidRequest("selector is required: set exactly one of client_ids, client_type, all_connected")
    validate_selector(request.selector)
    if not request.HasField("command"):
        raise InvalidRequest(f"command must set one of: {', '.join(COMMAND_KINDS)}")
    validate_command(request.command, max_text_chars=max_text_chars)
    _check_text(request.command.command_id, "command_id (of a broadcast)", MAX_BROADCAST_ID)


__all__ = ["MAX_BROADCAST_ID", "MAX_CLIENT_TYPE", "MAX_COMMAND_BYTES", "MAX_SELECTOR_IDS", "MAX_COMMAND_ID", "MAX_SYMBOLS", "MAX_SYMBOL_CHARS", "MAX_TEXT_CHARS",
           "validate_broadcast", "validate_client_id", "validate_command", "validate_request", "validate_selector"]
