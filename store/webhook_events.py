"""The webhook event log: every accepted Patreon delivery, in the order it was accepted.

Owns the table ``webhook_events`` (created by the baseline revision in ``store/migrations``). Its
``id`` (an autoincrement key; never reused) is the event's sequence number: the SSE
``id:``, the Socket.IO replay cursor and the back-fill cursor. Inserts are serialized,
so ids become visible in order: a reader that sees event N has seen every event
before it, which is what lets a subscriber resume from "the last id I saw". SQLite:
``BEGIN IMMEDIATE`` serializes every writer. PostgreSQL: a sequence hands out ids
before commit, so two transactions could commit ids 8 and 7 in that order and a
reader at 8 would never see 7; every transaction that inserts here first takes the
transaction-level advisory lock ``EVENT_LOG_LOCK`` (``pg_advisory_xact_lock``, held
until its commit), so the next insert gets its id only after the previous one is
visible, whichever host it runs on. Concurrent deliveries of one process share one
transaction (``store.group_commit``), which keeps that lock's hand-overs few.

Patreon sends no delivery id, so a delivery is identified by the sha256 of its raw
body (``dedupe_key``, UNIQUE): a retried delivery is stored once and answered with the
id it got the first time. The trigger (``X-Patreon-Event``) is not part of the key:
the signature covers only the body, so a captured delivery replayed under another
trigger is the same delivery and is not stored again (issue 16). Rows stored before
that change carry the old key, sha256 of event name + newline + body
(``legacy_dedupe_key``), and are matched by it too, under every trigger.

The raw body is kept byte for byte (it is what the signature covered); the message
that live subscribers receive is built from it on the way out (``StoredEvent.message``).

The worker consumes the log at least once: ``claim_unprocessed`` counts an attempt
before the event is applied, ``mark_processed`` records success, and ``record_failure``
keeps the error and gives up after ``MAX_ATTEMPTS`` so one bad event never blocks the
rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from store import group_commit
from store.database import Connection, Store
from store.timestamps import utc_now_iso
from wire.patreon_schema import LEGACY_TRIGGERS, V2_TRIGGERS

# Every trigger a delivery may carry: v2's, and the v1 ones still sent on old webhooks.
TRIGGERS = frozenset(V2_TRIGGERS + LEGACY_TRIGGERS)

MAX_ATTEMPTS = 5  # after this many failed applications an event is set aside (processed, with its error)
MAX_ERROR_CHARS = 500
# The advisory lock that serializes event-log inserts on PostgreSQL (see above).
EVENT_LOG_LOCK = 0x5042_0010
# PostgreSQL: the channel a trigger notifies at every commit that appended events
# (revision 0002), whichever host made it: live programs LISTEN on it (live.notify).
NOTIFY_CHANNEL = "bridge_events"


_COLUMNS = "id, event, body, campaign_id, received_at, processed_at, attempts, last_error"


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    id: int
    event: str
    body: bytes
    campaign_id: str | None
    received_at: str
    processed_at: str | None = None
    attempts: int = 0
    last_error: str | None = None

    def document(self) -> dict[str, Any]:
        """The JSON:API document that was delivered (the receiver only stores valid ones)."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def message(self) -> dict[str, Any]:
        """What subscribers receive, in the shape the original service documented."""
        doc = self.document()
        return {
            "id": self.id,
            "type": self.event,
            "data": doc.get("data"),
            "included": doc.get("included") or [],
            "receivedAt": self.received_at,
        }


def dedupe_key(raw_body: bytes) -> str:
    """The key of a delivery: its body alone, which is all the signature covers."""
    return hashlib.sha256(raw_body).hexdigest()


def legacy_dedupe_key(event: str, raw_body: bytes) -> str:
    """The key rows got before issue 16 (event name, newline, body)."""
    return hashlib.sha256(event.encode("utf-8") + b"\n" + raw_body).hexdigest()


def campaign_of(document: Any) -> str | None:
    """``data.relationships.campaign.data.id`` of a delivery, when it has one."""
    try:
        campaign_id = document["data"]["relationships"]["campaign"]["data"]["id"]
    except (KeyError, TypeError):
        return None
    return campaign_id if isinstance(campaign_id, str) and campaign_id else None


