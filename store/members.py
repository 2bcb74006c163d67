"""The member table: one row per Patreon member of each of the creator's campaigns.

Owns the table ``members`` (created in ``store/migrations``). Written by the
worker only (``worker.member_writer``: full sync, per-member refresh, and webhook
documents applied provisionally while Patreon cannot be reached); read by web's
entitlement routes directly (``web.entitlements``), never through Patreon.

Each row holds what entitlement checks need, and where that state came from:
``source`` is ``sync`` (a full walk of the campaign's members), ``refresh`` (one
member read from the API after a webhook hinted at a change) or ``webhook`` (a
delivery's own document, applied only while the API could not be asked), and
``source_at`` is when. ``sync_id`` is the last full sync that saw the member, which
is how a finished walk finds the members Patreon no longer lists. ``deleted`` marks
a member Patreon no longer has (its tiers are emptied): such a member is former.

``email`` and ``full_name`` stay NULL unless the operator opted in
(``BRIDGE_MEMBER_PII``): the table keeps no more personal data than checks need.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

from store.database import Connection, Store

SYNC = "sync"
REFRESH = "refresh"
WEBHOOK = "webhook"
SOURCES = (SYNC, REFRESH, WEBHOOK)


@dataclasses.dataclass(frozen=True)
class MemberRecord:
    """What Patreon says about one member (dates are Patreon's ISO strings)."""

    member_id: str
    campaign_id: str
    user_id: str | None
    patron_status: str | None
    last_charge_status: str | None = None
    last_charge_date: str | None = None
    next_charge_date: str | None = None
    entitled_tier_ids: tuple[str, ...] = ()
    entitled_amount_cents: int = 0
    will_pay_amount_cents: int | None = None
    pledge_relationship_start: str | None = None
    lifetime_support_cents: int | None = None
    is_free_trial: bool = False
    is_gifted: bool = False
    deleted: bool = False
    email: str | None = dataclasses.field(default=None, repr=False)
    full_name: str | None = dataclasses.field(default=None, repr=False)

    def entitlement_key(self) -> tuple:
        """The fields a drift or an access change is judged by (not PII, not dates
        that move every month without changing access)."""
        return (
            self.user_id,
            self.patron_status,
            self.last_charge_status,
            tuple(sorted(self.entitled_tier_ids)),
            self.entitled_amount_cents,
            self.is_free_trial,
            self.is_gifted,
            self.deleted,
        )

    def gone(self) -> MemberRecord:
        """The same member once Patreon no longer has it."""
        return dataclasses.replace(self, deleted=True, entitled_tier_ids=(), entitled_amount_cents=0)


@dataclasses.dataclass(frozen=True)
class StoredMember:
    record: MemberRecord
    source: str
    source_at: str
    sync_id: int | None
    event_id: int | None


_RECORD_COLUMNS = [f.name for f in dataclasses.fields(MemberRecord)]
_COLUMNS = [*_RECORD_COLUMNS, "source", "source_at", "sync_id", "event_id"]


def _row_values(record: MemberRecord) -> dict:
    values = {}
    for name in _RECORD_COLUMNS:
        value = getattr(record, name)
        if name == "entitled_tier_ids":
            value = json.dumps(sorted(set(value)))
        elif isinstance(value, bool):
            value = int(value)
        values[name] = value
    return values


def _stored(row) -> StoredMember:
    fields = {name: row[name] for name in _RECORD_COLUMNS}
    fields["entitled_tier_ids"] = tuple(json.loads(fields["entitled_tier_ids"]))
    for name in ("is_free_trial", "is_gifted", "deleted"):
        fields[name] = bool(fields[name])
    return StoredMember(
        MemberRecord(**fields), row["source"], row["source_at"], row["sync_id"], row["event_id"]
    )


def get_in(conn: Connection, member_id: str) -> StoredMember | None:
    row = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM members WHERE member_id = :member_id", {"member_id": member_id}
    ).fetchone()
    return None if row is None else _stored(row)


def get(store: Store, member_id: str) -> StoredMember | None:
    with store.read() as conn:
        return get_in(conn, member_id)


def put_in(
    conn: Connection,
    record: MemberRecord,
    *,
    source: str,
    source_at: str,
    sync_id: int | None = None,
    event_id: int | None = None,
) -> None:
    """Insert or replace the member's row inside the caller's write transaction.

    A refresh or a webhook keeps the ``sync_id`` the row already had (so a member
    refreshed during a walk is not taken for missing); a sync sets its own.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    values = {
        **_row_values(record),
        "source": source,
        "source_at": source_at,
        "sync_id": sync_id,
        "event_id": event_id,
    }
    placeholders = ", ".join(f":{c}" for c in _COLUMNS)
    updates = ", ".join(
        f"{c} = excluded.{c}" if c != "sync_id" else "sync_id = COALESCE(excluded.sync_id, members.sync_id)"
        for c in _COLUMNS
        if c != "member_id"
    )
    conn.execute(
        f"INSERT INTO members ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        f" ON CONFLICT (member_id) DO UPDATE SET {updates}",
        values,
    )


def of_user(store: Store, user_id: str) -> list[StoredMember]:
    """Every row of one Patreon user (deleted ones included), by campaign."""
    with store.read() as conn:
        rows = conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM members WHERE user_id = :user_id ORDER BY campaign_id",
            {"user_id": user_id},
        ).fetchall()
    return [_stored(row) for row in rows]


def ids_of_user_in(conn: Connection, user_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT member_id FROM members WHERE user_id = :user_id AND deleted = 0", {"user_id": user_id}
    )
    return [row["member_id"] for row in rows]


def missing_from_sync_in(
    conn: Connection, campaign_id: str, sync_id: int, started_at: str
) -> Iterable[StoredMember]:
    """Live rows of the campaign that the finished walk ``sync_id`` did not see and
    that nothing newer than the walk's start has confirmed since."""
    rows = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM members WHERE campaign_id = :campaign_id AND deleted = 0"
        " AND (sync_id IS NULL OR sync_id <> :sync_id) AND source_at <= :started_at",
        {"campaign_id": campaign_id, "sync_id": sync_id, "started_at": started_at},
    ).fetchall()
    return [_stored(row) for row in rows]


def count(store: Store) -> int:
    with store.read() as conn:
        return conn.execute("SELECT COUNT(*) AS n FROM members").fetchone()["n"]
