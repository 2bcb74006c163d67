"""The worker's periodic sweep of orphan session tokens (``store.tokens.sweep_orphans``).

A token pair must not outlive its session. Web forgets a session's tokens when it ends
it, but a pair can still be left behind (web stopped between the two writes, a login
whose session row was never written): every ``SWEEP_INTERVAL_S`` this thread removes
them. It never dies on a busy store; ``stop()`` ends it at once.

With several workers one sweep runs per interval across all of them: a worker sweeps
only when it can take the ``token-sweep`` lease (``store.leases``), which it keeps
for 90% of the interval and never gives back, so the others find it taken.
"""

from __future__ import annotations

import logging
import threading

from store import tokens
from store.database import Store, StoreError
from worker.lease_holder import LeaseHolder

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 300.0


class OrphanTokenSweeper:
    def __init__(self, store: Store, *, interval_s: float = SWEEP_INTERVAL_S, holder: str | None = None):
        self._store = store
        # One sweep per interval across workers (None: no peers to share with).
        self._lease = None if holder is None else LeaseHolder(store, "token-sweep", holder, interval_s * 0.9)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        try:
            if self._lease is not None and not self._lease.try_take():
                return 0  # another worker swept within this interval
            removed = tokens.sweep_orphans(self._store)
        except StoreError as ex:
            log.warning("orphan token sweep skipped: %s", ex)
            return 0
        if removed:
            log.info("forgot %d token pair(s) whose session had ended", removed)
        return removed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="token-sweep", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self._interval_s)

    def stop(self) -> None:
        self._stopping.set()
