"""Patreon's edge block: after too many 4xx, Patreon's edge (Cloudflare) refuses the
client with an HTML 403 for a while (PATREON.md: about 2,000 4xx in 600 s; how long
the block lasts is not documented, and the page carries no ``Retry-After``).

``EdgeBlock`` is the worker's memory of it, one per process (the block is per client,
not per token): when ``PatreonHttp`` sees the edge's page it starts a pause (Patreon's
``Retry-After`` if the page has one, else ``PATREON_EDGE_BLOCK_PAUSE_S``), and until
the pause ends no request leaves the process: every call fails at once with
``EdgeBlocked``. Calling into a block would only lengthen it. The first call after
the pause is the probe: a new edge page starts a new pause. ``describe()`` feeds the
worker's ping, so ``/api/patreon/status`` shows the block without asking the worker.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from typing import Any


class EdgeBlock:
    def __init__(
        self,
        pause_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.pause_s = pause_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._until = 0.0  # on self._clock
        self._blocks = 0
        self._refused = 0

    def seconds_left(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def refuse(self) -> float:
        """Seconds left if a call must not be sent now (counted), else 0."""
        with self._lock:
            left = max(0.0, self._until - self._clock())
            if left > 0:
                self._refused += 1
            return left

    def start(self, retry_after_s: float | None = None) -> float:
        """The edge refused us: pause for Patreon's ``Retry-After`` or our own pause."""
        seconds = self.pause_s if retry_after_s is None or retry_after_s <= 0 else retry_after_s
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)
            self._blocks += 1
            return self._until - self._clock()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            left = max(0.0, self._until - self._clock())
            until = None
            if left > 0:
                moment = datetime.datetime.fromtimestamp(self._wall() + left, datetime.UTC)
                until = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return {
                "blocked": left > 0,
                "blocked_until": until,
                "seconds_left": round(left, 3),
                "blocks": self._blocks,
                "calls_held_back": self._refused,
            }
