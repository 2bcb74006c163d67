"""The front door of Patreon's `/api/` paths: User-Agent, bearer token, rate limits.

For every `/api/...` request (API v2 and the token endpoint) a missing `User-Agent` is
a 403, as Patreon's edge does. For API v2 requests the bearer token is looked up; a
token the sandbox issued (valid or not) is charged to its client's 2-second window and
its client+user per-minute window, and refused with 429 when either is full; then an
unknown, expired or revoked token is a 401. The valid grant lands in
`req.context.grant` for the resources.
"""

from __future__ import annotations

import falcon

from sandbox.accesslog import API_V2_PREFIX
from sandbox.counters import Counters
from sandbox.errors import ApiError, throttled, unauthorized
from sandbox.oauth import TokenStore
from sandbox.ratelimit import RateLimiter


def bearer_token(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiGate:
    def __init__(self, tokens: TokenStore, limiter: RateLimiter, counters: Counters):
        self.tokens = tokens
        self.limiter = limiter
        self.counters = counters

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.startswith("/api/"):
            return
        if not (req.user_agent or "").strip():
            raise ApiError(403, "Requests without a User-Agent header are refused.")
        if not req.path.startswith(API_V2_PREFIX):
            return
        token = bearer_token(req)
        grant = self.tokens.lookup(token) if token else None
        if grant is not None:
            decision = self.limiter.admit(("client", grant.client_id), grant.rate_key)
            if not decision.allowed:
                self.counters.incr("throttled")
                raise throttled(decision.retry_after_s)
        if grant is None or not self.tokens.is_valid(grant):
            raise unauthorized()
        req.context.grant = grant
