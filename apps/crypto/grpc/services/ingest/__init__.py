"""Client-message ingest with write-behind persistence.

writes.py  the checked writes handlers produce (plain data)
merge.py   folding a batch into bulk statements (pure)
writer.py  storing a batch in one transaction, one by one when that fails (ORM, sync)
buffer.py  the bounded buffer and its flush task (asyncio)

No Django model imports here: the package is imported while the app registry may still load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import CryptoStreamingConfig
    from .buffer import IngestBuffer


def build_ingest_buffer(config: "CryptoStreamingConfig") -> "IngestBuffer":
    """The replica's buffer, storing batches through Django's sync thread (one call per batch)."""
    from asgiref.sync import sync_to_async

    from .buffer import IngestBuffer
    from .writer import write_batch

    return IngestBuffer(sync_to_async(write_batch), config.ingest_batch_size, config.ingest_flush_interval,
                        config.ingest_buffer_limit)
