"""Service state: ``/api/patreon/status`` (never waits on the worker) and
``/api/patreon/health`` (one ping through the worker)."""

from __future__ import annotations

import sqlite3
import time

import falcon

from settings.config import WebSettings
from store.database import Store
from store.timestamps import utc_now_iso
from watchdog_listener.report import read_state as read_watchdog_state
from watchdog_listener.report import read_states as read_watchdog_states
from web.entitlements import sync_status
from web.errors import SERVICE_UNAVAILABLE_MESSAGE, error_body
from wire import __version__, actions
from wire.client import WorkerClient, WorkerError, WorkerUnavailable
from wire.codes import PATREON_SERVICE_UNAVAILABLE

HEALTH_TIMEOUT_S = 1.0


class StatusResource:
    def __init__(self, config: WebSettings, worker: WorkerClient, store: Store | None = None):
        self._config = config
        self._worker = worker
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        state = self._worker.liveness.snapshot()
        watchdog = read_watchdog_state(self._config.data_dir)
        try:
            member_sync = sync_status(self._store)
        except sqlite3.Error:
            member_sync = {"error": "the store cannot be read right now"}
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