def accept(
    store: Store, event: str, raw_body: bytes, *, document: Any = None, now: str | None = None
) -> tuple[int, bool]:
    """Store a delivery and commit it: ``(id, duplicate)``.

    A delivery already stored (the same bytes, under whatever trigger) is not stored
    again; its original id comes back with ``duplicate=True``. ``document`` is the body already
    parsed, when the caller has it (the receiver validates it first).

    Concurrent deliveries share one transaction (``store.group_commit``); this returns
    only after the commit that holds this one. Raises ``StoreError`` (``StoreUnavailable``
    when the store cannot answer now) when it was not stored.
    """
    key = dedupe_key(raw_body)
    # An older row of this body may carry the legacy key of any trigger: a handful of hashes.
    keys = [key, *(legacy_dedupe_key(trigger, raw_body) for trigger in sorted(TRIGGERS | {event}))]
    if document is None:
        try:
            document = json.loads(raw_body)
        except ValueError:
            document = None
    campaign_id = campaign_of(document)
    received_at = now or utc_now_iso()

    marks = ", ".join(f":k{i}" for i in range(len(keys)))
    lookup = f"SELECT id FROM webhook_events WHERE dedupe_key IN ({marks}) ORDER BY id LIMIT 1"
    key_params = {f"k{i}": k for i, k in enumerate(keys)}

    def insert_once(conn: Connection) -> tuple[int, bool]:
        _serialize_inserts(conn)  # before the look: another host may be storing the same body
        # Look first: an INSERT that meets the UNIQUE key would still use up an id.
        row = conn.execute(lookup, key_params).fetchone()
        if row is not None:
            return row["id"], True
        row = conn.execute(
            "INSERT INTO webhook_events (event, body, dedupe_key, campaign_id, received_at)"
            " VALUES (:event, :body, :key, :campaign_id, :received_at) RETURNING id",
            {"event": event, "body": raw_body, "key": key, "campaign_id": campaign_id, "received_at": received_at},
        ).fetchone()
        return int(row["id"]), False

    return group_commit.for_store(store).run(insert_once)


def _serialize_inserts(conn: Connection) -> None:
    """PostgreSQL: wait for the event-log lock (ids visible in order, see above);
    SQLite's BEGIN IMMEDIATE already did."""
    if conn.dialect == "postgresql":
        conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": EVENT_LOG_LOCK})


def _event(row) -> StoredEvent:
    return StoredEvent(
        id=row["id"],
        event=row["event"],
        body=bytes(row["body"]),
        campaign_id=row["campaign_id"],
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def since(
    store: Store, after_id: int, limit: int, *, campaign_ids: Iterable[str] | None = None
) -> list[StoredEvent]:
    """Events with ``id > after_id``, oldest first, at most ``limit``.

    ``campaign_ids`` (when not None) keeps only the events of those campaigns: what a
    creator's session may see.
    """
    params: dict[str, Any] = {"after": after_id, "limit": limit}
    if campaign_ids is None:
        sql = f"SELECT {_COLUMNS} FROM webhook_events WHERE id > :after ORDER BY id LIMIT :limit"
    else:
        ids = sorted(set(campaign_ids))
        if not ids:
            return []
        params.update({f"c{i}": c for i, c in enumerate(ids)})
        marks = ", ".join(f":c{i}" for i in range(len(ids)))
        sql = (
            f"SELECT {_COLUMNS} FROM webhook_events WHERE id > :after AND campaign_id IN ({marks})"
            " ORDER BY id LIMIT :limit"
        )
    with store.read() as conn:
        rows = conn.execute(sql, params).fetchall()
    return [_event(row) for row in rows]


def get(store: Store, event_id: int) -> StoredEvent | None:
    with store.read() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM webhook_events WHERE id = :id", {"id": event_id}).fetchone()
    return None if row is None else _event(row)


def latest_id(store: Store) -> int:
    """The id of the newest stored event, 0 when there is none."""
    with store.read() as conn:
        row = conn.execute("SELECT MAX(id) AS id FROM webhook_events").fetchone()
    return row["id"] or 0


def latest_consumed_id(store: Store) -> int:
    """The newest id with nothing unconsumed at or before it (0 when none)."""
    with store.read() as conn:
        row = conn.execute(
            "SELECT COALESCE((SELECT MIN(id) - 1 FROM webhook_events WHERE processed_at IS NULL),"
            " (SELECT MAX(id) FROM webhook_events), 0) AS id"
        ).fetchone()
    return row["id"]


def counts(store: Store) -> dict[str, int]:
    """How many events are stored, still to process, and set aside after failing."""
    with store.read() as conn:
        row = conn.execute(
            "SELECT COUNT(*) AS total,"
            " SUM(CASE WHEN processed_at IS NULL THEN 1 ELSE 0 END) AS unprocessed,"
            " SUM(CASE WHEN processed_at IS NOT NULL AND last_error IS NOT NULL THEN 1 ELSE 0 END) AS failed"
            " FROM webhook_events"
        ).fetchone()
    return {"total": row["total"], "unprocessed": int(row["unprocessed"] or 0), "failed": int(row["failed"] or 0)}


def claim_unprocessed(store: Store, limit: int) -> list[StoredEvent]:
    """The oldest unprocessed events, each with one more attempt counted.

    The attempt is counted before the event is applied, so an event that kills the
    consumer still runs out of attempts instead of killing it forever.
    """
    # A plain read first: an idle consumer polls often and should not take the write lock.
    with store.read() as conn:
        idle = conn.execute("SELECT 1 AS one FROM webhook_events WHERE processed_at IS NULL LIMIT 1").fetchone() is None
    if idle:
        return []
    with store.transaction() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM webhook_events WHERE processed_at IS NULL ORDER BY id LIMIT :limit",
            {"limit": limit},
        ).fetchall()
        if rows:
            conn.execute(
                "UPDATE webhook_events SET attempts = attempts + 1 WHERE id = :id", [{"id": r["id"]} for r in rows]
            )
    return [dataclasses.replace(_event(row), attempts=row["attempts"] + 1) for row in rows]


