"""Service state: ``/api/patreon/status`` (never waits on the worker or the store) and
``/api/patreon/health`` (one ping through the worker).

The member block comes from the store. SQLite reads never wait (WAL), so status reads
it in the request. PostgreSQL may be down, its pool exhausted: there a background
thread re-reads it at most every ``SNAPSHOT_EVERY_S`` and a request answers the last
snapshot (``as_of`` says when), so status answers in the same time either way."""

from __future__ import annotations

import threading
import time

import falcon

from settings.config import WebSettings
from store.database import Store, StoreError
from store.timestamps import utc_now_iso
from watchdog_listener.report import read_state as read_watchdog_state
from watchdog_listener.report import read_states as read_watchdog_states
from web.entitlements import sync_status
from web.errors import SERVICE_UNAVAILABLE_MESSAGE, error_body
from wire import __version__, actions
from wire.client import WorkerClient, WorkerError, WorkerUnavailable
from wire.codes import PATREON_SERVICE_UNAVAILABLE

HEALTH_TIMEOUT_S = 1.0
SNAPSHOT_EVERY_S = 1.0
_UNREADABLE = {"error": "the store cannot be read right now"}


def _member_block(store: Store | None) -> dict | None:
    try:
        return sync_status(store)
    except StoreError:
        return dict(_UNREADABLE)


class _Snapshot:
    """The member block, re-read off the request path (PostgreSQL stores)."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._value: dict | None = {"error": "the store has not been read yet"}
        self._read_at = -SNAPSHOT_EVERY_S
        self._reading = False

    def get(self) -> dict | None:
        with self._lock:
            if not self._reading and time.monotonic() - self._read_at >= SNAPSHOT_EVERY_S:
                self._reading = True
                threading.Thread(target=self._refresh, name="status-snapshot", daemon=True).start()
            return self._value

    def _refresh(self) -> None:
        value = _member_block(self._store)
        if isinstance(value, dict) and "error" not in value:
            value = {**value, "as_of": utc_now_iso()}
        with self._lock:
            self._value, self._read_at, self._reading = value, time.monotonic(), False


class StatusResource:
    def __init__(self, config: WebSettings, worker: WorkerClient, store: Store | None = None):
        self._config = config
        self._worker = worker
        self._store = store
        self._snapshot = _Snapshot(store) if store is not None and store.dialect != "sqlite" else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        state = self._worker.liveness.snapshot()
        watchdog = read_watchdog_state(self._config.data_dir)
        member_sync = self._snapshot.get() if self._snapshot is not None else _member_block(self._store)
        resp.media = {
            "success": True,
            "status": {
                "available": state["available"],
                "ready": state["ready"],
                "mode": self._config.mode,
                "worker": {
                    "pid": state["pid"],
                    "last_heartbeat_ms_ago": state["last_heartbeat_ms_ago"],
                    "restarts": state["restarts"],
                    "in_flight": state["in_flight"],
                    "reason": state["reason"],
                },
                # Each worker web spreads calls over (wire.pool): one entry per process.
                "workers": [
                    {
                        key: worker[key]
                        for key in ("name", "available", "pid", "last_heartbeat_ms_ago", "restarts", "in_flight", "reason")
                    }
                    for worker in state.get("workers") or []
                ],
                "version": __version__,
                # Patreon's edge block (null until the worker's first pong): while
                # "blocked", the worker makes no call and API reads get 503
                # PATREON_EDGE_BLOCKED with Retry-After.
                "patreon_edge": state["patreon_edge"],
                # The watchdog's last report (None until it runs): a worker it stopped
                # for crash-looping shows here with the reason.
                "watchdog": watchdog,
                # Every worker's report (several workers: one per process).
                "watchdogs": read_watchdog_states(self._config.data_dir, watchdog),
                # Member sync and reconciliation (docs/entitlements.md).
                "member_sync": member_sync,
            },
            "timestamp": utc_now_iso(),
        }


class HealthResource:
    def __init__(self, worker: WorkerClient):
        self._worker = worker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        workers = None
        try:
            if hasattr(self._worker, "ping_each"):
                # Several workers: each is pinged; healthy while one answers ("degraded"
                # when some do not), 503 when none does.
                workers = self._worker.ping_each(HEALTH_TIMEOUT_S, req.context.request_id)
                if not any(w["healthy"] for w in workers):
                    raise WorkerUnavailable("no worker answered")
            else:
                self._worker.send(
                    actions.Ping(), timeout_s=HEALTH_TIMEOUT_S, request_id=req.context.request_id, retry=False
                )
        except WorkerError as ex:
            message = SERVICE_UNAVAILABLE_MESSAGE if isinstance(ex, WorkerUnavailable) else str(ex)
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(int(ex.retry_after or 1)))
            resp.media = {
                **error_body(message, PATREON_SERVICE_UNAVAILABLE),
                "status": "unhealthy",
                **({"workers": workers} if workers is not None else {}),
                "timestamp": utc_now_iso(),
            }
            return
        degraded = workers is not None and not all(w["healthy"] for w in workers)
        resp.media = {
            "success": True,
            "status": "degraded" if degraded else "healthy",
            "pong": True,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            **({"workers": workers} if workers is not None else {}),
            "timestamp": utc_now_iso(),
        }


class SleepResource:
    """Test-only (``BRIDGE_TEST_ACTIONS=1``): a slow worker call, for failure tests."""

    def __init__(self, worker: WorkerClient):
        self._worker = worker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ms = req.get_param_as_int("ms", required=True, min_value=0, max_value=20_000)
        resp.media = {
            "success": True,
            **self._worker.send(actions.DebugSleep(ms=ms), request_id=req.context.request_id),
        }


class CrashResource:
    """Test-only (``BRIDGE_TEST_ACTIONS=1``): the worker answers, then exits with 70 as
    if it had crashed; for the watchdog's crash-loop tests."""

    def __init__(self, worker: WorkerClient):
        self._worker = worker

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "success": True,
            **self._worker.send(actions.DebugCrash(), request_id=req.context.request_id),
        }
