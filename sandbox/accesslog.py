"""The access log and request counting: method, path (never the query string, which
may carry codes or tokens), status and duration, one line per request, with the id
also returned in `X-Patreon-UUID`."""

from __future__ import annotations

import logging
import time
import uuid

import falcon

from sandbox.counters import Counters
from sandbox.errors import is_control

log = logging.getLogger(__name__)

API_V2_PREFIX = "/api/oauth2/v2/"


class AccessLog:
    """First middleware in, last out: sees every request and its final status."""

    def __init__(self, counters: Counters):
        self.counters = counters

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        supplied = req.get_header("X-Request-Id") or ""
        req.context.request_id = supplied[:64] if supplied.isprintable() and supplied else None
        req.context.request_id = req.context.request_id or uuid.uuid4().hex[:16]
        if not is_control(req.path):
            self.counters.incr("requests")
            if req.path.startswith(API_V2_PREFIX):
                self.counters.incr("api_requests")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        elapsed_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        request_id = getattr(req.context, "request_id", "-")
        resp.set_header("X-Patreon-UUID", request_id)
        log.info("%s %s %s %.1fms rid=%s", req.method, req.path, resp.status_code, elapsed_ms, request_id)
