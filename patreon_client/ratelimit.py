"""The outgoing rate limiter: every call to Patreon takes a slot here first.

Patreon allows 100 requests per 2 seconds per client and 100 per minute per token
(keyed by client and user: refreshing a token does not reset it). We stay under
both with sliding windows at the configured, lower limits
(``PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS``, default 95, and
``..._PER_MINUTE``, default 90). Token-endpoint calls count against the client
window only.

A slot is held from the moment a request is sent until its response has arrived,
and only then starts to age out of the window. Patreon counts a request when it
*arrives*, which is somewhere between those two moments, so a window measured from
our response times always contains every request Patreon still counts: no latency
skew can push Patreon over its limit while we think we are under ours.

``acquire`` waits for a slot when one frees up before the call's deadline; when it
cannot, it fails at once with ``RateLimited`` and the number of
seconds after which a retry would fit. A 429 from Patreon itself ``pause``s the
token's window until its ``Retry-After``. Clock and sleep are injected for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from patreon_client.errors import RateLimited

CLIENT_WINDOW_S = 2.0
TOKEN_WINDOW_S = 60.0
# While every slot of a window is held by a request still in flight, nobody can say
# when one frees up: look again after this long.
BUSY_POLL_S = 0.05
# Forget idle per-token windows once there are this many (one per logged-in user).
MAX_IDLE_WINDOWS = 1000


_IN_FLIGHT = math.inf


class SlidingWindow:
    """At most ``limit`` slots within any ``window_s``; not thread-safe by itself.

    Each slot is a timestamp: ``inf`` while its request is in flight, then the time
    its response arrived.
    """

    def __init__(self, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self.slots: list[float] = []
        self.paused_until = 0.0

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        if self.slots and min(self.slots) <= horizon:
            self.slots = [t for t in self.slots if t > horizon]

    def wait_s(self, now: float) -> float | None:
        """0 when a slot is free now, seconds until one is, or None if unknowable."""
        self._prune(now)
        pause = max(0.0, self.paused_until - now)
        if len(self.slots) < self.limit:
            return pause
        finished = sorted(t for t in self.slots if t != _IN_FLIGHT)
        # Slots free up oldest first; we need (held - limit + 1) of them gone.
        needed = len(self.slots) - self.limit + 1
        if len(finished) < needed:
            return None
        return max(pause, finished[needed - 1] + self.window_s - now)

    def take(self) -> int:
        self.slots.append(_IN_FLIGHT)
        return len(self.slots) - 1

    def release(self, now: float) -> None:
        """Mark one in-flight slot answered at ``now``."""
        for i, t in enumerate(self.slots):
            if t == _IN_FLIGHT:
                self.slots[i] = now
                return

    @property
    def idle(self) -> bool:
        return not self.slots


class RateLimiter:
    def __init__(
        self,
        per_2_seconds: int,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.per_2_seconds = per_2_seconds
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._client = SlidingWindow(per_2_seconds, CLIENT_WINDOW_S)
        self._tokens: dict[Hashable, SlidingWindow] = {}

    def _token_window(self, key: Hashable) -> SlidingWindow:
        window = self._tokens.get(key)
        if window is None:
            if len(self._tokens) >= MAX_IDLE_WINDOWS:
                now = self._clock()
                for stale in [k for k, w in self._tokens.items() if w.wait_s(now) == 0 and w.idle]:
                    del self._tokens[stale]
            window = self._tokens[key] = SlidingWindow(self.per_minute, TOKEN_WINDOW_S)
        return window

    def acquire(self, token_key: Hashable | None, deadline: float) -> None:
        """Take a slot in the client window (and the token's, if any), waiting if that fits.

        Every ``acquire`` must be followed by exactly one ``release(token_key)``.
        """
        while True:
            with self._lock:
                now = self._clock()
                windows = [self._client]
                if token_key is not None:
                    windows.append(self._token_window(token_key))
                waits = [w.wait_s(now) for w in windows]
                if all(wait == 0 for wait in waits):
                    for window in windows:
                        window.take()
                    return
            known = [wait for wait in waits if wait is not None]
            remaining = deadline - now
            if known and max(known) > remaining:
                raise rate_limited(max(known))
            if remaining <= 0:
                raise rate_limited(BUSY_POLL_S)
            if None in waits:
                known.append(BUSY_POLL_S)
            self._sleep(min(max(known), remaining))

    def release(self, token_key: Hashable | None) -> None:
        with self._lock:
            now = self._clock()
            self._client.release(now)
            if token_key is not None and token_key in self._tokens:
                self._tokens[token_key].release(now)

    @contextmanager
    def slot(self, token_key: Hashable | None, deadline: float) -> Iterator[None]:
        """``with limiter.slot(key, deadline): send()``: held until the response is in."""
        self.acquire(token_key, deadline)
        try:
            yield
        finally:
            self.release(token_key)

    def pause(self, token_key: Hashable | None, seconds: float) -> None:
        """Patreon said 429: hold back this token (or the whole client) for ``seconds``."""
        with self._lock:
            window = self._client if token_key is None else self._token_window(token_key)
            window.paused_until = max(window.paused_until, self._clock() + seconds)


def rate_limited(wait_s: float) -> RateLimited:
    seconds = max(1, math.ceil(wait_s))
    return RateLimited(f"Patreon's rate limit is reached; retry in {seconds} s", retry_after=seconds)
