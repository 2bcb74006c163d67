"""The rate limiter for several workers: Patreon's budget kept in the store.

``SharedRateLimiter`` has ``patreon_client.ratelimit.RateLimiter``'s interface
(``slot``, ``pause``) and its rule (a slot is held from before the request is sent
until its response arrives, then ages out of the 2 s client window and the user's
minute window), but the slots are rows in ``store.rate_slots``, so every worker
sharing the store draws on one budget: two workers together send at most
``PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS`` per 2 s, not twice that.

A waiting call looks at the windows with plain reads and takes the write lock only
when they have room; it sleeps until the oldest answered slot ages out (or
``BUSY_POLL_S`` while every slot is in flight). ``pause`` after Patreon's 429 stays
per process (each worker that meets one holds back; the shared windows keep the
others under the limit in the first place).

The worker uses it when it has peers (``WORKER_PROCESSES`` or
``PATREON_WORKER_ENDPOINTS`` above 1, or ``PATREON_RATE_LIMIT_SHARED=1`` for workers
on several hosts); one worker alone keeps the in-process limiter (no store write
per call; bench/ratelimit.py measures the difference).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from patreon_client.ratelimit import BUSY_POLL_S, CLIENT_WINDOW_S, TOKEN_WINDOW_S, rate_limited
from store import rate_slots
from store.database import Store

PRUNE_EVERY = 200  # slots taken between two prunes of old rows


def _window_key(token_key: Hashable | None) -> str | None:
    if token_key is None:
        return None
    # A session principal holds a cookie value: only a hash reaches the store.
    return "token:" + hashlib.sha256(str(token_key).encode()).hexdigest()[:32]


class SharedRateLimiter:
    def __init__(
        self,
        store: Store,
        per_2_seconds: int,
        per_minute: int,
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.per_2_seconds = per_2_seconds
        self.per_minute = per_minute
        self._wall = wall_clock
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until: dict[Hashable | None, float] = {}
        self._taken = 0

    def _windows(self, token_key: Hashable | None) -> list[tuple[str, int, float]]:
        windows = [("client", self.per_2_seconds, CLIENT_WINDOW_S)]
        key = _window_key(token_key)
        if key is not None:
            windows.append((key, self.per_minute, TOKEN_WINDOW_S))
        return windows

    def _wait_s(self, windows: list[tuple[str, int, float]], now: float) -> float | None:
        """0 when every window has room, seconds until one would, None if unknowable."""
        waits: list[float | None] = []
        for key, limit, window_s in windows:
            held = rate_slots.holding(self.store, key, window_s, now)
            if len(held) < limit:
                waits.append(0.0)
                continue
            needed = len(held) - limit + 1
            finished = [t for t in held if t is not None]
            waits.append(None if len(finished) < needed else finished[needed - 1] + window_s - now)
        if None in waits:
            return None
        return max(0.0, *[w for w in waits if w is not None])

    def acquire(self, token_key: Hashable | None, deadline: float) -> list[int]:
        windows = self._windows(token_key)
        while True:
            pause = max(self._paused_until.get(token_key, 0.0), self._paused_until.get(None, 0.0))
            now = self._wall()
            wait = max(0.0, pause - now)
            if wait == 0:
                room = self._wait_s(windows, now)
                if room == 0:
                    ids = rate_slots.take(self.store, windows, now)
                    if ids is not None:
                        self._count_take(now)
                        return ids
                    room = None  # another worker took the room first: look again soon
                wait = BUSY_POLL_S if room is None else room
            remaining = deadline - self._clock()
            if wait > remaining:
                raise rate_limited(wait)
            self._sleep(max(0.001, wait))

    def _count_take(self, now: float) -> None:
        with self._lock:
            self._taken += 1
            due = self._taken % PRUNE_EVERY == 0
        if due:
            rate_slots.prune(self.store, TOKEN_WINDOW_S + 1.0, now)

    def release(self, slot_ids: list[int]) -> None:
        rate_slots.finish(self.store, slot_ids, self._wall())

    @contextmanager
    def slot(self, token_key: Hashable | None, deadline: float) -> Iterator[None]:
        ids = self.acquire(token_key, deadline)
        try:
            yield
        finally:
            self.release(ids)

    def pause(self, token_key: Hashable | None, seconds: float) -> None:
        with self._lock:
            until = self._wall() + seconds
            self._paused_until[token_key] = max(self._paused_until.get(token_key, 0.0), until)
