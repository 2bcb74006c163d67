"""What the sandbox has served, for `GET /_sandbox/state` and the tests.

- `requests`: requests to Patreon's paths (OAuth pages, token endpoint, API v2),
  whatever their outcome, injected faults included;
- `api_requests`: the subset under `/api/oauth2/v2/`;
- `throttled`: 429s served by the rate limiter (never by a fault);
- `injected`: error responses served by a fault; `delayed`: requests a fault slowed;
- `tokens_issued` and `token_grants` per grant type (successful grants only);
- `deliveries_attempted|succeeded|failed`: webhook delivery attempts;
  `deliveries_dropped`: events a `drop` delivery fault lost;
- `edge_blocks`: edge blocks started; `edge_refused`: requests the edge refused.
"""

from __future__ import annotations

import threading
from typing import Any

NAMES = (
    "requests",
    "api_requests",
    "throttled",
    "injected",
    "delayed",
    "tokens_issued",
    "deliveries_attempted",
    "deliveries_succeeded",
    "deliveries_failed",
    "deliveries_dropped",
    "edge_blocks",
    "edge_refused",
)
GRANT_TYPES = ("authorization_code", "refresh_token")


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(NAMES, 0)
        self._grants = dict.fromkeys(GRANT_TYPES, 0)

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def grant(self, grant_type: str) -> None:
        with self._lock:
            self._values["tokens_issued"] += 1
            self._grants[grant_type] = self._grants.get(grant_type, 0) + 1

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values: dict[str, Any] = dict(self._values)
            values["token_grants"] = dict(self._grants)
        return values

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(NAMES, 0)
            self._grants = dict.fromkeys(GRANT_TYPES, 0)
