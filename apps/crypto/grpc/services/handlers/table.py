"""The registry: every payload kind once, in the order a batch stores them (the Client row first).

A new payload kind is its proto field, one module here (check, fold, store) and its model, plus one
line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ..ingest.plan import PayloadKind, Part
from .clients import CLIENT_ROWS
from .command_ack import COMMAND_ACK
from .error import ERROR
from .heartbeat import HEARTBEAT
from .log import LOG
from .registration import REGISTER
from .status import STATUS
from .transaction import TRANSACTION
from .wallet_update import WALLET_UPDATE

PARTS: Final[tuple[Part, ...]] = (
    CLIENT_ROWS, REGISTER, HEARTBEAT, STATUS, WALLET_UPDATE, TRANSACTION, COMMAND_ACK, LOG, ERROR)
KINDS: Final[Mapping[str, PayloadKind]] = MappingProxyType(
    {part.name: part for part in PARTS if isinstance(part, PayloadKind)})
