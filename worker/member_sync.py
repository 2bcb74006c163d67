"""Full member sync and reconciliation, in the worker.

A sync walks every member of each of the creator's campaigns through
``GET /campaigns/{id}/members`` (1,000 a page, Patreon's largest, with
``currently_entitled_tiers``, ``user`` and the attributes entitlement checks need),
after storing the campaign's tiers and benefits. Each page is written in its own
transaction as it arrives and then dropped, so memory does not grow with the number
of members; progress (pages, members, drift) is stored after every page
(``store.member_sync``) and shown by ``/api/patreon/status``.

Drift is a member whose stored state differed from Patreon's (new, changed, or
missing from the walk). Members a *complete* walk did not list, and that nothing
newer than the walk's start confirmed, become former. A walk that fails part way
(Patreon down beyond the retries) marks nobody former and is recorded with its error.
Drift is counted and logged by number only: no ids, names or emails.

When it runs: at worker start when the member table is empty (the baseline, which
appends no ``entitlement:changed`` events), then every ``BRIDGE_MEMBER_SYNC_INTERVAL_S``
(default 6 h; 0 turns the schedule off), and whenever one is requested (the
``members.sync`` action behind ``POST /api/patreon/sync``, or a legacy pledge of an
unknown member). Every call goes through the worker's one rate-limited Patreon client,
so a sync shares the creator token's budget with everything else and never causes
a 429 of its own; the limiter waits instead.

Several workers on one store: only the holder of the ``member-sync`` lease
(``store.leases``) schedules and runs syncs, so one sync or reconciliation runs at a
time across workers. The holder keeps it (renewed before each Patreon call, so a long
walk never loses it) and gives it up when it stops; a holder that died loses it after
``SYNC_LEASE_TTL_S`` (a restarted worker with the same slot takes its own back at
once), and the new holder closes the dead holder's unfinished run as failed. A
holder that stalled past its lease finds out at its next call or page write (a
fence in the page's transaction) and stops its walk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from entitlements.documents import DocumentError, campaign_tiers, member_record
from store import member_refresh, member_sync, members, tiers, webhook_events
from store.database import Store
from store.members import SYNC
from store.timestamps import utc_now_iso
from store.tokens import CREATOR
from wire.protocol import ActionError
from worker.lease_holder import LeaseHolder
from worker.member_refresh import member_params
from worker.member_writer import MemberWriter

log = logging.getLogger(__name__)

PAGE_COUNT = 1000  # Patreon's maximum without pledge_history
PAGE_TIMEOUT_S = 120.0  # covers the rate limiter's wait for a slot
PAGE_ATTEMPTS = 4
PAGE_RETRY_S = (2.0, 5.0, 15.0)
TIER_PARAMS = {
    "include": "tiers,benefits,tiers.benefits",
    "fields[campaign]": "vanity",
    "fields[tier]": "title,amount_cents,published",
    "fields[benefit]": "title,is_deleted",
}
IDLE_POLL_S = 1.0
UNSYNCED_RETRY_S = 60.0
# Above the longest gap between two renewals (one page call: PAGE_TIMEOUT_S plus a retry pause).
SYNC_LEASE_TTL_S = 180.0


class SyncFailed(Exception):
    pass


class MemberSync:
    def __init__(
        self,
        store: Store,
        api: Any,
        writer: MemberWriter,
        *,
        interval_s: float,
        keep_pii: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        holder: str | None = None,
    ):
        self._store = store
        # None: the only worker (tests); the worker passes its holder id.
        self._lease = None if holder is None else LeaseHolder(store, "member-sync", holder, SYNC_LEASE_TTL_S)
        self._api = api
        self._writer = writer
        self._interval_s = interval_s
        self._keep_pii = keep_pii
        self._clock = clock
        self._sleep = sleep
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="member-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def join(self, timeout_s: float = 2.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def request(self, reason: str) -> int:
        run_id = member_sync.request(self._store, reason, utc_now_iso())
        self._wake.set()
        return run_id

    def _start_up(self) -> None:
        """What the (new) sync holder does first: a run its predecessor left unfinished
        is closed as failed; an empty member table asks for the baseline."""
        member_sync.abandon_unfinished(self._store, utc_now_iso())
        if members.count(self._store) == 0:
            member_sync.request(self._store, "initial: the member table is empty", utc_now_iso())

    def _take_turn(self) -> bool:
        """Is this worker the one that syncs (now)?"""
        if self._lease is None:
            return True
        if self._lease.held:
            return self._lease.keep()
        if not self._lease.try_take():
            return False
        log.info("member sync: this worker runs the syncs now")
        self._start_up()
        return True

    def _run(self) -> None:
        if self._lease is None:
            try:
                self._start_up()
            except Exception:
                log.exception("member sync: store error at start")
        while not self._stopping.is_set():
            try:
                if self._take_turn():
                    self.run_due()
            except Exception:
                log.exception("member sync: store error, retrying")
            self._wake.wait(IDLE_POLL_S)
            self._wake.clear()
        if self._lease is not None:
            try:
                self._lease.release()  # a peer takes over at once, not after the TTL
            except Exception:
                log.exception("member sync: could not release its lease")

    def _still_ours(self, conn=None) -> None:
        """Stop a walk whose lease another worker took over (after this one stalled)."""
        if self._lease is None:
            return
        if not (self._lease.keep() if conn is None else self._lease.fence_in(conn)):
            raise SyncFailed("another worker took the member sync over")

    def run_due(self) -> member_sync.SyncRun | None:
        """Run the waiting request, or a scheduled sync when one is due."""
        waiting = member_sync.waiting(self._store)
        if waiting is None:
            last = member_sync.latest(self._store)
            started = _epoch(last.started_at) if last and last.started_at else None
            if last is not None and last.error is not None and not member_sync.synced(self._store):
                # Never synced yet (Patreon down at start): every answer would be
                # NOT_SYNCED, so try again soon, schedule or not.
                if started is None or self._clock() - started >= UNSYNCED_RETRY_S:
                    member_sync.request(self._store, "retry: no sync has finished yet", utc_now_iso())
            elif self._interval_s > 0 and (started is None or self._clock() - started >= self._interval_s):
                member_sync.request(self._store, "schedule", utc_now_iso())
            waiting = member_sync.waiting(self._store)
        if waiting is None:
            return None
        return self.run(waiting.id)

    # -- one sync ---------------------------------------------------------------------
    def run(self, run_id: int) -> member_sync.SyncRun | None:
        started_at = utc_now_iso()
        # Deliveries consumed before the walk began are covered by it (see below).
        covered_event_id = webhook_events.latest_consumed_id(self._store)
        member_sync.start(self._store, run_id, started_at)
        baseline = members.count(self._store) == 0
        totals = {"pages": 0, "members": 0, "drift": 0, "former": 0}
        error = None
        try:
            for campaign_id in self._campaign_ids():
                self._sync_campaign(run_id, campaign_id, started_at, baseline, totals)
        except SyncFailed as ex:
            error = str(ex)
        except Exception as ex:  # never kill the loop; record why
            log.exception("member sync %d failed", run_id)
            error = f"{type(ex).__name__}"
        if error is None:
            # Every member was just read: queued refreshes of older deliveries are done.
            with self._store.transaction() as conn:
                member_refresh.clear_covered_in(conn, covered_event_id)
        member_sync.finish(self._store, run_id, utc_now_iso(), error)
        log.info(
            "member sync %d %s: %d pages, %d members, drift %d (%d now former)%s",
            run_id,
            "failed" if error else "finished",
            totals["pages"],
            totals["members"],
            totals["drift"],
            totals["former"],
            f": {error}" if error else "",
        )
        return member_sync.get(self._store, run_id)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        for attempt in range(PAGE_ATTEMPTS):
            self._still_ours()
            try:
                return self._api.get(CREATOR, path, params, time.monotonic() + PAGE_TIMEOUT_S)
            except Exception as ex:
                # A 4xx other than 429 will not change on a retry, and Patreon's edge
                # blocks clients that send many: give up on this sync at once.
                refused = isinstance(ex, ActionError) and 400 <= ex.status < 500 and ex.status != 429
                if refused or attempt == PAGE_ATTEMPTS - 1 or self._stopping.is_set():
                    raise SyncFailed(f"Patreon could not be read ({type(ex).__name__})") from ex
                log.warning("member sync: Patreon failed (%s); retrying", type(ex).__name__)
                self._sleep(PAGE_RETRY_S[min(attempt, len(PAGE_RETRY_S) - 1)])
        raise AssertionError("unreachable")

    def _campaign_ids(self) -> list[str]:
        document = self._get("/campaigns", {})
        return [
            item["id"] for item in document.get("data") or [] if isinstance(item, dict) and item.get("id")
        ]

    def _sync_campaign(
        self, run_id: int, campaign_id: str, started_at: str, baseline: bool, totals: dict[str, int]
    ) -> None:
        document = self._get(f"/campaigns/{campaign_id}", TIER_PARAMS)
        tier_rows, benefit_rows = campaign_tiers(document, campaign_id)
        with self._store.transaction() as conn:
            tiers.replace_campaign_in(conn, campaign_id, tier_rows, benefit_rows, utc_now_iso())
        params = {**member_params(self._keep_pii), "page[count]": str(PAGE_COUNT)}
        path = f"/campaigns/{campaign_id}/members"
        seen_cursors: set[str] = set()
        while not self._stopping.is_set():
            page = self._get(path, params)
            items = page.get("data")
            if not isinstance(items, list):
                raise SyncFailed("Patreon answered a member page without a data list")
            now = utc_now_iso()
            with self._store.transaction() as conn:
                self._still_ours(conn)
                for item in items:
                    try:
                        record = member_record(item, campaign_id=campaign_id, keep_pii=self._keep_pii)
                    except DocumentError as ex:
                        log.warning("member sync: skipped an unreadable member (%s)", ex)
                        continue
                    if self._writer.put_in(
                        conn, record, source=SYNC, source_at=now, sync_id=run_id, emit=not baseline
                    ):
                        totals["drift"] += 1
                    totals["members"] += 1
                totals["pages"] += 1
                member_sync.progress_in(conn, run_id, **totals)
            cursor = ((page.get("meta") or {}).get("pagination") or {}).get("cursors", {}).get("next")
            del page, items  # one page at a time
            if not cursor or not isinstance(cursor, str):
                break
            if cursor in seen_cursors:  # a cursor loop has been seen on Patreon
                raise SyncFailed("Patreon repeated a page cursor")
            seen_cursors.add(cursor)
            params["page[cursor]"] = cursor
        else:
            raise SyncFailed("the worker is stopping")
        # The walk is complete: whoever it did not list is gone.
        now = utc_now_iso()
        with self._store.transaction() as conn:
            self._still_ours(conn)
            for row in members.missing_from_sync_in(conn, campaign_id, run_id, started_at):
                self._writer.put_in(
                    conn,
                    row.record.gone(),
                    source=SYNC,
                    source_at=now,
                    sync_id=run_id,
                    before=row,
                    emit=not baseline,
                )
                totals["drift"] += 1
                totals["former"] += 1
            member_sync.progress_in(conn, run_id, **totals)


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return None
