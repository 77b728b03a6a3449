"""Client row resolution: every payload needs the Client's primary key, so it is cached per process.

The cache is a small LRU of client_id -> pk; a hit costs no query. A stale entry (row deleted by an
operator) surfaces as a storage error when the batch holding the client's next write is stored; the
ingest buffer then calls forget_client(), and the client's next message resolves (recreates) the row.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from apps.crypto.limits import ID_MAX as CLIENT_ID_MAX

from ..proto.converters import CryptoProtobufConverter as convert


class ClientPkCache:
    """Bounded least-recently-used map; pure, so it is tested without a database."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: OrderedDict[str, int] = OrderedDict()

    def get(self, client_id: str) -> int | None:
        pk = self._items.get(client_id)
        if pk is not None:
            self._items.move_to_end(client_id)
        return pk

    def put(self, client_id: str, pk: int) -> None:
        self._items[client_id] = pk
        self._items.move_to_end(client_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def forget(self, client_id: str) -> None:
        self._items.pop(client_id, None)

    def __len__(self) -> int:
        return len(self._items)


KNOWN_CLIENTS = ClientPkCache()


async def client_pk(client_id: str) -> int:
    """The Client row's pk, creating the row on first sight (get_or_create is race-safe across replicas)."""
    pk = KNOWN_CLIENTS.get(client_id)
    if pk is None:
        from ....models import Client

        convert.check_text(client_id, "client_id", CLIENT_ID_MAX, required=True)
        # In a child task: sync_to_async copies asgiref's context locals (~6 KB) into the calling
        # context, which for a stream's own task would live as long as the stream.
        client, _ = await asyncio.ensure_future(Client.objects.aget_or_create(client_id=client_id))
        pk = client.pk
        KNOWN_CLIENTS.put(client_id, pk)
    return pk


def forget_client(client_id: str) -> None:
    KNOWN_CLIENTS.forget(client_id)
