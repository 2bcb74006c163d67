"""Request ids and the access log.

Every HTTP request gets an id: on the response, in every log line about it, and sent
along to the worker so its log lines about the request carry it too. One access line
per request, without the query string (it can carry OAuth codes and state).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon

from settings.logs import request_id_var

log = logging.getLogger("web.access")

HEADER = "X-Request-ID"
# Accept a proxy's id only when it is short and plain, so a client cannot inject
# text into our logs.
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")  # fullmatch: "$" takes a trailing newline


class RequestIdMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        incoming = req.get_header(HEADER)
        request_id = incoming if incoming and _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex[:16]
        req.context.request_id = request_id
        req.context.started_at = time.monotonic()
        req.context.request_id_token = request_id_var.set(request_id)
        resp.set_header(HEADER, request_id)

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        started = getattr(req.context, "started_at", None)
        if started is not None:
            # The path only: query strings can carry OAuth codes and state.
            log.info(
                "%s %s %s %.1fms", req.method, req.path, resp.status[:3], (time.monotonic() - started) * 1000
            )
        token = getattr(req.context, "request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
