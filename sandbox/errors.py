"""Every error the sandbox can answer with, and the one place that renders them.

    Exception
     +-- ApiError          JSON:API `{"errors": [...]}` (API v2, rate limits, faults)
     +-- OAuthError        `{"error": ..., "error_description": ...}` (token endpoint)
     +-- AuthorizePageError  an HTML page (authorize: bad client or redirect URI)
     +-- ControlError      `{"error": ..., "code": ...}` (the /_sandbox control API)
     +-- EdgeError         an HTML page from Patreon's edge (Cloudflare) in front of
                           the API: injected HTML 5xx/401, the 4xx edge block

`app.create_app` registers `ErrorRenderer` for all of them, for falcon's own
HTTPErrors (unknown route, wrong method) and for anything unexpected, so every failure
still gets a body shaped like the surface it happened on, and no traceback leaves the
process.
"""

from __future__ import annotations

import html
import logging
import math
import traceback
import uuid
from typing import Any

import falcon

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox"
TOKEN_PATH = "/api/oauth2/token"
AUTHORIZE_PATH = "/oauth2/authorize"

# code, code_name, title. Patreon documents `code: null` for RequestThrottled and
# sends `code: 1` with Unauthorized; the other numbers are the sandbox's own.
_KINDS: dict[int, tuple[int | None, str, str]] = {
    400: (3, "ParameterInvalid", "Invalid parameter"),
    401: (1, "Unauthorized", "Unauthorized"),
    403: (2, "Forbidden", "Forbidden"),
    404: (4, "NotFound", "Not Found"),
    405: (5, "MethodNotAllowed", "Method Not Allowed"),
    406: (6, "NotAcceptable", "Not Acceptable"),
    410: (7, "Gone", "Gone"),
    413: (8, "RequestTooLarge", "Request Entity Too Large"),
    429: (None, "RequestThrottled", "You have made too many attempts. Please try again later."),
    500: (9, "InternalServerError", "Internal Server Error"),
    502: (10, "BadGateway", "Bad Gateway"),
    503: (11, "ServiceUnavailable", "Service Unavailable"),
    504: (12, "GatewayTimeout", "Gateway Timeout"),
}

UNAUTHORIZED_DETAIL = (
    "The server could not verify that you are authorized to access the URL requested. "
    "You either supplied the wrong credentials (e.g. a bad password), or your browser "
    "doesn't understand how to supply the credentials required."
)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1: what a client may sleep before trying again."""
    return str(max(1, math.ceil(seconds)))


class ApiError(Exception):
    """A Patreon-shaped JSON:API error."""

    def __init__(
        self,
        status: int,
        detail: str,
        code_name: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        body: Any = None,
    ):
        super().__init__(detail)
        code, default_name, title = _KINDS.get(status, (None, "Error", f"HTTP {status}"))
        self.status = status
        self.detail = detail
        self.code = code
        self.code_name = code_name or default_name
        self.title = title
        self.headers = headers or {}
        self.extra = extra or {}
        self.body = body  # a fault may dictate the whole body

    def document(self) -> Any:
        if self.body is not None:
            return self.body
        error = {
            "code": self.code,
            "code_name": self.code_name,
            "detail": self.detail,
            "id": str(uuid.uuid4()),
            "status": str(self.status),
            "title": self.title,
        }
        error.update(self.extra)
        return {"errors": [error]}


def unauthorized() -> ApiError:
    return ApiError(401, UNAUTHORIZED_DETAIL)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, detail)


def not_found(detail: str = "The requested resource could not be found.") -> ApiError:
    return ApiError(404, detail)


def parameter_invalid(detail: str) -> ApiError:
    return ApiError(400, detail)


def missing_scope(scope: str) -> ApiError:
    return forbidden(f"This request requires the '{scope}' scope, which this token lacks.")


def throttled(retry_after_s: float, detail: str | None = None) -> ApiError:
    seconds = int(retry_after_header(retry_after_s))
    return ApiError(
        429,
        detail or "You have made too many attempts. Please try again later.",
        headers={"Retry-After": str(seconds)},
        extra={"retry_after_seconds": seconds},
    )


class OAuthError(Exception):
    """An OAuth2 token-endpoint error: `{"error": ..., "error_description": ...}`."""

    def __init__(self, status: int, error: str, description: str | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def document(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class AuthorizePageError(Exception):
    """Shown by Patreon itself instead of redirecting (bad client id or redirect URI)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ControlError(Exception):
    """A control-API error: `{"error": message, "code": code}`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# Patreon sits behind Cloudflare: its 5xx and edge answers can be HTML, not JSON
# (patreon-php refuses to parse 5xx bodies for that reason; an HTML 401 has been
# reported). The page is Cloudflare-like; clients must not expect to parse it.
_EDGE_TITLES = {
    401: "401 Unauthorized",
    403: "Sorry, you have been blocked",
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def edge_page(status: int, detail: str) -> str:
    title = _EDGE_TITLES.get(status, f"{status} Error")
    return (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{html.escape(title)}</title></head>\n<body>\n<center><h1>{html.escape(title)}</h1></center>\n"
        f"<p>{html.escape(detail)}</p>\n<hr><center>cloudflare</center>\n</body></html>\n"
    )


class EdgeError(Exception):
    """An HTML answer from the edge in front of Patreon, not from Patreon's API."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


