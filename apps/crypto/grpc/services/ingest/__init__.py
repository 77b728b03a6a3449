"""Client-message ingest with write-behind persistence; machinery that knows no payload kind.

plan.py    a batch being folded, and what a payload kind gives the machinery (pure)
receipts.py which writes a receipting bot gets a receipt for, which are resends to skip (pure)
writer.py  storing a batch in one transaction, one by one when a write fails it (ORM, sync)
buffer.py  the bounded buffer and its flush task (asyncio)

Payload kinds (handlers/) are passed in, never imported. No Django model imports here: the
package is imported while the app registry may still load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import CryptoStreamingConfig
    from .buffer import IngestBuffer
    from .plan import Part


def build_ingest_buffer(config: "CryptoStreamingConfig", parts: "Sequence[Part]",
                        forget_client: Callable[[str], None],
                        on_receipts: Callable[[dict[str, list[str]]], None] = lambda receipts: None
                        ) -> "IngestBuffer":
    """The replica's buffer, storing batches through Django's sync thread (one call per batch)."""
    from asgiref.sync import sync_to_async

    from .buffer import IngestBuffer
    from .writer import BatchWriter

    return IngestBuffer(sync_to_async(BatchWriter(parts)), config.ingest_batch_size, config.ingest_flush_interval,
                        config.ingest_buffer_limit, forget_client, config.ingest_retry_for, on_receipts)
