"""The server-to-server key (``BRIDGE_API_KEY``), as both programs check it.

``BRIDGE_API_KEY`` may list several keys (comma-separated) while a key is being
rotated. With no key configured this mode is off: no key is ever accepted.
Comparisons are constant-time.
"""

from __future__ import annotations

import hmac

from settings.config import WebSettings


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value; None for any other."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def key_matches(config: WebSettings, key: str) -> bool:
    """True when ``key`` is one of the configured server keys."""
    try:
        presented = key.encode()
    except UnicodeEncodeError:
        return False  # a lone surrogate (JSON "\ud800" in a Socket.IO auth): never a key
    # Compare against every key (no early exit) so timing says nothing about which matched.
    matches = [hmac.compare_digest(presented, expected.encode()) for expected in config.bridge_api_keys]
    return any(matches)
