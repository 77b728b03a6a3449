"""Store one batch of checked writes: one transaction, a few bulk statements (synchronous ORM code).

Runs in Django's sync thread (the buffer calls it through one sync_to_async per batch). Knows no
payload kind: each write folds into the batch's Plan through its kind, and every part then stores
what it folded, in the registry's order. When the batch fails (a DatabaseError, e.g. a client row
an operator deleted breaks a foreign key), it is retried write by write, each in its own
transaction, so only the writes that fail again become rejections and everything else, of every
other client, is still stored. A transient error of the database itself (connection lost, a lock
timeout, a failover, a table briefly gone) is no write's fault: the batch is handed back unstored
(StorageUnavailable) and the buffer tries it again later, holding the streams back meanwhile.
A receipting bot's messages are keyed by (client_id, message_id) in the same transaction, so a
resend is stored once (receipts.py); the report names them for the receipts once it has committed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from apps.crypto.limits import ID_MAX, REASON_MAX
from apps.crypto.models import ReceivedMessage, RejectedMessage

from ..bulk import insert_new
from ..inbound import Refusal
from . import receipts
from .receipts import Forwarded
from .plan import FlushReport, PayloadKind, Part, Plan, StorageUnavailable, Write, refused_at_flush

logger = logging.getLogger(__name__)
# Django's wrappers of a database that failed, not a write: connection lost or refused, server
# shutting down (a restart, pg_terminate_backend), lock or statement timeout, deadlock, SQLite
# "database is locked", a psycopg pool timeout (psycopg_pool.PoolTimeout is an OperationalError).
TRANSIENT = (OperationalError, InterfaceError)
# The same errors raised by the drivers themselves, outside Django's wrapper.
DRIVER_TRANSIENT: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
try:
    import psycopg  # PoolTimeout, PoolClosed and TooManyRequests are psycopg.OperationalError
except ImportError:  # pragma: no cover - PostgreSQL is optional
    pass
else:
    DRIVER_TRANSIENT += (psycopg.OperationalError, psycopg.InterfaceError)
# SQLSTATEs by which PostgreSQL says the same under another class: 25006 a primary demoted in a
# failover is read-only now (InternalError); 25P03 the server ended an idle transaction.
TRANSIENT_SQLSTATES = frozenset({"25006", "25P03"})
# An OperationalError that is a write's own fault: 54xxx program_limit_exceeded (e.g. an index row too
# large). Retrying it would only hold the batch and then refuse all of it as "storage unavailable".
PERMANENT_SQLSTATE_CLASSES = ("54",)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` is the database being unavailable for a while (retry the batch later), False
    when it may be a write's fault (store write by write and refuse the ones that fail again)."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None) or ""
    if sqlstate in TRANSIENT_SQLSTATES:
        return True
    if sqlstate.startswith(PERMANENT_SQLSTATE_CLASSES):
        return False
    return isinstance(exc, TRANSIENT + DRIVER_TRANSIENT)


class BatchWriter:
    """write(writes) -> FlushReport; `parts` in store order, `kinds` by payload name (both registered once)."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)
        self.kinds: Mapping[str, PayloadKind] = {p.name: p for p in parts if isinstance(p, PayloadKind)}
        self.idempotent = frozenset(p.name for p in self.kinds.values() if p.idempotent)

    def __call__(self, writes: Sequence[Write]) -> FlushReport:
        """Store `writes` (in message order); raises only StorageUnavailable, with nothing stored."""
        try:
            report = FlushReport(len(writes))
            report.refused = self._store(writes, report)
            return report
        except Exception as exc:
            if is_transient(exc):
                connection.close()  # the next try connects afresh (a failover, a killed connection)
                raise StorageUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
            # DatabaseError, or a bug that one write triggers: isolate it
            logger.warning("ingest.batch_failed writes=%d error=%s retry=one_by_one", len(writes),
                           type(exc).__name__)
            return self._one_by_one(writes)

    def fold(self, writes: Iterable[Write]) -> Plan:
        plan = Plan(timezone.now())
        for write in writes:
            if isinstance(write, Refusal):
                plan.refusals.append(write)
            elif not isinstance(write, Forwarded):
                self.kinds[write.kind].fold(plan, write)
        return plan

    def keyed(self, write: Write) -> bool:
        """Whether a receipted write needs its ReceivedMessage key to be stored once (receipts.py). An
        idempotent kind's resend is a no-op only when its bot's own timestamp orders it: without one, a
        late resend would count as the latest report."""
        return isinstance(write, Refusal) or write.kind not in self.idempotent or write.ctx.sent_at is None

    def _store(self, writes: Sequence[Write], report: FlushReport) -> list[Refusal]:
        """One transaction; a receipting bot's resends are skipped in it. Receipts go into `report` once
        the transaction has committed."""
        receipted = receipts.keys_of(writes)
        keys = receipts.keys_of(writes, self.keyed) if receipted else []
        found: list[Refusal] = []
        with transaction.atomic():
            if keys:
                writes = receipts.keep_new(writes, record_received(keys, timezone.now()), self.keyed)
            plan = self.fold(writes)
            for part in self.parts:
                found += part.store(plan)
            if receipted and found:  # a resent idempotent write refused again (its facts disagree): once
                found = receipts.keep_new(found, record_received(receipts.keys_of(found), timezone.now()))
            store_refusals([*plan.refusals, *found])
        report.add_receipts(receipts.by_client(receipted))
        return found

    def _one_by_one(self, writes: Sequence[Write]) -> FlushReport:
        report = FlushReport(len(writes))
        failed: list[Refusal] = []
        for index, write in enumerate(writes):
            try:
                report.refused += self._store([write], report)
            except Exception as exc:
                if not is_transient(exc):
                    failed += self._refuse(write, exc, report)
                    continue
                connection.close()  # the database went away meanwhile: the rest is no write's fault
                report.written, report.unstored = index, list(writes[index:])
                report.unavailable = f"{type(exc).__name__}: {str(exc)[:200]}"
                break
        _record_failures(failed)
        report.refused += failed
        return report

    @staticmethod
    def _refuse(write: Write, exc: Exception, report: FlushReport) -> list[Refusal]:
        """A write that failed alone: a database error of its own, or a bug; either costs this write only."""
        if isinstance(exc, DatabaseError):
            logger.error("message.storage_error client_id=%s message_id=%r payload=%s error=%s",
                         write.ctx.client_id, write.ctx.message_id, write.kind, type(exc).__name__)
            report.stale_clients.add(write.ctx.client_id)  # the cached pk may be what failed (row deleted)
            return refused_at_flush(write, f"storage error: {type(exc).__name__}")
        logger.error("message.handler_error client_id=%s message_id=%r payload=%s error=%s",
                     write.ctx.client_id, write.ctx.message_id, write.kind, type(exc).__name__, exc_info=True)
        return refused_at_flush(write, f"internal error: {type(exc).__name__}")


