"""One worker's hold on one lease (``store.leases``): take it, keep it, fence with it.

``try_take`` takes the lease when it is free, expired or ours (a read first, so an
idle worker polling a lease another worker holds makes no write). ``keep`` renews it
once more than half its time is spent (one write per half-TTL, not per call) and
says False when it was taken over: the caller must stop. ``fence_in`` is the check
inside the caller's own transaction, so the commit of a stalled holder whose lease
expired never lands. ``release`` gives it back (a clean stop).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from store import leases
from store.database import Connection, Store


def default_holder() -> str:
    """A holder id unique to this object's process (tests, a worker without a slot)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class LeaseHolder:
    def __init__(
        self,
        store: Store,
        name: str,
        holder: str,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self._clock = clock
        self._expires_at = 0.0

    @property
    def held(self) -> bool:
        return self._expires_at > self._clock()

    def try_take(self) -> bool:
        now = self._clock()
        if not self.held and not leases.available(self.store, self.name, self.holder, now):
            return False
        if leases.acquire(self.store, self.name, self.holder, self.ttl_s, now):
            self._expires_at = now + self.ttl_s
            return True
        self._expires_at = 0.0
        return False

    def keep(self) -> bool:
        """Still ours? Renewed when half spent; False once lost (stop the work)."""
        now = self._clock()
        if self._expires_at - now > self.ttl_s / 2:
            return True
        if leases.renew(self.store, self.name, self.holder, self.ttl_s, now):
            self._expires_at = now + self.ttl_s
            return True
        self._expires_at = 0.0
        return False

    def fence_in(self, conn: Connection) -> bool:
        return leases.held_in(conn, self.name, self.holder, self._clock())

    def release(self) -> None:
        if self._expires_at:
            leases.release(self.store, self.name, self.holder)
            self._expires_at = 0.0


def worker_holder(config) -> str:
    """This worker process's holder id (its supervisord slot, host and store folder)."""
    return leases.holder_name(f"worker_{config.worker_process_num:02d}", config.data_dir)
