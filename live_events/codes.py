"""The stable error ``code``s of the contract between web and the live program: the ones
both answer, and the subscribe-token refusals (web mints tokens, live refuses bad ones),
defined once with their HTTP status and meaning (docs/api.md lists them;
tests/unit/test_error_codes.py checks). Each program's own codes are in ``web/codes.py``
and ``live/codes.py``."""

from __future__ import annotations

from wire.codes import Code, define

CODES: dict[str, Code] = {}


def _code(name: str, status: int, meaning: str) -> str:
    return define(CODES, name, status, meaning)


# -- who is asking ----------------------------------------------------------------------------
UNAUTHORIZED = _code("UNAUTHORIZED", 401, "neither a logged-in session nor the server key")
INVALID_API_KEY = _code("INVALID_API_KEY", 401, "the server key given is wrong")
FORBIDDEN = _code("FORBIDDEN", 403, "forbidden")
LIVE_TOKENS_NOT_CONFIGURED = _code(
    "LIVE_TOKENS_NOT_CONFIGURED", 503, "LIVE_TOKEN_KEY is not set (required in live mode)"
)

# -- subscribe tokens (live_events.tokens; the live program answers these) ---------------------
TOKEN_MALFORMED = _code("TOKEN_MALFORMED", 401, "live: the subscribe token is not a token")
TOKEN_INVALID = _code("TOKEN_INVALID", 401, "live: the subscribe token's signature is not valid (another key?)")
TOKEN_EXPIRED = _code("TOKEN_EXPIRED", 401, "live: the subscribe token has expired; mint a new one")

# -- event cursors ------------------------------------------------------------------------------
INVALID_SINCE = _code("INVALID_SINCE", 400, "since is not an event id")
INVALID_LAST_EVENT_ID = _code("INVALID_LAST_EVENT_ID", 400, "Last-Event-ID is not an event id")

# -- generic, by status -------------------------------------------------------------------------
BAD_REQUEST = _code("BAD_REQUEST", 400, "a request the server could not read (e.g. a malformed header)")
INTERNAL_ERROR = _code(
    "INTERNAL_ERROR", 500, "the program failed; its log (web_NN.log, live_NN.log) has the traceback"
)

# -- what engine.io (Socket.IO's transport) refuses, as JSON (``engineio_errors``) --------------
ORIGIN_NOT_ALLOWED = _code("ORIGIN_NOT_ALLOWED", 400, "Socket.IO: the page's Origin is not an allowed origin")
INVALID_TRANSPORT = _code(
    "INVALID_TRANSPORT", 400, "Socket.IO: a transport or upgrade this server does not take"
)
UNSUPPORTED_PROTOCOL_VERSION = _code(
    "UNSUPPORTED_PROTOCOL_VERSION",
    400,
    "Socket.IO: the client speaks an Engine.IO protocol this server does not",
)
JSONP_NOT_SUPPORTED = _code("JSONP_NOT_SUPPORTED", 400, "Socket.IO: JSONP polling (j=) is not supported")
SOCKETIO_NOT_CONNECTED = _code("SOCKETIO_NOT_CONNECTED", 400, "Socket.IO: the session is not connected")
INVALID_SESSION = _code("INVALID_SESSION", 400, "Socket.IO: an unknown or ended session id")
