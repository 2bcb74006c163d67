"""A per-client rate limit for what anonymous callers may start (login starts).

A token bucket per client address (``req.remote_addr``: the peer, or the client that
``TRUSTED_PROXY`` names in ``X-Forwarded-For``): ``burst`` at once, then
``per_minute`` a minute. Kept in this process's memory: a limit per web process is
enough to bound what one client writes to the store (issue 16, finding 7). At most
``MAX_CLIENTS`` buckets are kept; the least recently seen goes first, and a client
that comes back starts full, which only ever lets a client through, never blocks one.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

MAX_CLIENTS = 50_000


class ClientRateLimiter:
    def __init__(self, per_minute: int, burst: int, *, clock: Callable[[], float] = time.monotonic):
        self._rate_s = per_minute / 60.0
        self._burst = float(max(1, burst))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def wait_s(self, client: str) -> float:
        """0 when ``client`` may go now (and counts it); else the seconds until it may."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate_s)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self._rate_s
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait
