"""The refresh queue: members a webhook said may have changed, to be read from the API.

Owns the table ``member_refresh`` (migration 202 in ``store.database``). The worker's
event consumer adds a member when it consumes a member delivery (``want_in``, in the
same transaction that marks the event processed); the worker's refresher takes due
rows (``due``), reads each member from Patreon and ``done_in`` removes it. When the
read fails, ``retry`` keeps the row with a later ``due_at`` (the delivery's document
having been applied provisionally meanwhile). ``event_id`` is the newest delivery
that asked, the one whose document a provisional application uses.

One row per member: a burst of deliveries for the same member becomes one read.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from store.database import Store


@dataclasses.dataclass(frozen=True)
class Wanted:
    member_id: str
    campaign_id: str | None
    event_id: int | None
    attempts: int


def want_in(
    conn: sqlite3.Connection, member_id: str, campaign_id: str | None, event_id: int, now: float
) -> None:
    conn.execute(
        "INSERT INTO member_refresh (member_id, campaign_id, event_id, due_at, attempts) VALUES (?, ?, ?, ?, 0)"
        " ON CONFLICT (member_id) DO UPDATE SET due_at = MIN(member_refresh.due_at, excluded.due_at),"
        " event_id = MAX(COALESCE(member_refresh.event_id, 0), excluded.event_id),"
        " campaign_id = COALESCE(excluded.campaign_id, member_refresh.campaign_id)",
        (member_id, campaign_id, event_id, now),
    )


def due(store: Store, now: float, limit: int) -> list[Wanted]:
    rows = store.connection().execute(
        "SELECT member_id, campaign_id, event_id, attempts FROM member_refresh WHERE due_at <= ?"
        " ORDER BY due_at LIMIT ?",
        (now, limit),
    )
    return [Wanted(r["member_id"], r["campaign_id"], r["event_id"], r["attempts"]) for r in rows]


def next_due_at(store: Store) -> float | None:
    row = store.connection().execute("SELECT MIN(due_at) AS t FROM member_refresh").fetchone()
    return row["t"]


def done_in(conn: sqlite3.Connection, wanted: Wanted) -> None:
    """Drop the row, unless a newer delivery asked again while the read was running."""
    conn.execute(
        "DELETE FROM member_refresh WHERE member_id = ? AND COALESCE(event_id, 0) <= ?",
        (wanted.member_id, wanted.event_id or 0),
    )


def retry(store: Store, wanted: Wanted, due_at: float) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE member_refresh SET due_at = ?, attempts = attempts + 1 WHERE member_id = ?",
            (due_at, wanted.member_id),
        )


def pending(store: Store) -> int:
    return store.connection().execute("SELECT COUNT(*) AS n FROM member_refresh").fetchone()["n"]


def clear_covered_in(conn: sqlite3.Connection, event_id: int) -> int:
    """Drop the rows of deliveries up to ``event_id``: a complete sync that began after
    they were consumed has read those members already."""
    return conn.execute("DELETE FROM member_refresh WHERE COALESCE(event_id, 0) <= ?", (event_id,)).rowcount
