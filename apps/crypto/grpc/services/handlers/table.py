"""The dispatch table: ClientMessage `payload` oneof field name -> handler (payload -> checked write)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .base import Handler
from .command_ack import handle_command_ack
from .error import handle_error
from .heartbeat import handle_heartbeat
from .log import handle_log
from .registration import handle_register
from .status import handle_status
from .transaction import handle_transaction
from .wallet_update import handle_wallet_update

HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "register": handle_register,
    "wallet_update": handle_wallet_update,
    "transaction": handle_transaction,
    "status": handle_status,
    "heartbeat": handle_heartbeat,
    "error": handle_error,
    "log": handle_log,
    "command_ack": handle_command_ack,
})
