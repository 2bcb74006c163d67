"""Group commit: concurrent writes of one process share one transaction.

A commit costs far more than the insert it holds (the WAL append and the lock
hand-over on SQLite; the WAL flush and the event-log lock's hand-over on PostgreSQL), so when several threads write at once, one of them (the leader) takes
every write queued so far, runs each in its own SAVEPOINT inside one
write transaction and commits; the others wait. Each writer gets its
answer only after the commit that holds its write returned, so an answer is never
given for a write that could still be lost to a process crash. The next queued
writer becomes the leader of the next round; there is no thread of its own.

A store that cannot be had within the store's ``write_timeout_s`` (a foreign process
holding a write transaction; PostgreSQL down or its pool exhausted) fails the whole
round with ``StoreUnavailable``, and every write queued meanwhile with it (they met
the same lock). For
``FAIL_FAST_S`` after that, new writes fail at once instead of each waiting out the
timeout; and at most ``max_waiting`` writes wait at any time (more fail at once): a
locked store must never hold every web thread (issue 16, finding 2).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from store.database import Connection, Store, StoreError, StoreUnavailable

FAIL_FAST_S = 0.5
DEFAULT_MAX_WAITING = 8
# A waiter gives up this long after its round's budget; only a stuck commit gets here.
WAIT_MARGIN_S = 0.5


class StoreBusy(StoreUnavailable):
    """The store was locked by another writer (or could not be reached); nothing of
    this write was stored."""


class _Write:
    __slots__ = ("done", "error", "lead", "ready", "result", "work")

    def __init__(self, work: Callable[[Connection], Any]):
        self.work = work
        self.ready = threading.Event()
        self.lead = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ):
        self._store = store
        self._clock = clock
        self.max_waiting = max_waiting
        self._waiting = 0
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False
        self._fail_until = 0.0
        self.rounds = 0  # how many transactions, and how many writes they held (bench, tests)
        self.writes = 0

    def run(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work(conn)`` inside a committed write transaction; its result.

        ``work`` may be run together with other writes; an exception it raises rolls
        back its own SAVEPOINT only and is raised here.
        """
        write = _Write(work)
        with self._lock:
            if self._clock() < self._fail_until:
                raise StoreBusy("database is locked (failing fast after a locked write)")
            if self._waiting >= self.max_waiting:
                raise StoreBusy(f"database is slow ({self._waiting} writes waiting)")
            self._waiting += 1
            self._queue.append(write)
            if not self._leading:
                self._leading = write.lead = True
        try:
            return self._await(write)
        finally:
            with self._lock:
                self._waiting -= 1

    def _await(self, write: _Write) -> Any:
        wait_s = self._store.write_timeout_s * 2 + WAIT_MARGIN_S
        while not write.done:
            if write.lead:
                self._round()
                continue
            if not write.ready.wait(wait_s) and not self._give_up(write):
                continue  # leadership came with the timeout: lead rather than leave the queue stuck
            write.ready.clear()
        if write.error is not None:
            raise write.error
        return write.result

    def _give_up(self, write: _Write) -> bool:
        """After a wait timed out: leave the queue (raising), or False when this write
        was just made the leader or just finished."""
        with self._lock:
            if write.lead or write.done:
                return False
            if write in self._queue:
                self._queue.remove(write)
        # Still queued, or inside a round that is stuck: either way no answer in time.
        # (A round that later commits it is harmless: a retried delivery dedupes.)
        raise StoreBusy("database is locked (the write was not committed in time)")

    def _round(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
            self.rounds += 1
            self.writes += len(batch)
        error: StoreError | None = None
        try:
            with self._store.transaction() as conn:
                if len(batch) == 1:
                    # Alone in its transaction: its failure rolls back the transaction
                    # itself, so no SAVEPOINT (two statements fewer per write).
                    write = batch[0]
                    write.result = write.work(conn)
                else:
                    for write in batch:
                        self._apply(conn, write)
        except StoreError as ex:
            error = ex
        except Exception as ex:  # a lone write's own failure: rolled back, raised to it
            batch[0].result, batch[0].error = None, ex
        with self._lock:
            if error is not None:
                for write in batch:
                    write.result, write.error = None, error
                if _is_busy(error):
                    # Those queued meanwhile met the same lock: answer them now too.
                    batch += self._queue
                    self._queue = []
                    for write in batch:
                        write.result, write.error = None, _busy(error)
                    self._fail_until = self._clock() + FAIL_FAST_S
            following = self._queue[0] if self._queue else None
            if following is None:
                self._leading = False
            else:
                following.lead = True
            for write in batch:
                write.done, write.lead = True, False
        for write in batch:
            write.ready.set()
        if following is not None:
            following.ready.set()

    @staticmethod
    def _apply(conn: Connection, write: _Write) -> None:
        conn.execute("SAVEPOINT group_write")
        try:
            write.result = write.work(conn)
        except Exception as ex:
            conn.execute("ROLLBACK TO group_write")
            write.error = ex
        conn.execute("RELEASE group_write")


def _is_busy(error: StoreError) -> bool:
    return isinstance(error, StoreUnavailable)


def _busy(error: StoreError) -> StoreBusy:
    return error if isinstance(error, StoreBusy) else StoreBusy(str(error))


_committers: dict[str, GroupCommit] = {}
_committers_guard = threading.Lock()


def for_store(store: Store) -> GroupCommit:
    """The one group committer of this process for ``store``'s database (web sets
    its ``max_waiting`` from WEB_THREADS)."""
    committer = getattr(store, "_group_commit", None)
    if committer is not None:
        return committer  # the common case: no path resolution (an lstat per part) per write
    key = store.key
    with _committers_guard:
        committer = _committers.get(key)
        if committer is None or committer._store.write_timeout_s != store.write_timeout_s:
            committer = _committers[key] = GroupCommit(store)
        store._group_commit = committer
        return committer
