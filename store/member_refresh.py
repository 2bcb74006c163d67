"""The refresh queue: members a webhook said may have changed, to be read from the API.

Owns the table ``member_refresh`` (created in ``store/migrations``). The worker's
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

from store.database import Connection, Store


@dataclasses.dataclass(frozen=True)
class Wanted:
    member_id: str
    campaign_id: str | None
    event_id: int | None
    attempts: int


def want_in(
    conn: Connection, member_id: str, campaign_id: str | None, event_id: int, now: float
) -> None:
    # CASE, not MIN/MAX of two values: SQLite and PostgreSQL (LEAST) spell those differently.
    conn.execute(
        "INSERT INTO member_refresh (member_id, campaign_id, event_id, due_at, attempts)"
        " VALUES (:member_id, :campaign_id, :event_id, :now, 0)"
        " ON CONFLICT (member_id) DO UPDATE SET"
        " due_at = CASE WHEN excluded.due_at < member_refresh.due_at"
        " THEN excluded.due_at ELSE member_refresh.due_at END,"
        " event_id = CASE WHEN excluded.event_id > COALESCE(member_refresh.event_id, 0)"
        " THEN excluded.event_id ELSE COALESCE(member_refresh.event_id, 0) END,"
        " campaign_id = COALESCE(excluded.campaign_id, member_refresh.campaign_id)",
        {"member_id": member_id, "campaign_id": campaign_id, "event_id": event_id, "now": now},
    )


def due(store: Store, now: float, limit: int) -> list[Wanted]:
    with store.read() as conn:
        rows = conn.execute(
            "SELECT member_id, campaign_id, event_id, attempts FROM member_refresh WHERE due_at <= :now"
            " ORDER BY due_at LIMIT :limit",
            {"now": now, "limit": limit},
        ).fetchall()
    return [Wanted(r["member_id"], r["campaign_id"], r["event_id"], r["attempts"]) for r in rows]


def next_due_at(store: Store) -> float | None:
    with store.read() as conn:
        row = conn.execute("SELECT MIN(due_at) AS t FROM member_refresh").fetchone()
    return row["t"]


def done_in(conn: Connection, wanted: Wanted) -> None:
    """Drop the row, unless a newer delivery asked again while the read was running."""
    conn.execute(
        "DELETE FROM member_refresh WHERE member_id = :member_id AND COALESCE(event_id, 0) <= :event_id",
        {"member_id": wanted.member_id, "event_id": wanted.event_id or 0},
    )


def retry(store: Store, wanted: Wanted, due_at: float) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE member_refresh SET due_at = :due_at, attempts = attempts + 1 WHERE member_id = :member_id",
            {"due_at": due_at, "member_id": wanted.member_id},
        )


def pending(store: Store) -> int:
    with store.read() as conn:
        return conn.execute("SELECT COUNT(*) AS n FROM member_refresh").fetchone()["n"]


def clear_covered_in(conn: Connection, event_id: int) -> int:
    """Drop the rows of deliveries up to ``event_id``: a complete sync that began after
    they were consumed has read those members already."""
    return conn.execute(
        "DELETE FROM member_refresh WHERE COALESCE(event_id, 0) <= :event_id", {"event_id": event_id}
    ).rowcount
