"""Webhook hints -> what Patreon says now: the worker's per-member refresh.

Patreon is the truth and a webhook is a hint. When the event consumer takes a member
delivery (any ``members:*`` event, or a legacy ``pledges:*`` one) it does not apply
the document: it queues the member (``store.member_refresh``, see ``note_in``) and
wakes this refresher, which reads the member from ``GET /members/{id}`` with the
creator's token, through the worker's one rate-limited Patreon client, and stores
that (source ``refresh``). Order, age and event name of deliveries therefore never
matter: a stale retry or a body replayed under ``members:delete`` only causes
another read of the present state. Patreon's 404 means the member is gone: the row
becomes former.

When Patreon cannot be asked (5xx, timeout, 429 beyond the call's deadline), the
newest queued delivery's document is applied *provisionally* (source ``webhook``),
and the read is retried with a growing delay (2 s doubling to 5 min) until it
succeeds. A provisional document never replaces state that came from the API (a
sync or a refresh), and never an equally new or newer delivery: so while Patreon is
unreachable a member Patreon already told us about keeps that state, and a member
we know nothing about gets the webhook's. Either way the next successful read, or
the next full sync, makes the row what Patreon says.

Several workers on one store: only the holder of the ``member-refresh`` lease
(``store.leases``) reads members, so one delivery costs one Patreon call, not one per
worker; it renews the lease before each read, and a dead holder's lease is taken over
after ``LEASE_TTL_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from entitlements.documents import DocumentError, member_record
from store import member_refresh, member_sync, members, webhook_events
from store.database import Connection, Store, StoreError
from store.member_refresh import Wanted
from store.members import REFRESH, WEBHOOK
from store.timestamps import utc_now_iso
from store.tokens import CREATOR
from store.webhook_events import StoredEvent
from wire.codes import NOT_FOUND, PATREON_BAD_REQUEST
from wire.patreon_schema import MEMBER_ID
from wire.protocol import ActionError
from worker.lease_holder import LeaseHolder
from worker.member_writer import MemberWriter

log = logging.getLogger(__name__)

MEMBER_INCLUDE = "currently_entitled_tiers,user,campaign"
MEMBER_FIELDS = (
    "patron_status,last_charge_status,last_charge_date,next_charge_date,currently_entitled_amount_cents,"
    "will_pay_amount_cents,campaign_lifetime_support_cents,pledge_relationship_start,is_free_trial,is_gifted"
)
PII_FIELDS = ",email,full_name"
REQUEST_TIMEOUT_S = 30.0
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 300.0
IDLE_POLL_S = 1.0
BATCH = 20
LEASE_TTL_S = 90.0  # above one read's REQUEST_TIMEOUT_S: renewed before each
BACKLOG_FOR_SYNC = 200  # queued members above which a full sync is cheaper than single reads


def member_params(keep_pii: bool) -> dict[str, str]:
    return {"include": MEMBER_INCLUDE, "fields[member]": MEMBER_FIELDS + (PII_FIELDS if keep_pii else "")}


def note_in(conn: Connection, event: StoredEvent, now: float) -> bool:
    """Queue the member a consumed delivery is about; True when it asks for a full sync
    instead (a legacy pledge of a user we hold no member for)."""
    data = event.document().get("data")
    if not isinstance(data, dict):
        return False
    if data.get("type") == "member":
        # Patreon's member ids are UUIDs: anything else cannot be read from the API
        # (asking would only earn 4xx, which Patreon's edge punishes).
        if isinstance(data.get("id"), str) and MEMBER_ID.fullmatch(data["id"]):
            member_refresh.want_in(conn, data["id"].lower(), event.campaign_id, event.id, now)
        return False
    if data.get("type") == "pledge" or event.event.startswith("pledges:"):
        relationships = data.get("relationships") or {}
        user = None
        for name in ("patron", "user"):
            linkage = (relationships.get(name) or {}).get("data") if isinstance(relationships, dict) else None
            if isinstance(linkage, dict) and isinstance(linkage.get("id"), str):
                user = linkage["id"]
        ids = members.ids_of_user_in(conn, user) if user else []
        for member_id in ids:
            member_refresh.want_in(conn, member_id, None, event.id, now)
        return not ids
    return False


class PatreonReader:
    """The two reads a refresher needs, through the worker's PatreonApi (duck-typed so
    unit tests can pass an in-memory one that returns the same dicts)."""

    def __init__(self, api: Any):
        self._api = api

    def member(self, member_id: str, params: dict[str, str], deadline: float) -> dict[str, Any] | None:
        """The member resource, or None when Patreon has no such member (404)."""
        try:
            document = self._api.get(CREATOR, f"/members/{member_id}", params, deadline)
        except ActionError as ex:
            if ex.code in (NOT_FOUND, PATREON_BAD_REQUEST):
                return None  # no such member: never worth asking again
            raise
        return document.get("data")


class MemberRefresher:
    def __init__(
        self,
        store: Store,
        reader: PatreonReader,
        writer: MemberWriter,
        *,
        keep_pii: bool = False,
        clock: Callable[[], float] = time.time,
        request_sync: Callable[[str], int] | None = None,
        holder: str | None = None,
    ):
        self._store = store
        # None: the only refresher (tests); the worker passes its holder id.
        self._lease = None if holder is None else LeaseHolder(store, "member-refresh", holder, LEASE_TTL_S)
        self._request_sync = request_sync
        self._reader = reader
        self._writer = writer
        self._keep_pii = keep_pii
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="member-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def join(self, timeout_s: float = 2.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                done = self.run_once()
            except Exception:
                log.exception("member refresh: store error, retrying")
                done = 0
            if done:
                continue
            next_at = None
            try:
                next_at = member_refresh.next_due_at(self._store)
            except StoreError:
                pass
            wait = IDLE_POLL_S if next_at is None else max(0.0, min(IDLE_POLL_S, next_at - self._clock()))
            self._wake.wait(wait)
            self._wake.clear()
        if self._lease is not None:
            try:
                self._lease.release()  # a peer takes over at once, not after the TTL
            except Exception:
                log.exception("member refresh: could not release its lease")

    def run_once(self) -> int:
        """Refresh every member due now (up to a batch); returns how many were tried.

        A backlog (a charge day sends a delivery for every patron) is handed to a full
        sync instead: 1,000 members a call rather than one, so the creator token's
        budget is not spent for minutes on single reads.
        """
        if not self._turn():
            return 0
        if self._request_sync is not None and member_refresh.pending(self._store) > BACKLOG_FOR_SYNC:
            if member_sync.waiting(self._store) is None and not _running(self._store):
                self._request_sync("refresh backlog")
            return 0
        wanted = member_refresh.due(self._store, self._clock(), BATCH)
        for item in wanted:
            if self._stopping.is_set() or not self._turn():
                break
            self.refresh(item)
        return len(wanted)

    def _turn(self) -> bool:
        """Is this worker the one that reads members (now)?"""
        if self._lease is None:
            return True
        return self._lease.keep() if self._lease.held else self._lease.try_take()

    def refresh(self, wanted: Wanted) -> None:
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        try:
            resource = self._reader.member(wanted.member_id, member_params(self._keep_pii), deadline)
            record = (
                None
                if resource is None
                else member_record(resource, campaign_id=wanted.campaign_id, keep_pii=self._keep_pii)
            )
        except DocumentError as ex:
            log.warning("member refresh: Patreon's member document is unreadable (%s); retrying later", ex)
            self._retry_later(wanted)
            return
        except Exception as ex:  # Patreon unreachable, throttled beyond the deadline, 5xx, 401/403
            log.warning(
                "member refresh: Patreon could not be asked (%s); applying the delivery provisionally",
                type(ex).__name__,
            )
            self._provisional(wanted)
            self._retry_later(wanted)
            return
        now = utc_now_iso()
        with self._store.transaction() as conn:
            before = members.get_in(conn, wanted.member_id)
            if record is None:
                if before is not None and not before.record.deleted:
                    self._writer.put_in(
                        conn, before.record.gone(), source=REFRESH, source_at=now, before=before
                    )
            else:
                self._writer.put_in(conn, record, source=REFRESH, source_at=now, before=before)
            member_refresh.done_in(conn, wanted)

    def _retry_later(self, wanted: Wanted) -> None:
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * (2 ** min(wanted.attempts, 12)))
        member_refresh.retry(self._store, wanted, self._clock() + delay)

    def _provisional(self, wanted: Wanted) -> None:
        if wanted.event_id is None:
            return
        event = webhook_events.get(self._store, wanted.event_id)
        if event is None:
            return
        try:
            record = member_record(
                event.document().get("data"), campaign_id=event.campaign_id, keep_pii=self._keep_pii
            )
        except DocumentError:
            return  # a legacy pledge document: nothing to apply, the read will come
        if event.event == "members:delete":
            record = record.gone()
        with self._store.transaction() as conn:
            before = members.get_in(conn, record.member_id)
            if before is not None and (before.source != WEBHOOK or (before.event_id or 0) >= event.id):
                return  # never over what the API said, nor over a newer delivery
            self._writer.put_in(
                conn, record, source=WEBHOOK, source_at=utc_now_iso(), event_id=event.id, before=before
            )


def _running(store: Store) -> bool:
    latest = member_sync.latest(store)
    return latest is not None and latest.finished_at is None
