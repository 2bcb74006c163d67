"""Full member syncs: one row per run, and the request to start one.

Owns the table ``member_syncs`` (created in ``store/migrations``). The worker's
sync (``worker.member_sync``) opens a run, records its progress after every page
(pages, members, drift) and closes it; ``/api/patreon/status`` reads the latest runs
from here. ``request`` (the ``members.sync`` action, or a legacy ``pledges:*``
delivery naming a member not known yet) leaves a row with ``requested_at`` and no
``started_at`` that the sync loop picks up.

``synced`` says whether any run ever finished: until then "not a member" would be a
guess, and access checks answer ``NOT_SYNCED``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from store.database import Connection, Store


@dataclasses.dataclass(frozen=True)
class SyncRun:
    id: int
    reason: str
    requested_at: str
    started_at: str | None
    finished_at: str | None
    pages: int
    members: int
    drift: int
    former: int
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "requested_at": self.requested_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "running": self.started_at is not None and self.finished_at is None,
            "pages": self.pages,
            "members": self.members,
            "drift": self.drift,
            "former": self.former,
            "error": self.error,
        }


_COLUMNS = "id, reason, requested_at, started_at, finished_at, pages, members, drift, former, error"


def _run(row) -> SyncRun:
    return SyncRun(**{k: row[k] for k in row.keys()})


def request(store: Store, reason: str, now: str) -> int:
    """Ask for a sync; a request already waiting is reused. Returns its id."""
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT id FROM member_syncs WHERE started_at IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
        if row is not None:
            return row["id"]
        row = conn.execute(
            "INSERT INTO member_syncs (reason, requested_at) VALUES (:reason, :now) RETURNING id",
            {"reason": reason, "now": now},
        ).fetchone()
        return int(row["id"])


def waiting(store: Store) -> SyncRun | None:
    with store.read() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM member_syncs WHERE started_at IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
    return None if row is None else _run(row)


def start(store: Store, run_id: int, now: str) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE member_syncs SET started_at = :now WHERE id = :id", {"now": now, "id": run_id})


def progress_in(
    conn: Connection, run_id: int, *, pages: int, members: int, drift: int, former: int
) -> None:
    conn.execute(
        "UPDATE member_syncs SET pages = :pages, members = :members, drift = :drift, former = :former"
        " WHERE id = :id",
        {"pages": pages, "members": members, "drift": drift, "former": former, "id": run_id},
    )


def finish(store: Store, run_id: int, now: str, error: str | None = None) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE member_syncs SET finished_at = :now, error = :error WHERE id = :id",
            {"now": now, "error": error, "id": run_id},
        )


def abandon_unfinished(store: Store, now: str) -> int:
    """Runs a previous worker started and never finished (it died): closed as failed."""
    with store.transaction() as conn:
        return conn.execute(
            "UPDATE member_syncs SET finished_at = :now, error = 'the worker stopped during this sync'"
            " WHERE started_at IS NOT NULL AND finished_at IS NULL",
            {"now": now},
        ).rowcount


def get(store: Store, run_id: int) -> SyncRun | None:
    with store.read() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM member_syncs WHERE id = :id", {"id": run_id}).fetchone()
    return None if row is None else _run(row)


def latest(store: Store) -> SyncRun | None:
    with store.read() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM member_syncs WHERE started_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return None if row is None else _run(row)


def last_finished(store: Store) -> SyncRun | None:
    with store.read() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM member_syncs WHERE finished_at IS NOT NULL AND error IS NULL"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return None if row is None else _run(row)


def synced(store: Store) -> bool:
    return last_finished(store) is not None
