"""Row counts straight from the database (sqlite3 or psycopg), without Django in the harness."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

TABLES = ("crypto_transaction", "crypto_wallet", "crypto_client", "crypto_statuschange", "crypto_commandrecord",
          "crypto_rejectedmessage")


def _count_sync(url: str, tables: Sequence[str], client_prefix: str) -> dict[str, int]:
    like = client_prefix + "%"
    queries = {table: _query(table) for table in tables}
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
            return {t: int(conn.execute(q.replace("%s", "?"), (like,)).fetchone()[0]) for t, q in queries.items()}
    import psycopg

    with psycopg.connect(url) as conn:
        return {t: int(conn.execute(q, (like,)).fetchone()[0]) for t, q in queries.items()}  # type: ignore[index]


def _query(table: str) -> str:
    """Only rows of this run's clients (ids start with the run prefix), so a shared database is fine."""
    if table in ("crypto_commandrecord", "crypto_rejectedmessage"):
        return f"SELECT COUNT(*) FROM {table} WHERE client_id LIKE %s"
    if table == "crypto_client":
        return "SELECT COUNT(*) FROM crypto_client WHERE client_id LIKE %s"
    return (f"SELECT COUNT(*) FROM {table} t JOIN crypto_client c ON c.id = t.client_id "
            f"WHERE c.client_id LIKE %s")


async def count_rows(url: str, client_prefix: str, tables: Sequence[str] = TABLES) -> dict[str, int]:
    return await asyncio.to_thread(_count_sync, url, tables, client_prefix)


def _store_keys_sync(url: str, keys: Sequence[tuple[str, str]]) -> None:
    """ClientApiKey rows (client_id, key): the hash and prefix the service looks a presented key up by."""
    from datetime import UTC, datetime

    from apps.crypto.grpc.services.auth import hash_key, key_prefix  # the service's own rule (no Django needed)

    now = datetime.now(UTC).isoformat()
    rows = [(client_id, hash_key(key), key_prefix(key), now, False) for client_id, key in keys]
    sql = ("INSERT INTO crypto_clientapikey (client_id, key_hash, prefix, created_at, revoked) "
           "VALUES (%s, %s, %s, %s, %s)")
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
            conn.executemany(sql.replace("%s", "?"), rows)
        return
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(sql, rows)


async def store_keys(url: str, keys: Sequence[tuple[str, str]]) -> None:
    await asyncio.to_thread(_store_keys_sync, url, keys)