def record_received(keys: Sequence[receipts.Key], now: datetime) -> set[receipts.Key]:
    """Record the keys in ReceivedMessage; returns those that were new (the others were stored before)."""
    inserted = insert_new(ReceivedMessage, ("client_id", "message_id"), keys, {"received_at": now})
    return {(client_id, message_id) for client_id, message_id in inserted}


def prune_received(before: datetime, chunk: int = 10_000) -> int:
    """Forget receipted keys older than `before`: a bot resends within minutes, not after the retention.

    Rows are inserted in time order, so everything below the first row young enough to keep is old:
    finding it reads the pk range about to be deleted, and the deletes are pk ranges.
    """
    first_kept = ReceivedMessage.objects.filter(received_at__gte=before).order_by("pk").values_list(
        "pk", flat=True).first()
    old = ReceivedMessage.objects.all() if first_kept is None else ReceivedMessage.objects.filter(pk__lt=first_kept)
    deleted = 0
    while pks := list(old.order_by("pk").values_list("pk", flat=True)[:chunk]):
        deleted += ReceivedMessage.objects.filter(pk__gte=pks[0], pk__lte=pks[-1]).delete()[0]
    return deleted


def store_refusals(refusals: Iterable[Refusal]) -> None:
    """RejectedMessage rows; a bot's overlong ids are cut to the columns, never fail the batch."""
    RejectedMessage.objects.bulk_create([
        RejectedMessage(client_id=r.ctx.client_id[:ID_MAX], message_id=r.ctx.message_id[:ID_MAX],
                        payload_type=r.kind, reason=r.reason[:REASON_MAX]) for r in refusals])


def _record_failures(refusals: list[Refusal]) -> None:
    """Best effort: when the database itself is down, the log lines are all that is left."""
    if not refusals:
        return
    try:
        with transaction.atomic():
            store_refusals(refusals)
    except DatabaseError as exc:
        logger.error("message.rejections_not_stored count=%d error=%s", len(refusals), type(exc).__name__)
