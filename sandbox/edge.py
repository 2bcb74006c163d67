"""Patreon's edge (Cloudflare) in front of the API: the block for too many 4xx.

PATREON.md: about 2,000 4xx answers in 600 s get a client blocked at the edge ("never
retry a 4xx blindly"). The sandbox counts the 4xx it answers on Patreon's paths (API,
token endpoint, authorize page; never the control API) per client IP in a sliding
window; when the count reaches the threshold the IP is blocked for `block_s`: every
Patreon-path request then gets the edge's HTML 403 ("Sorry, you have been blocked"),
which does not count. How long Patreon blocks, and with which status, is not
documented: the sandbox's choice (403 HTML, as long as the window, no Retry-After) is
in docs/sandbox.md. Thresholds come from the settings (Patreon seconds, scaled by
SANDBOX_TIME_SCALE) and can be changed at run time through `/_sandbox/edge` (real
seconds), so a test can trip the block with a handful of requests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import falcon

from sandbox.counters import Counters
from sandbox.errors import EdgeError, is_control
from sandbox.settings import SandboxSettings

BLOCK_DETAIL = "This client made too many failed requests; access is blocked for a while."


class EdgeGuard:
    def __init__(
        self, settings: SandboxSettings, counters: Counters, clock: Callable[[], float] = time.monotonic
    ):
        self.counters = counters
        self.clock = clock
        self._lock = threading.Lock()
        self.threshold = settings.edge_block_4xx
        self.window_s = settings.real_seconds(settings.edge_block_window_s)
        self.block_s = settings.real_seconds(settings.edge_block_s)
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self.blocks = 0

    def configure(self, threshold: int | None, window_s: float | None, block_s: float | None) -> None:
        with self._lock:
            if threshold is not None:
                self.threshold = threshold
            if window_s is not None:
                self.window_s = window_s
            if block_s is not None:
                self.block_s = block_s

    def block(self, key: str, seconds: float | None = None) -> None:
        with self._lock:
            self._start_block(key, self.clock(), seconds)

    def clear(self) -> int:
        """Lift every block and forget every counted 4xx; returns blocks lifted."""
        with self._lock:
            lifted = sum(1 for until in self._blocked_until.values() if until > self.clock())
            self._failures.clear()
            self._blocked_until.clear()
            return lifted

    def blocked_for(self, key: str) -> float:
        """Seconds the key stays blocked (0 if not blocked)."""
        with self._lock:
            return max(0.0, self._blocked_until.get(key, 0.0) - self.clock())

    def record_4xx(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            events = self._failures.setdefault(key, deque())
            events.append(now)
            horizon = now - self.window_s
            while events and events[0] <= horizon:
                events.popleft()
            if len(events) >= self.threshold:
                self._start_block(key, now, None)

    def _start_block(self, key: str, now: float, seconds: float | None) -> None:
        self._blocked_until[key] = now + (self.block_s if seconds is None else seconds)
        self._failures.pop(key, None)
        self.blocks += 1
        self.counters.incr("edge_blocks")

    def describe(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            return {
                "threshold_4xx": self.threshold,
                "window_s": self.window_s,
                "block_s": self.block_s,
                "blocks_started": self.blocks,
                "counted_4xx": {key: len(events) for key, events in self._failures.items()},
                "blocked": {
                    key: round(until - now, 3) for key, until in self._blocked_until.items() if until > now
                },
            }


class EdgeMiddleware:
    """Refuses blocked clients before anything else; counts the 4xx it sees go out."""

    def __init__(self, guard: EdgeGuard):
        self.guard = guard

    @staticmethod
    def key(req: falcon.Request) -> str:
        return req.remote_addr or "unknown"

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_control(req.path):
            return
        if self.guard.blocked_for(self.key(req)) > 0:
            req.context.edge_blocked = True
            self.guard.counters.incr("edge_refused")
            raise EdgeError(403, BLOCK_DETAIL)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool
    ) -> None:
        if is_control(req.path) or getattr(req.context, "edge_blocked", False):
            return
        if 400 <= resp.status_code < 500:
            self.guard.record_4xx(self.key(req))
