"""Subscribe tokens: what a site's backend mints for one browser, and live checks.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is
compact JSON ``{"v": 1, "aud": ..., "sub": ..., "cmp": [...], "exp": <unix s>}`` and
the signature its HMAC-SHA256 under the token key (``live_events.settings``). Nothing is
stored: a token is valid until ``exp``, so keep the lifetime short.

Audiences:

* ``patron``: ``sub`` is a Patreon user id; the holder hears only events about that
  user (their own member updates, later ``entitlement:changed``).
* ``creator``: ``cmp`` lists campaign ids; every event of those campaigns (a creator's
  dashboard on another site).
* ``public``: no user; the public feed (when the operator turned it on).

web mints (``POST /api/patreon/live/tokens``) and the live program verifies, so the
format lives here, in the contract between them. Every refusal has a stable code:
``TOKEN_MALFORMED``, ``TOKEN_INVALID`` (bad signature, another key), ``TOKEN_EXPIRED``
(``live_events/codes.py``; the live program answers them).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import time
from typing import Any

from live_events import codes

VERSION = 1
AUDIENCES = ("patron", "creator", "public")
MAX_TOKEN_CHARS = 2048
MAX_CAMPAIGNS = 50
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Patreon ids are digits; leave room, but no junk


class TokenRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Claims:
    audience: str
    user_id: str | None
    campaign_ids: tuple[str, ...]
    expires_at: int


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def mint(key: bytes, claims: Claims) -> str:
    body: dict[str, Any] = {"v": VERSION, "aud": claims.audience, "exp": int(claims.expires_at)}
    if claims.user_id is not None:
        body["sub"] = claims.user_id
    if claims.campaign_ids:
        body["cmp"] = list(claims.campaign_ids)
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_sign(key, payload)}"


def verify(key: bytes, token: Any, *, now: float | None = None) -> Claims:
    """The claims of a good token; raises ``TokenRefused`` with a stable code otherwise."""
    malformed = TokenRefused(codes.TOKEN_MALFORMED, "The subscribe token is not a token")
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        raise malformed
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise malformed
    # Signature first: nothing of an unsigned payload is even parsed.
    if not hmac.compare_digest(_sign(key, payload).encode(), signature.encode()):
        raise TokenRefused(codes.TOKEN_INVALID, "The subscribe token's signature is not valid")
    try:
        body = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        raise malformed from None
    if not isinstance(body, dict) or body.get("v") != VERSION or body.get("aud") not in AUDIENCES:
        raise malformed
    expires_at = body.get("exp")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        raise malformed
    if (time.time() if now is None else now) >= expires_at:
        raise TokenRefused(codes.TOKEN_EXPIRED, "The subscribe token has expired; ask the site for a new one")
    user_id, campaigns = body.get("sub"), body.get("cmp", [])
    if user_id is not None and not valid_id(user_id):
        raise malformed
    if not isinstance(campaigns, list) or not all(valid_id(c) for c in campaigns):
        raise malformed
    claims = Claims(body["aud"], user_id, tuple(campaigns), expires_at)
    if (claims.audience == "patron") != (user_id is not None) or (claims.audience == "creator") != bool(campaigns):
        raise malformed
    return claims
