"""Leases: one holder at a time for work that must not run twice across workers.

Owns the table ``leases`` (revision 0005 in ``store/migrations``): a row per lease
``name`` with its ``holder`` and ``expires_at`` (epoch seconds, the wall clock: leases
hold across hosts, where monotonic clocks mean nothing). A holder keeps a lease by
renewing it before it expires; a holder that dies (kill -9, a host lost) stops
renewing, and once ``expires_at`` has passed anyone may take the lease over. A holder
that only stalled (SIGSTOP, a long GC) and comes back after the takeover finds
``renew`` and ``held_in`` false and must stop: writes that must not happen twice
check ``held_in`` inside their own transaction (a fence), so a stale holder's commit
never lands.

Used by the worker for: the member sync (``member-sync``), the event consumer
(``event-consumer``), the orphan token sweep (``token-sweep``) and each principal's
token refresh (``token-refresh:<hash>``). Holders are named by ``holder_name``: host,
process slot and store folder, so a restarted worker_00 takes back its own lease at
once instead of waiting out its predecessor's.

Portable SQL (SQLite and PostgreSQL): an UPDATE that takes an expired or own lease,
else an INSERT of a lease nobody has; a concurrent INSERT that loses the race is an
integrity error, which means "not acquired". The fence is exact on both: SQLite's
write transactions run one at a time; on PostgreSQL ``held_in`` reads the row ``FOR
UPDATE``, so a takeover waits until the fenced transaction has committed (and the
taking UPDATE re-checks its WHERE after that wait, READ COMMITTED's rule).
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket

from store.database import Connection, Store, StoreError, StoreUnavailable


@dataclasses.dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: float


def holder_name(process: str, data_dir: object) -> str:
    """A holder id: host, process slot (``worker_00``) and which store folder."""
    folder = hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}/{process}/{folder}"


def acquire_in(conn: Connection, name: str, holder: str, ttl_s: float, now: float) -> bool:
    """Take or renew ``name`` for ``holder`` until ``now + ttl_s``, inside a transaction."""
    params = {"name": name, "holder": holder, "expires_at": now + ttl_s, "now": now}
    taken = conn.execute(
        "UPDATE leases SET holder = :holder, expires_at = :expires_at"
        " WHERE name = :name AND (holder = :holder OR expires_at < :now)",
        params,
    ).rowcount
    if taken:
        return True
    inserted = conn.execute(
        "INSERT INTO leases (name, holder, expires_at) SELECT :name, :holder, :expires_at"
        " WHERE NOT EXISTS (SELECT 1 FROM leases WHERE name = :name)",
        params,
    ).rowcount
    return inserted > 0


def acquire(store: Store, name: str, holder: str, ttl_s: float, now: float) -> bool:
    """Take ``name`` if it is free, expired or already ours (then it is renewed)."""
    try:
        with store.transaction() as conn:
            return acquire_in(conn, name, holder, ttl_s, now)
    except StoreUnavailable:
        raise
    except StoreError:  # another holder inserted it first (the primary key)
        return False


def renew(store: Store, name: str, holder: str, ttl_s: float, now: float) -> bool:
    """Extend our lease; False when it is no longer ours (taken over after expiry)."""
    with store.transaction() as conn:
        return (
            conn.execute(
                "UPDATE leases SET expires_at = :expires_at WHERE name = :name AND holder = :holder",
                {"expires_at": now + ttl_s, "name": name, "holder": holder},
            ).rowcount
            > 0
        )


def release(store: Store, name: str, holder: str) -> None:
    """Give the lease up (only if it is ours)."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM leases WHERE name = :name AND holder = :holder", {"name": name, "holder": holder})


def held_in(conn: Connection, name: str, holder: str, now: float) -> bool:
    """Inside a write transaction: is the lease still ours and unexpired? (the fence)"""
    lock = " FOR UPDATE" if conn.dialect == "postgresql" else ""  # see above
    row = conn.execute(f"SELECT holder, expires_at FROM leases WHERE name = :name{lock}", {"name": name}).fetchone()
    return row is not None and row["holder"] == holder and row["expires_at"] >= now


def get(store: Store, name: str) -> Lease | None:
    with store.read() as conn:
        row = conn.execute("SELECT name, holder, expires_at FROM leases WHERE name = :name", {"name": name}).fetchone()
    return None if row is None else Lease(row["name"], row["holder"], row["expires_at"])


def available(store: Store, name: str, holder: str, now: float) -> bool:
    """A read-only look (no write lock): could ``holder`` take ``name`` now?"""
    lease = get(store, name)
    return lease is None or lease.holder == holder or lease.expires_at < now
