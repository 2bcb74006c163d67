"""Every stable error ``code`` the live program answers by itself, defined once with
its HTTP status and meaning (docs/api.md lists them; tests/unit/test_error_codes.py
checks). Socket.IO refusals carry the same code as the ``connect_error`` message.
Codes shared with web (``UNAUTHORIZED``, ``INVALID_SINCE`` ...) come from
``live_events/codes.py`` and ``wire/codes.py``."""

from __future__ import annotations

from wire.codes import Code, define

CODES: dict[str, Code] = {}


def _code(name: str, status: int, meaning: str) -> str:
    return define(CODES, name, status, meaning)


PUBLIC_FEED_OFF = _code("PUBLIC_FEED_OFF", 403, "live: the public feed is turned off (LIVE_PUBLIC_FEED)")
INVALID_FEED = _code("INVALID_FEED", 400, "live: feed is not `public`")
CONNECTIONS_FULL = _code("CONNECTIONS_FULL", 503, "live: LIVE_MAX_CONNECTIONS are open; retry later")