class ErrorRenderer:
    """The falcon error handlers, registered once by `app.create_app`."""

    def register(self, app: falcon.App) -> None:
        # Most generic first: falcon picks the most specific registered class.
        app.add_error_handler(Exception, self.unexpected)
        app.add_error_handler(falcon.HTTPError, self.http_error)
        app.add_error_handler(ApiError, self.api_error)
        app.add_error_handler(OAuthError, self.oauth_error)
        app.add_error_handler(AuthorizePageError, self.authorize_page)
        app.add_error_handler(ControlError, self.control_error)
        app.add_error_handler(EdgeError, self.edge_error)

    @staticmethod
    def api_error(req, resp, ex: ApiError, params) -> None:
        resp.status = ex.status
        resp.media = ex.document()
        for name, value in ex.headers.items():
            resp.set_header(name, value)

    @staticmethod
    def oauth_error(req, resp, ex: OAuthError, params) -> None:
        resp.status = ex.status
        resp.media = ex.document()
        resp.set_header("Cache-Control", "no-store")

    @staticmethod
    def authorize_page(req, resp, ex: AuthorizePageError, params) -> None:
        resp.status = 400
        resp.content_type = falcon.MEDIA_HTML
        resp.text = (
            "<!doctype html><html><head><title>Patreon sandbox: error</title></head>"
            "<body><h1>Something went wrong</h1>"
            f"<p>{html.escape(ex.message)}</p>"
            "<p>This page is shown by the Patreon sandbox instead of redirecting you.</p>"
            "</body></html>"
        )

    @staticmethod
    def edge_error(req, resp, ex: EdgeError, params) -> None:
        resp.status = ex.status
        resp.content_type = "text/html; charset=UTF-8"
        resp.text = edge_page(ex.status, ex.detail)
        resp.set_header("Server", "cloudflare")
        for name, value in ex.headers.items():
            resp.set_header(name, value)

    @staticmethod
    def control_error(req, resp, ex: ControlError, params) -> None:
        resp.status = ex.status
        resp.media = {"error": ex.message, "code": ex.code}

    def http_error(self, req, resp, ex: falcon.HTTPError, params) -> None:
        status = ex.status_code
        for name, value in (ex.headers or {}).items():
            resp.set_header(name, value)
        detail = ex.description or ex.title or "error"
        if is_control(req.path):
            code = (ex.title or "error").lower().replace(" ", "_")
            self.control_error(req, resp, ControlError(status, code, detail), params)
        elif req.path == TOKEN_PATH and status < 500:
            self.oauth_error(req, resp, OAuthError(status, "invalid_request", detail), params)
        else:
            self.api_error(req, resp, ApiError(status, detail), params)

    def unexpected(self, req, resp, ex: Exception, params) -> None:
        if isinstance(ex, falcon.HTTPError):  # pragma: no cover - routed above
            self.http_error(req, resp, ex, params)
            return
        # The message is left out on purpose: it could carry a token or an email.
        frames = "".join(traceback.format_tb(ex.__traceback__))
        log.error("unhandled %s on %s %s\n%s", type(ex).__name__, req.method, req.path, frames)
        if is_control(req.path):
            self.control_error(req, resp, ControlError(500, "internal", "internal sandbox error"), params)
        else:
            self.api_error(req, resp, ApiError(500, "An unexpected error occurred."), params)
