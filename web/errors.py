"""Every error the web app answers, rendered one way: ``{"success": false, "error", "code"}``.

Domain errors are translated here, in one place:

* ``ApiError`` (a ``falcon.HTTPError`` carrying a stable ``code``) for bad input and
  the like, raised by resources;
* ``WorkerError`` from the worker client: worker down -> 503 with ``Retry-After``,
  timeout -> 504, an error reply -> the status and code the worker chose;
* any other ``falcon.HTTPError`` (unknown route, wrong method, body too large) gets a
  code derived from its status;
* ``StoreUnavailable`` (the store locked past its busy timeout, its disk
  failing) -> 503 ``STORE_UNAVAILABLE`` with ``Retry-After``: nothing was written;
* anything unexpected -> 500 ``INTERNAL_ERROR``, logged with its traceback.
"""

from __future__ import annotations

import logging

import falcon

from live_events.errors import (  # noqa: F401 (re-exported: web's modules raise ApiError from here)
    MAX_MESSAGE_CHARS,
    ApiError,
    error_body,
    error_bytes,
)
from store.database import StoreError, StoreUnavailable
from web.codes import (
    BAD_REQUEST,
    CONFLICT,
    FORBIDDEN,
    INTERNAL_ERROR,
    LENGTH_REQUIRED,
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    STORE_UNAVAILABLE,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
)
from wire.client import WorkerError, WorkerUnavailable
from wire.codes import NOT_FOUND, PATREON_SERVICE_TIMEOUT, PATREON_UPSTREAM_ERROR, RATE_LIMITED

log = logging.getLogger(__name__)

SERVICE_UNAVAILABLE_MESSAGE = "Patreon service is not available"
STORE_RETRY_AFTER_S = 5

_CODES_BY_STATUS = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    409: CONFLICT,
    411: LENGTH_REQUIRED,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    429: RATE_LIMITED,
    500: INTERNAL_ERROR,
    502: PATREON_UPSTREAM_ERROR,
    503: SERVICE_UNAVAILABLE,
    504: PATREON_SERVICE_TIMEOUT,
}


def code_for_status(status: int) -> str:
    """The code of an error that has no code of its own."""
    return _CODES_BY_STATUS.get(status, f"HTTP_{status}")


def worker_error_to_api(ex: WorkerError) -> ApiError:
    message = SERVICE_UNAVAILABLE_MESSAGE if isinstance(ex, WorkerUnavailable) else str(ex)
    return ApiError(ex.status, ex.code, message, retry_after=ex.retry_after)


def store_unavailable(ex: StoreError) -> ApiError:
    """The answer when the store cannot be used: the transaction rolled back, retry later."""
    log.error("the store cannot be used: %s", ex)
    return ApiError(
        503, STORE_UNAVAILABLE, "The store is not available right now; retry", retry_after=STORE_RETRY_AFTER_S
    )


def _handle_store_error(req, resp, ex: StoreUnavailable, params) -> None:
    raise store_unavailable(ex) from ex


def _serialize(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
    status = ex.status_code
    code = ex.code if isinstance(ex.code, str) else code_for_status(status)
    message = ex.description or ex.title
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(message, code, **getattr(ex, "extra", {}))


def _handle_worker_error(req, resp, ex: WorkerError, params) -> None:
    raise worker_error_to_api(ex)


def _handle_unexpected(req, resp, ex: Exception, params) -> None:
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise ApiError(500, INTERNAL_ERROR, "Internal server error")


def install(app: falcon.App) -> None:
    # Falcon looks handlers up by the most specific class, so order does not matter.
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(WorkerError, _handle_worker_error)
    app.add_error_handler(StoreUnavailable, _handle_store_error)
    app.set_error_serializer(_serialize)
