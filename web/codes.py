"""Every stable error ``code`` web answers by itself, defined once with its HTTP
status and meaning. Codes that come from the worker are in ``wire/codes.py``, codes
the live program answers too in ``live_events/codes.py``; docs/api.md lists them all (``tests/unit/test_error_codes.py``)."""

from __future__ import annotations

# Codes web answers that the live program answers too: defined once, in the contract
# package, and re-exported here so web's modules take every code from one place.
from live_events.codes import (  # noqa: F401
    BAD_REQUEST,
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_API_KEY,
    INVALID_LAST_EVENT_ID,
    INVALID_SESSION,
    INVALID_SINCE,
    INVALID_TRANSPORT,
    JSONP_NOT_SUPPORTED,
    LIVE_TOKENS_NOT_CONFIGURED,
    ORIGIN_NOT_ALLOWED,
    SOCKETIO_NOT_CONNECTED,
    UNAUTHORIZED,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from wire.codes import Code, define

CODES: dict[str, Code] = {}


def _code(name: str, status: int, meaning: str) -> str:
    return define(CODES, name, status, meaning)


# -- requests ---------------------------------------------------------------------------------
INVALID_BODY = _code("INVALID_BODY", 400, "the body is not the JSON object this endpoint takes")
PAYLOAD_TOO_LARGE = _code("PAYLOAD_TOO_LARGE", 413, "the body is above this endpoint's limit")
UNKNOWN_FIELD = _code("UNKNOWN_FIELD", 400, "the body has a field this endpoint does not take")
CONFLICTING_CAMPAIGN_ID = _code("CONFLICTING_CAMPAIGN_ID", 400, "campaign_id and campaignId differ")
INVALID_LIMIT = _code("INVALID_LIMIT", 400, "limit is not a whole number in range")

# -- entitlements (web/entitlements.py) --------------------------------------------------------
INVALID_USER_ID = _code("INVALID_USER_ID", 400, "userId is missing or not a Patreon user id (digits)")
INVALID_TIER_ID = _code("INVALID_TIER_ID", 400, "tierId is not a Patreon tier id (digits)")
INVALID_BENEFIT_ID = _code("INVALID_BENEFIT_ID", 400, "benefitId is not a Patreon benefit id (digits)")
INVALID_MIN_CENTS = _code("INVALID_MIN_CENTS", 400, "minCents is not a whole number of cents (0..100000000)")
ACCESS_QUERY_REQUIRED = _code(
    "ACCESS_QUERY_REQUIRED", 400, "give exactly one of tierId, benefitId, minCents"
)

# -- who is asking ----------------------------------------------------------------------------
API_KEY_REQUIRED = _code("API_KEY_REQUIRED", 401, "this endpoint needs the server key")
SERVER_KEY_NOT_CONFIGURED = _code("SERVER_KEY_NOT_CONFIGURED", 403, "BRIDGE_API_KEY is not set")

# -- cookie-authenticated POSTs (web.policy.require_same_origin_json) -------------------------
CROSS_ORIGIN_REQUEST = _code(
    "CROSS_ORIGIN_REQUEST",
    403,
    "a cookie-authenticated POST whose Origin or Referer is not an allowed origin",
)
JSON_REQUIRED = _code(
    "JSON_REQUIRED", 415, "a cookie-authenticated POST whose Content-Type is not application/json"
)

# -- login ------------------------------------------------------------------------------------
INVALID_SCOPE = _code("INVALID_SCOPE", 400, "a scope that is unknown or not allowed")
INVALID_STATE = _code("INVALID_STATE", 400, "the OAuth state is unknown, used or expired; start again")
LOGIN_RATE_LIMITED = _code(
    "LOGIN_RATE_LIMITED",
    429,
    "too many login starts from this client (LOGIN_RATE_LIMIT_PER_MINUTE); see Retry-After",
)
LOGIN_STATES_FULL = _code("LOGIN_STATES_FULL", 503, "too many logins are pending at once; retry later")
PATREON_AUTHORIZATION_ERROR = _code(
    "PATREON_AUTHORIZATION_ERROR", 400, "Patreon sent the user back with an error"
)

# -- webhook deliveries -----------------------------------------------------------------------
MISSING_SIGNATURE = _code("MISSING_SIGNATURE", 400, "no X-Patreon-Signature")
INVALID_SIGNATURE = _code("INVALID_SIGNATURE", 401, "the signature matches no webhook secret")
INVALID_PAYLOAD = _code("INVALID_PAYLOAD", 400, "the delivery is not a JSON:API document")
UNKNOWN_EVENT = _code("UNKNOWN_EVENT", 400, "X-Patreon-Event is not a known trigger")
WEBHOOKS_NOT_CONFIGURED = _code("WEBHOOKS_NOT_CONFIGURED", 503, "no webhook secret is configured or stored")

# -- subscribe tokens for the live program (POST /api/patreon/live/tokens) ------------------
INVALID_AUDIENCE = _code("INVALID_AUDIENCE", 400, "audience is not patron, creator or public")
INVALID_CAMPAIGN_IDS = _code("INVALID_CAMPAIGN_IDS", 400, "campaignIds missing, malformed, or given where not taken")
INVALID_TTL = _code("INVALID_TTL", 400, "ttlSeconds is out of range")

# -- capacity ---------------------------------------------------------------------------------
STORE_UNAVAILABLE = _code("STORE_UNAVAILABLE", 503, "the SQLite store cannot be used right now; retry")
LIVE_EVENTS_MOVED = _code(
    "LIVE_EVENTS_MOVED", 410, "SSE and Socket.IO are served by the live program (LIVE_PORT, or nginx's origin)"
)

# -- what waitress's parser and engine.io (Socket.IO's transport) refuse, as JSON too
# (web/server_errors.py) ------------------------------------------------------------------
REQUEST_HEADERS_TOO_LARGE = _code(
    "REQUEST_HEADERS_TOO_LARGE", 431, "the request headers are over waitress's limit"
)
UNSUPPORTED_TRANSFER_ENCODING = _code(
    "UNSUPPORTED_TRANSFER_ENCODING", 400, "a Transfer-Encoding other than chunked"
)

# -- what Falcon's own errors become, by status (web/errors.py); 404, 429 and 502 use
# wire's NOT_FOUND, RATE_LIMITED and PATREON_UPSTREAM_ERROR ----------------------------------
METHOD_NOT_ALLOWED = _code("METHOD_NOT_ALLOWED", 405, "the route takes other methods (see Allow)")
CONFLICT = _code("CONFLICT", 409, "conflict")
LENGTH_REQUIRED = _code("LENGTH_REQUIRED", 411, "a body without Content-Length")
UNSUPPORTED_MEDIA_TYPE = _code("UNSUPPORTED_MEDIA_TYPE", 415, "the body is not application/json")
SERVICE_UNAVAILABLE = _code("SERVICE_UNAVAILABLE", 503, "web cannot serve this now; retry")
