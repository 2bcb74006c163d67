"""Rate-limit slots shared by every worker on the store: one Patreon budget.

Owns the table ``rate_slots`` (revision 0005 in ``store/migrations``). Each call to
Patreon holds one row per window it counts against (``window_key``: ``client``, or
``token:<key hash>`` for a user's minute window) from before it is sent
(``sent_at``) until its response is in (``done_at``); a row then ages out of its
window as ``patreon_client.ratelimit`` describes for one process. A row whose worker
died in flight (``done_at`` never set) counts until ``sent_at + IN_FLIGHT_MAX_S``.

Times are wall-clock epoch seconds: workers on several hosts share them (their clocks
must agree within a fraction of the 2 s window: run NTP).

``take`` counts, then inserts: exact on SQLite (one writer at a time); on PostgreSQL it
first takes the transaction-level advisory lock ``RATE_SLOTS_LOCK``, so two workers
cannot both count the last free slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from store.database import Connection, Store

# Longer than any call holds a slot (a call's deadline is at most 120 s).
IN_FLIGHT_MAX_S = 150.0
RATE_SLOTS_LOCK = 0x5042_0020  # pg_advisory_xact_lock key (see above)


def holding(store: Store, window_key: str, window_s: float, now: float) -> list[float | None]:
    """The slots of one window that still count: each its ``done_at`` (None: in flight),
    oldest answered first. A plain read: a waiting call looks without the write lock."""
    with store.read() as conn:
        return _holding(conn, window_key, window_s, now)


def _holding(conn: Connection, window_key: str, window_s: float, now: float) -> list[float | None]:
    rows = conn.execute(
        "SELECT done_at FROM rate_slots WHERE window_key = :key AND sent_at > :in_flight_since"
        " AND (done_at IS NULL OR done_at > :window_start)",
        {"key": window_key, "in_flight_since": now - IN_FLIGHT_MAX_S, "window_start": now - window_s},
    ).fetchall()
    done = sorted(row["done_at"] for row in rows if row["done_at"] is not None)
    return [*done, *([None] * (len(rows) - len(done)))]


def take(store: Store, windows: Sequence[tuple[str, int, float]], now: float) -> list[int] | None:
    """One slot in each ``(window_key, limit, window_s)``, all or none, in one
    transaction: the new rows' ids, or None when a window is full."""
    with store.transaction() as conn:
        if conn.dialect == "postgresql":
            conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": RATE_SLOTS_LOCK})
        for key, limit, window_s in windows:
            if len(_holding(conn, key, window_s, now)) >= limit:
                return None
        return [
            int(
                conn.execute(
                    "INSERT INTO rate_slots (window_key, sent_at) VALUES (:key, :now) RETURNING id",
                    {"key": key, "now": now},
                ).fetchone()["id"]
            )
            for key, _limit, _window_s in windows
        ]


def finish(store: Store, slot_ids: Sequence[int], now: float) -> None:
    """The response is in: the slots start ageing out of their windows."""
    with store.transaction() as conn:
        if slot_ids:
            conn.execute(
                "UPDATE rate_slots SET done_at = :now WHERE id = :id", [{"now": now, "id": i} for i in slot_ids]
            )


def prune(store: Store, older_than_s: float, now: float) -> int:
    """Drop slots no window can count any more."""
    with store.transaction() as conn:
        return conn.execute(
            "DELETE FROM rate_slots WHERE (done_at IS NULL AND sent_at < :in_flight_before)"
            " OR (done_at IS NOT NULL AND done_at < :done_before)",
            {"in_flight_before": now - IN_FLIGHT_MAX_S, "done_before": now - older_than_s},
        ).rowcount
