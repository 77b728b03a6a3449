"""The Client row: its primary key (cached per process) and the columns a batch sets on it.

Every payload needs the Client's primary key, so it is cached per process.

The cache is a small LRU of client_id -> pk; a hit costs no query. A stale entry (row deleted by an
operator) surfaces as a storage error when the batch holding the client's next write is stored; the
ingest buffer then calls forget_client(), and the client's next message resolves (recreates) the row.

Heartbeats, status reports and registrations all set Client columns: they fold into one ClientPatch
per client in message order (the stored row is what the last message made it), stored by CLIENT_ROWS.
The one column ordered otherwise is a reported status: it carries its report's time (status_at, the
bot's own order), and is stored by an UPDATE that changes Client.status only while the stored
status_reported_at is not later, so a lagging replica cannot put back an older report.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from apps.crypto.limits import ID_MAX as CLIENT_ID_MAX

from ..bulk import update_many
from ..inbound import Refusal
from ..ingest.plan import Part, Plan
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


@dataclass(slots=True)
class ClientPatch:
    """Client columns to set for one client; `restore` (a registration) upserts by client_id.

    `status_at` is set by a status report: fields["status"] is then stored only if no later report
    is stored already (Client.status_reported_at), and status_reported_at becomes status_at.
    """

    client_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    restore: bool = False
    status_at: datetime | None = None


def patch(plan: Plan, client_pk: int, client_id: str) -> ClientPatch:
    """The batch's patch of this client's row, made on first use."""
    patches: dict[int, ClientPatch] = plan.part(CLIENT_ROWS.name, dict)
    found = patches.get(client_pk)
    if found is None:
        found = patches[client_pk] = ClientPatch(client_id)
    return found


def _store(plan: Plan) -> list[Refusal]:
    """Grouped by the set of columns; a registration upserts by client_id (it restores a deleted row).

    A reported status goes last, in its own guarded UPDATE (after a restore, so a restored row gets it).
    """
    from ....models import Client

    groups: dict[tuple[bool, tuple[str, ...]], list[tuple[int, str, dict[str, Any]]]] = {}
    reported: list[tuple[Any, ...]] = []
    for client_pk, p in plan.part(CLIENT_ROWS.name, dict).items():
        fields = p.fields
        if p.status_at is not None:
            fields = dict(fields)
            reported.append((fields.pop("status"), p.status_at, client_pk, p.status_at))
        if fields:
            groups.setdefault((p.restore, tuple(fields)), []).append((client_pk, p.client_id, fields))
    for (restore, names), patches in groups.items():
        if restore:
            Client.objects.bulk_create([Client(client_id=client_id, **fields) for _, client_id, fields in patches],
                                       update_conflicts=True, unique_fields=["client_id"], update_fields=list(names))
        else:
            update_many(Client, names, ("id",), ([*fields.values(), pk] for pk, _, fields in patches))
    update_many(Client, ("status", "status_reported_at"), ("id",), reported, unless_newer="status_reported_at")
    return []


CLIENT_ROWS: Final = Part("client", _store)


TYPE_LOOKUP_CHUNK: Final = 500  # client_ids per query (SQLite allows 32,766 parameters)


async def clients_of_type(client_type: str, client_ids: list[str]) -> set[str]:
    """Those of `client_ids` whose Client row has this client_type (a broadcast's selector, on each replica)."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(_of_type)(client_type, client_ids)


def _of_type(client_type: str, client_ids: list[str]) -> set[str]:
    from apps.crypto.models import Client

    found: set[str] = set()
    for start in range(0, len(client_ids), TYPE_LOOKUP_CHUNK):
        chunk = client_ids[start:start + TYPE_LOOKUP_CHUNK]
        found.update(Client.objects.filter(client_type=client_type, client_id__in=chunk)
                     .values_list("client_id", flat=True))
    return found
