"""Bot-side client library and a runnable demo bot (no Django needed).

bot_client.BotClient connects, heartbeats, answers commands and reconnects; with receipts=True it keeps
every message it sent in a bounded outbox (ReceiptOutbox) until the server's MessageReceipt confirms it
is stored, and resends the unreceipted ones after each reconnect. simple_client_test is the demo bot.
"""

from .bot_client import (
    API_KEY_HEADER,
    OUTBOX_LIMIT,
    BotClient,
    BotRejected,
    CommandHandler,
    ExecutedCommands,
    Outbox,
    OutboxClosed,
    ReceiptOutbox,
    command_ack,
    complete_ack,
    stamp_message,
    wrap_payload,
)
from .reconnect import FATAL_CODES, Backoff, RetryState, is_fatal

__all__ = [
    "API_KEY_HEADER", "FATAL_CODES", "OUTBOX_LIMIT", "Backoff", "BotClient", "BotRejected", "CommandHandler",
    "ExecutedCommands", "Outbox", "OutboxClosed", "ReceiptOutbox", "RetryState", "command_ack", "complete_ack",
    "is_fatal", "stamp_message", "wrap_payload",
]
