"""Every stable error ``code`` the worker can answer, defined once with its HTTP
status and meaning (web's own codes are in ``web/codes.py``; docs/api.md lists both,
and ``tests/unit/test_error_codes.py`` keeps the lists equal).

A code is a plain string constant named as its value, so a reply's ``error.code`` compares with it
directly. ``ActionError`` takes its status from here when none is given.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Code:
    name: str
    status: int
    meaning: str


CODES: dict[str, Code] = {}


def define(table: dict[str, Code], name: str, status: int, meaning: str) -> str:
    if name in table:
        raise ValueError(f"code {name!r} is defined twice")
    table[name] = Code(name, status, meaning)
    return name


def _code(name: str, status: int, meaning: str) -> str:
    return define(CODES, name, status, meaning)


def status_of(code: str, default: int = 400) -> int:
    known = CODES.get(code)
    return default if known is None else known.status


# -- the protocol itself -----------------------------------------------------------------
BAD_FRAME = _code("BAD_FRAME", 400, "a frame that is not a valid envelope (or a reply web cannot read: 502)")
UNSUPPORTED_VERSION = _code("UNSUPPORTED_VERSION", 400, "a frame of another protocol version")
UNKNOWN_ACTION = _code("UNKNOWN_ACTION", 501, "the worker serves no such action")
INVALID_DATA = _code("INVALID_DATA", 400, "an action's data is not what its payload declares")
WORKER_INTERNAL_ERROR = _code(
    "WORKER_INTERNAL_ERROR", 500, "a handler failed; the worker log has the traceback"
)
DEADLINE_EXCEEDED = _code("DEADLINE_EXCEEDED", 504, "the request waited its whole deadline before it started")
WORKER_SHUTTING_DOWN = _code("WORKER_SHUTTING_DOWN", 503, "the worker is stopping; retry (Retry-After)")

# -- web's client, when the worker does not answer -------------------------------------------
PATREON_SERVICE_UNAVAILABLE = _code(
    "PATREON_SERVICE_UNAVAILABLE", 503, "the worker is down or went down while web waited; retry"
)
PATREON_SERVICE_TIMEOUT = _code(
    "PATREON_SERVICE_TIMEOUT", 504, "the worker did not answer within the action's timeout"
)

# -- Patreon (translated from patreon_client.errors by worker/errors.py) ----------------------
PATREON_UPSTREAM_ERROR = _code(
    "PATREON_UPSTREAM_ERROR", 502, "Patreon failed: 5xx, timeout, unreachable, or an answer without its JSON"
)
PATREON_EDGE_BLOCKED = _code(
    "PATREON_EDGE_BLOCKED",
    503,
    "Patreon's edge blocked this client after too many failed requests; no calls until Retry-After",
)
RATE_LIMITED = _code(
    "RATE_LIMITED", 429, "Patreon's rate limit (ours or theirs) is reached; retry after retry_after"
)
PATREON_AUTH_FAILED = _code("PATREON_AUTH_FAILED", 401, "Patreon refused the authorization code")
PATREON_FORBIDDEN = _code(
    "PATREON_FORBIDDEN", 403, "this login may not see that resource (scope or ownership)"
)
NOT_FOUND = _code(
    "NOT_FOUND", 404, "Patreon has no such resource, or it is not visible to this login (web: no such route)"
)
PATREON_BAD_REQUEST = _code("PATREON_BAD_REQUEST", 400, "Patreon refused the request's parameters")

# -- tokens -----------------------------------------------------------------------------------
PATREON_AUTH_REQUIRED = _code("PATREON_AUTH_REQUIRED", 401, "not logged in with Patreon (or no server key)")
PATREON_REAUTH_REQUIRED = _code(
    "PATREON_REAUTH_REQUIRED", 401, "Patreon no longer accepts this login; log in again"
)
PATREON_TOKEN_REFUSED = _code(
    "PATREON_TOKEN_REFUSED", 502, "Patreon refused a token it had just refreshed; the login is kept; retry"
)
MISSING_REFRESH_TOKEN = _code("MISSING_REFRESH_TOKEN", 400, "no Patreon tokens to refresh for this principal")
CREATOR_TOKEN_NOT_CONFIGURED = _code(
    "CREATOR_TOKEN_NOT_CONFIGURED",
    503,
    "no creator token: set PATREON_CREATOR_ACCESS_TOKEN/..._REFRESH_TOKEN",
)

# -- action inputs (checked by web first, by the worker again) ----------------------------------
MISSING_AUTH_CODE = _code("MISSING_AUTH_CODE", 400, "the callback has no code from Patreon")
INVALID_PAUSED = _code("INVALID_PAUSED", 400, "paused must be true or false")
NOTHING_TO_UPDATE = _code("NOTHING_TO_UPDATE", 400, "a webhook update names none of paused, triggers, uri")
CAMPAIGN_REQUIRED = _code(
    "CAMPAIGN_REQUIRED", 400, "the creator has several campaigns: name one in campaign_id"
)
MEMBER_STATE_NOT_FOUND = _code("MEMBER_STATE_NOT_FOUND", 404, "the member table has no member with this id")

# -- Patreon query parameters and ids (wire/patreon_schema.py) ---------------------------------
INVALID_PARAMETER = _code("INVALID_PARAMETER", 400, "a query parameter with a bad value (or given twice)")
UNKNOWN_PARAMETER = _code("UNKNOWN_PARAMETER", 400, "a query parameter this endpoint does not take")
INVALID_INCLUDE = _code("INVALID_INCLUDE", 400, "include names an unknown relationship")
INVALID_FIELDS = _code("INVALID_FIELDS", 400, "fields[<type>] names an unknown type or attribute")
INVALID_SORT = _code("INVALID_SORT", 400, "sort names an unknown attribute")
INVALID_PAGE_COUNT = _code("INVALID_PAGE_COUNT", 400, "page[count] is not 1..1000 (500 with pledge_history)")
INVALID_CURSOR = _code("INVALID_CURSOR", 400, "page[cursor] is not a cursor Patreon gave")
INVALID_TRIGGERS = _code("INVALID_TRIGGERS", 400, "triggers is not a list of known webhook triggers")
INVALID_URI = _code("INVALID_URI", 400, "not an absolute http(s) URI")
INVALID_CAMPAIGN_ID = _code("INVALID_CAMPAIGN_ID", 400, "a campaign id is digits")
INVALID_MEMBER_ID = _code("INVALID_MEMBER_ID", 400, "a member id is a UUID")
INVALID_POST_ID = _code("INVALID_POST_ID", 400, "a post id is digits")
INVALID_WEBHOOK_ID = _code("INVALID_WEBHOOK_ID", 400, "a webhook id is digits")
