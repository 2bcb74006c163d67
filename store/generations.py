"""Change counters per table (``table_generations``, created by the Alembic revisions
0001 (webhook_secrets) and 0004 (members, tiers, benefits, member_syncs) in store/migrations).

Triggers bump a table's counter (row triggers on SQLite, a statement trigger on
PostgreSQL) on every insert, update and delete, whichever process
made the change, so a process may cache what it read from that table and re-read it
only when the counter moved: one primary-key read instead of the whole table (and,
once secrets are encrypted at rest, instead of decrypting them all on every request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from store.database import Store

T = TypeVar("T")


def generation(store: Store, table: str) -> int:
    with store.read() as conn:
        row = conn.execute("SELECT generation FROM table_generations WHERE name = :name", {"name": table}).fetchone()
    # No row: an unknown table, or a store from before migration 400; -1 never matches a cache.
    return -1 if row is None else row["generation"]


def generations(store: Store, tables: tuple[str, ...]) -> tuple[int, ...]:
    """The counters of several tables in one read (-1 for a table without one)."""
    marks = ", ".join(f":t{i}" for i in range(len(tables)))
    with store.read() as conn:
        rows = conn.execute(
            f"SELECT name, generation FROM table_generations WHERE name IN ({marks})",
            {f"t{i}": table for i, table in enumerate(tables)},
        ).fetchall()
    found = {row["name"]: row["generation"] for row in rows}
    return tuple(found.get(table, -1) for table in tables)


class CachedRead(Generic[T]):
    """``read(store)``'s answer, re-read only after ``table`` changed."""

    def __init__(self, store: Store, table: str, read: Callable[[Store], T]):
        self._store = store
        self._table = table
        self._read = read
        self._lock = threading.Lock()
        self._cached: tuple[int, T] | None = None

    def __call__(self) -> T:
        current = generation(self._store, self._table)
        cached = self._cached
        if cached is not None and cached[0] == current and current >= 0:
            return cached[1]
        with self._lock:
            # Read the counter before the rows: a change in between only costs a re-read.
            current = generation(self._store, self._table)
            value = self._read(self._store)
            self._cached = (current, value)
            return value
