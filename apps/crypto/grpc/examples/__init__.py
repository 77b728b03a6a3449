"""Bot-side client library and a runnable demo bot (no Django needed)."""

from .bot_client import (
    API_KEY_HEADER,
    BotClient,
    BotRejected,
    CommandHandler,
    ExecutedCommands,
    Outbox,
    command_ack,
    complete_ack,
    stamp_message,
    wrap_payload,
)
from .reconnect import FATAL_CODES, Backoff, RetryState, is_fatal

__all__ = [
    "API_KEY_HEADER", "FATAL_CODES", "Backoff", "BotClient", "BotRejected", "CommandHandler", "ExecutedCommands",
    "Outbox", "RetryState", "command_ack", "complete_ack", "is_fatal", "stamp_message", "wrap_payload",
]
