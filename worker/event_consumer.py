"""The worker's consumer of the webhook event log: member deliveries -> the refresh
queue (``worker.member_refresh``), which reads each member's state from Patreon.

A thread polls the store for unprocessed events (the web process accepts them; the
store is the only link, so nothing is lost while the worker is down: it catches up
when it comes back). A batch is claimed (its attempts counted), then noted for refresh
and marked processed in one transaction: one commit per batch, not per event, so the
consumer barely competes with web's writes of new deliveries. Each event runs under a
savepoint, so a bad one is rolled back alone. Delivery is at least once: a crash
before the commit notes the batch again, which queues the same refreshes (the queue
keeps one row per member).

The thread never dies on a bad event or a busy store: the error is recorded on the
event (``webhook_events.record_failure``) or logged, and the loop goes on. ``stop()``
(the worker's SIGTERM handler) ends it within one poll interval.

Several workers on one store: only the holder of the ``event-consumer`` lease
(``store.leases``) consumes, so one event is never applied twice at once and the log
is applied in order. The others poll the lease (a read) and take it over once it
expires (its holder died: after ``LEASE_TTL_S``). Each batch's transaction checks the
lease is still held (a fence): a holder that stalled past its lease and comes back
rolls its batch back instead of applying it a second time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from store import webhook_events
from store.database import Store
from store.webhook_events import StoredEvent
from worker import member_refresh
from worker.lease_holder import LeaseHolder

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2
BATCH_SIZE = 200
STOP_TIMEOUT_S = 2.0
LEASE_TTL_S = 20.0


class LostLease(Exception):
    """Another worker took the consumer over: this batch is not ours to apply."""


class EventConsumer:
    def __init__(
        self,
        store: Store,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        on_refresh_wanted: Callable[[], None] | None = None,
        on_sync_wanted: Callable[[], None] | None = None,
        holder: str | None = None,
    ):
        self._store = store
        # None: the only consumer (tests); the worker passes its holder id.
        self._lease = None if holder is None else LeaseHolder(store, "event-consumer", holder, LEASE_TTL_S)
        self._on_refresh_wanted = on_refresh_wanted
        self._on_sync_wanted = on_sync_wanted
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-consumer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        log.info("webhook event consumer started")
        while not self._stopping.is_set():
            try:
                taken = self.run_once()
            except Exception:
                # A locked or broken store: say so and try again next time.
                log.exception("webhook event consumer: store error, retrying")
                taken = 0
            if taken < self._batch_size:
                self._stopping.wait(self._poll_interval_s)
        if self._lease is not None:
            try:
                self._lease.release()  # a peer takes over at once, not after the TTL
            except Exception:
                log.exception("webhook event consumer: could not release its lease")
        log.info("webhook event consumer stopped")

    def _hold_lease(self) -> bool:
        if self._lease is None:
            return True
        if self._lease.held:
            if self._lease.keep():
                return True
            log.warning("webhook event consumer: another worker took the event log over")
            return False
        if self._lease.try_take():
            log.info("webhook event consumer: this worker consumes the event log now")
            return True
        return False

    def run_once(self) -> int:
        """Consume one batch; returns how many events were taken."""
        if not self._hold_lease():
            return 0
        events = webhook_events.claim_unprocessed(self._store, self._batch_size)
        if not events:
            return 0
        failed: list[tuple[StoredEvent, str]] = []
        try:
            done, sync_wanted = self._apply(events, failed)
        except LostLease:
            log.warning(
                "webhook event consumer: lease lost mid-batch; %d event(s) left to its holder", len(events)
            )
            return 0
        if done and self._on_refresh_wanted is not None:
            self._on_refresh_wanted()
        if sync_wanted and self._on_sync_wanted is not None:
            self._on_sync_wanted()
        for event, error in failed:
            gave_up = webhook_events.record_failure(self._store, event.id, error)
            log.warning(
                "webhook event %d (%s) failed on attempt %d%s: %s",
                event.id,
                event.event,
                event.attempts,
                ", set aside" if gave_up else "",
                error,
            )
        return len(events)

    def _apply(
        self, events: list[StoredEvent], failed: list[tuple[StoredEvent, str]]
    ) -> tuple[list[int], bool]:
        """Apply a batch in one transaction: the ids done, and whether a sync is wanted."""
        sync_wanted = False
        with self._store.transaction() as conn:
            if self._lease is not None and not self._lease.fence_in(conn):
                raise LostLease()
            done: list[int] = []
            for event in events:
                conn.execute("SAVEPOINT event")
                try:
                    # A delivery is a hint: queue the member for a read of Patreon's truth.
                    sync_wanted |= member_refresh.note_in(conn, event, time.time())
                except Exception as ex:
                    conn.execute("ROLLBACK TO event")
                    # The exception's own message, never payload values.
                    failed.append((event, f"{type(ex).__name__}: {ex}"))
                else:
                    done.append(event.id)
                conn.execute("RELEASE event")
            webhook_events.mark_processed_in(conn, done)
        return done, sync_wanted