def mark_processed(store: Store, event_ids: Sequence[int], *, now: str | None = None) -> None:
    if not event_ids:
        return
    with store.transaction() as conn:
        mark_processed_in(conn, event_ids, now=now)


def mark_processed_in(conn: Connection, event_ids: Sequence[int], *, now: str | None = None) -> None:
    """``mark_processed`` inside the caller's write transaction."""
    if not event_ids:
        return
    stamp = now or utc_now_iso()
    conn.execute(
        "UPDATE webhook_events SET processed_at = :stamp, last_error = NULL"
        " WHERE id = :id AND processed_at IS NULL",
        [{"stamp": stamp, "id": event_id} for event_id in event_ids],
    )


def record_failure(store: Store, event_id: int, error: str, *, now: str | None = None) -> bool:
    """Keep the error of a failed application; True when the event is now set aside."""
    with store.transaction() as conn:
        row = conn.execute("SELECT attempts FROM webhook_events WHERE id = :id", {"id": event_id}).fetchone()
        if row is None:
            return False
        gave_up = row["attempts"] >= MAX_ATTEMPTS
        conn.execute(
            "UPDATE webhook_events SET last_error = :error, processed_at = :at WHERE id = :id",
            {"error": error[:MAX_ERROR_CHARS], "at": (now or utc_now_iso()) if gave_up else None, "id": event_id},
        )
    return gave_up


# Events the bridge itself derives (not deliveries): stored in the same log, so live
# subscribers and ``/api/patreon/webhooks/events`` carry them in order with the rest.
# Stored already processed: the consumer has nothing to apply.
ENTITLEMENT_CHANGED = "entitlement:changed"


def append_derived_in(
    conn: Connection, event: str, document: dict[str, Any], campaign_id: str | None, *, now: str | None = None
) -> int:
    """Append a derived event inside the caller's write transaction; returns its id."""
    stamp = now or utc_now_iso()
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    # Unique per append: the same change may legitimately happen twice (up, down, up).
    key = "derived:" + hashlib.sha256(body + stamp.encode() + os.urandom(8)).hexdigest()
    _serialize_inserts(conn)
    row = conn.execute(
        "INSERT INTO webhook_events (event, body, dedupe_key, campaign_id, received_at, processed_at)"
        " VALUES (:event, :body, :key, :campaign_id, :stamp, :stamp) RETURNING id",
        {"event": event, "body": body, "key": key, "campaign_id": campaign_id, "stamp": stamp},
    ).fetchone()
    return int(row["id"])
