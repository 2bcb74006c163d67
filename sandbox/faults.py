"""Injected faults: latency, errors and 429s on chosen Patreon paths.

A fault matches a path (exactly, or as a prefix) and optionally a method, and applies
to its next `count` matching requests (`count: null` = until cleared). The first
matching fault wins. It may delay the request by `latency_ms` (before it is served:
a create is applied only after the delay), delay the answer by `answer_latency_ms`
(after it is served: Patreon has stored the create when the caller times out), and/or
answer it with
`status` instead of serving it: a 429 carries `Retry-After` and Patreon's
`RequestThrottled` body; other statuses a JSON:API error body (or `body` if given),
or with `html: true` an HTML page as Patreon's edge (Cloudflare) sends for 5xx and
for some 401s. `Retry-After` goes on a 429 or 503 (1 s unless `retry_after` says)
and on any other status when `retry_after` is given.
Faults never apply to the control API, and their 429s count as `injected`, never as
`throttled`, so tests can tell them from the real rate limiter's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import falcon

from sandbox.counters import Counters
from sandbox.errors import ApiError, EdgeError, is_control, throttled


@dataclass
class Fault:
    id: str
    path: str
    match: str = "prefix"  # "prefix" | "exact"
    method: str | None = None
    latency_ms: int = 0
    answer_latency_ms: int = 0
    status: int | None = None
    count: int | None = 1  # None: until cleared
    retry_after: int | None = None  # None: 1 s on a 429/503, no header otherwise
    body: Any = None
    html: bool = False
    served: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return path == self.path if self.match == "exact" else path.startswith(self.path)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "match": self.match,
            "method": self.method,
            "latency_ms": self.latency_ms,
            "answer_latency_ms": self.answer_latency_ms,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "body": self.body,
            "html": self.html,
            "served": self.served,
        }


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, **spec: Any) -> Fault:
        with self._lock:
            fault = Fault(id=f"f{self._next_id}", **spec)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> int:
        with self._lock:
            removed = len(self._faults)
            self._faults = []
            return removed

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.served += 1
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None


class FaultMiddleware:
    """Applies faults before anything else looks at a Patreon-path request."""

    def __init__(
        self,
        injector: FaultInjector,
        counters: Counters,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.injector = injector
        self.counters = counters
        self.sleep = sleep

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_control(req.path):
            return
        fault = self.injector.take(req.method, req.path)
        if fault is None:
            return
        req.context.fault = fault
        if fault.latency_ms:
            self.counters.incr("delayed")
            self.sleep(fault.latency_ms / 1000)
        if fault.status is None:
            return
        self.counters.incr("injected")
        retry_after = fault.retry_after
        if retry_after is None and fault.status in (429, 503):
            retry_after = 1
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if fault.html:
            raise EdgeError(fault.status, f"Injected by the sandbox fault {fault.id}.", headers)
        if fault.status == 429:
            error = throttled(retry_after)
            if fault.body is not None:
                error.body = fault.body
            raise error
        raise ApiError(
            fault.status,
            f"Injected by the sandbox fault {fault.id}.",
            headers=headers,
            body=fault.body,
        )

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded) -> None:
        fault = getattr(req.context, "fault", None)
        if fault is not None and fault.answer_latency_ms:
            self.counters.incr("delayed")
            self.sleep(fault.answer_latency_ms / 1000)
