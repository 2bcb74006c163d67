"""Patreon's token endpoint: the code grant and the refresh grant.

``OAuthClient`` speaks to ``POST /api/oauth2/token`` (form-encoded, client id and
secret in the body) through ``PatreonHttp``, so these calls count against the
client's rate-limit window like any other. It returns a ``Grant`` and never logs
one. Storing grants is ``worker.tokens``' job.

Errors::

    InvalidGrant            the code or refresh token is dead (``invalid_grant``):
                            the caller decides (a failed login, or a session to end)
    AuthorizationRefused    a code exchange Patreon refused otherwise
    UpstreamError           a refresh Patreon refused otherwise (``invalid_client``:
                            our configuration), or a grant without the fields it needs
    (and what ``PatreonHttp`` raises: RateLimited, UpstreamError, EdgeBlocked; an HTML
    401 from the edge is an UpstreamError there, never taken for invalid_grant)
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from patreon_client.errors import AuthorizationRefused, InvalidGrant
from patreon_client.http import PatreonHttp, PatreonResponse, upstream_error
from settings.config import WorkerSettings

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/oauth2/token"


@dataclasses.dataclass(frozen=True)
class Grant:
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_in: int | None
    scope: str
    token_type: str

    def public(self) -> dict[str, Any]:
        """What a web caller may see of a grant: never a token."""
        return {"expires_in": self.expires_in, "scope": self.scope, "token_type": self.token_type}


def oauth_error_name(response: PatreonResponse) -> str:
    body = response.body if isinstance(response.body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, str) and len(error) <= 64 else f"HTTP {response.status}"


def parse_grant(body: Any) -> Grant:
    if not isinstance(body, dict):
        raise upstream_error("Patreon's token answer is not a JSON object")
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise upstream_error("Patreon's token answer has no access_token")
    if refresh is not None and not isinstance(refresh, str):
        raise upstream_error("Patreon's token answer has a malformed refresh_token")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in)  # isdigit() alone also takes "²", which int() refuses
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = None
    scope = body.get("scope") if isinstance(body.get("scope"), str) else ""
    token_type = body.get("token_type") if isinstance(body.get("token_type"), str) else "Bearer"
    return Grant(access, refresh or None, expires_in, scope, token_type)


class OAuthClient:
    def __init__(self, config: WorkerSettings, http: PatreonHttp):
        self._client_id = config.client_id
        self._client_secret = config.client_secret
        self._http = http

    def _post(self, form: dict[str, str], deadline: float) -> PatreonResponse:
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        return self._http.request("POST", TOKEN_PATH, deadline=deadline, form=form)

    def exchange_code(self, code: str, redirect_uri: str, deadline: float) -> Grant:
        response = self._post(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, deadline
        )
        if response.ok:
            return parse_grant(response.body)
        error = oauth_error_name(response)
        log.info("code exchange refused by Patreon: %s", error)
        if error == "invalid_grant":
            raise InvalidGrant(error)
        raise AuthorizationRefused(f"Patreon refused the authorization code ({error})")

    def refresh(self, refresh_token: str, deadline: float) -> Grant:
        response = self._post({"grant_type": "refresh_token", "refresh_token": refresh_token}, deadline)
        if response.ok:
            return parse_grant(response.body)
        error = oauth_error_name(response)
        log.warning("token refresh refused by Patreon: %s", error)
        if error == "invalid_grant":
            raise InvalidGrant(error)
        raise upstream_error(f"Patreon refused the token refresh ({error})")
