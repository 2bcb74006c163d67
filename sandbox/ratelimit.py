"""Patreon's documented rate limits, as sliding windows over an injected clock.

- per client: `per_2_seconds` requests in any 2 s (API and token requests);
- per token: `per_minute` API requests in any 60 s. Patreon keys this limit by
  client and user ("refreshing a token will not reset the rate limits"), so the
  sandbox does too: a refreshed token inherits its predecessor's window.

Only admitted requests are recorded: a client that backs off recovers when the oldest
admitted request leaves the window, and `retry_after` says exactly when that is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

CLIENT_WINDOW_S = 2.0
TOKEN_WINDOW_S = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    limit: str | None = None  # "client" or "token" when refused


class SlidingWindow:
    """At most `limit` events in any `window_s` seconds (not thread-safe by itself)."""

    def __init__(self, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self.events: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        events = self.events
        while events and events[0] <= horizon:
            events.popleft()

    def wait_time(self, now: float) -> float:
        """0 if an event may happen now, else seconds until one may."""
        self._prune(now)
        if len(self.events) < self.limit:
            return 0.0
        return self.events[len(self.events) - self.limit] + self.window_s - now

    def record(self, now: float) -> None:
        self.events.append(now)


class RateLimiter:
    def __init__(
        self,
        per_2_seconds: int,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.per_2_seconds = per_2_seconds
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: dict[Hashable, SlidingWindow] = {}
        self._tokens: dict[Hashable, SlidingWindow] = {}

    def admit(self, client_key: Hashable, token_key: Hashable | None = None) -> Decision:
        """Record one request if both windows allow it, else say how long to wait."""
        with self._lock:
            now = self.clock()
            client = self._clients.get(client_key)
            if client is None:
                client = self._clients[client_key] = SlidingWindow(self.per_2_seconds, CLIENT_WINDOW_S)
            token = None
            if token_key is not None:
                token = self._tokens.get(token_key)
                if token is None:
                    token = self._tokens[token_key] = SlidingWindow(self.per_minute, TOKEN_WINDOW_S)
            client_wait = client.wait_time(now)
            token_wait = token.wait_time(now) if token is not None else 0.0
            if client_wait > 0 or token_wait > 0:
                limit = "token" if token_wait >= client_wait else "client"
                return Decision(False, max(client_wait, token_wait), limit)
            client.record(now)
            if token is not None:
                token.record(now)
            return Decision(True)
