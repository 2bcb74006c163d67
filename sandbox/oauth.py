"""OAuth2 as Patreon runs it: the authorize page, codes, tokens and their rotation.

- `GET /oauth2/authorize` checks the client id and the exact redirect URI (a mismatch
  is an HTML error page, never a redirect), validates the SPACE-separated `scope`
  (an unknown scope redirects with `error=invalid_scope`; a comma-separated `scope` or
  a `scopes` parameter is silently ignored and only `identity` is granted) and shows a
  consent page. Its Allow form posts to `POST /oauth2/authorize`, which tests can call
  directly to approve without a browser.
- `POST /api/oauth2/token` takes its fields from a form body or the query string.
  Codes are single-use and expire. A refresh token is single-use: a refresh returns a
  new pair and the old refresh token is dead; the old ACCESS token stays valid until
  it expires (Patreon does not say; this is the lenient choice, documented).
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import falcon

from sandbox.counters import Counters
from sandbox.data import CREATOR_ID, World
from sandbox.errors import AuthorizePageError, OAuthError, throttled
from sandbox.ratelimit import RateLimiter
from sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

SCOPES: dict[str, str] = {
    "identity": "Your public profile",
    "identity[email]": "Your email address",
    "identity.memberships": "Your memberships to all creators",
    "campaigns": "Your campaigns, tiers, benefits and goals",
    "w:campaigns.webhook": "Create and manage webhooks on your campaign",
    "campaigns.members": "Your campaign's members",
    "campaigns.members[email]": "Your members' email addresses",
    "campaigns.members.address": "Your members' shipping addresses",
    "campaigns.posts": "Your campaign's posts",
}
ALL_SCOPES = tuple(SCOPES)
TOKEN_VERSION = "0.0.1"
CONSENT_PATRONS = 5  # patrons offered in the consent page's "logged in as" list


@dataclass
class Grant:
    """One issued access/refresh pair. `family` survives refreshes."""

    access_token: str
    refresh_token: str | None  # None once used
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float
    family: str
    forced_expired: bool = False
    revoked: bool = False
    issued_at: float = 0.0  # monotonic clock

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def rate_key(self) -> tuple[str, str]:
        """Patreon limits per client and user: refreshing does not reset the window."""
        return (self.client_id, self.user_id)


@dataclass(frozen=True)
class AuthCode:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    user_id: str
    expires_at: float
    family: str


class TokenStore:
    """Codes and tokens, behind one lock. Never logs a token or a code."""

    def __init__(
        self,
        settings: SandboxSettings,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.counters = counters
        self.clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, AuthCode] = {}
        self._by_access: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        # Live tokens have been reported failing around day 20 of a 31-day expires_in:
        # set, every access token dies this many (real) seconds after it was issued,
        # whatever its expires_in said. Its refresh token keeps working.
        self.early_expiry_s: float | None = None
        self.on_change: Callable[[], None] = lambda: None  # persistence hook

    # ------------------------------------------------------------ issuing

    def issue_creator_tokens(self) -> None:
        """The developer-portal creator pair: all scopes, refreshes like any other."""
        s = self.settings
        self._store(
            Grant(
                access_token=s.creator_access_token,
                refresh_token=s.creator_refresh_token,
                client_id=s.client_id,
                user_id=CREATOR_ID,
                scopes=ALL_SCOPES,
                expires_at=self.clock() + s.token_ttl_s,
                family="creator",
                issued_at=self.clock(),
            )
        )

    def _store(self, grant: Grant) -> None:
        with self._lock:
            self._by_access[grant.access_token] = grant
            if grant.refresh_token:
                self._by_refresh[grant.refresh_token] = grant

    def _new_grant(self, client_id, user_id, scopes, family) -> Grant:
        grant = Grant(
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(32),
            client_id=client_id,
            user_id=user_id,
            scopes=tuple(scopes),
            expires_at=self.clock() + self.settings.token_ttl_s,
            family=family,
            issued_at=self.clock(),
        )
        self._store(grant)
        self.on_change()
        return grant

    def create_code(self, client_id: str, redirect_uri: str, scopes, user_id: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = AuthCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=tuple(scopes),
                user_id=user_id,
                expires_at=self.clock() + self.settings.code_ttl_s,
                family=uuid.uuid4().hex,
            )
        return code

    def exchange_code(self, code: str, client_id: str, redirect_uri: str) -> Grant:
        with self._lock:
            issued = self._codes.get(code)
            if issued is None:
                raise OAuthError(401, "invalid_grant")
            if self.clock() >= issued.expires_at:
                del self._codes[code]
                raise OAuthError(401, "invalid_grant")
            if issued.client_id != client_id or issued.redirect_uri != redirect_uri:
                raise OAuthError(401, "invalid_grant")
            del self._codes[code]  # single use
        self.counters.grant("authorization_code")
        return self._new_grant(client_id, issued.user_id, issued.scopes, issued.family)

    def refresh(self, refresh_token: str, client_id: str) -> Grant:
        with self._lock:
            old = self._by_refresh.get(refresh_token)
            if old is None or old.revoked or old.client_id != client_id:
                raise OAuthError(401, "invalid_grant")
            del self._by_refresh[refresh_token]  # single use: rotation
            old.refresh_token = None
        self.counters.grant("refresh_token")
        return self._new_grant(client_id, old.user_id, old.scopes, old.family)

    # ------------------------------------------------------------ checking

    def lookup(self, access_token: str) -> Grant | None:
        """The grant for an access token, valid or not (None if never issued)."""
        with self._lock:
            return self._by_access.get(access_token)

    def is_valid(self, grant: Grant) -> bool:
        now = self.clock()
        if self.early_expiry_s is not None and now >= grant.issued_at + self.early_expiry_s:
            return False
        return not grant.revoked and not grant.forced_expired and now < grant.expires_at

    # ------------------------------------------------------------ control

    def expire(self, access_token: str | None = None, user_id: str | None = None, everything=False) -> int:
        """Expire access tokens now; their refresh tokens keep working."""
        with self._lock:
            grants = self._select(access_token, user_id, everything)
            for grant in grants:
                grant.forced_expired = True
        self.on_change()
        return len(grants)

    def revoke(self, token: str | None = None, user_id: str | None = None, everything=False) -> int:
        """Revoke whole families (access and refresh): a refresh is then invalid_grant."""
        with self._lock:
            if token is not None:
                grant = self._by_access.get(token) or self._by_refresh.get(token)
                families = {grant.family} if grant else set()
                grants = [g for g in self._by_access.values() if g.family in families]
            else:
                grants = self._select(None, user_id, everything)
            for grant in grants:
                grant.revoked = True
                if grant.refresh_token:
                    self._by_refresh.pop(grant.refresh_token, None)
                    grant.refresh_token = None
        self.on_change()
        return len(grants)

    def _select(self, access_token, user_id, everything) -> list[Grant]:
        if access_token is not None:
            grant = self._by_access.get(access_token)
            return [grant] if grant else []
        if user_id is not None:
            return [g for g in self._by_access.values() if g.user_id == user_id]
        if everything:
            return list(self._by_access.values())
        return []

    def stats(self) -> dict[str, int]:
        with self._lock:
            valid = sum(1 for g in self._by_access.values() if self.is_valid(g))
            return {
                "access_tokens_valid": valid,
                "refresh_tokens_valid": len(self._by_refresh),
                "codes_pending": len(self._codes),
            }


# -------------------------------------------------------------------- helpers


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    parts = urlsplit(uri)
    extra = urlencode([(k, v) for k, v in params.items() if v is not None])
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _single(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    return value


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    scope_text: str  # the validated, space-separated scope string


class Redirect(Exception):
    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class Authorize:
    """`/oauth2/authorize`: GET shows the consent page, POST is its Allow/Deny form."""

    def __init__(self, settings: SandboxSettings, world: World, tokens: TokenStore):
        self.settings = settings
        self.world = world
        self.tokens = tokens

    def _validate(self, fields: Mapping[str, Any]) -> AuthorizeRequest:
        client_id = _single(fields.get("client_id"))
        redirect_uri = _single(fields.get("redirect_uri"))
        if not client_id or not hmac.compare_digest(client_id.encode(), self.settings.client_id.encode()):
            raise AuthorizePageError("Unknown client_id: this app is not registered.")
        if not redirect_uri or redirect_uri not in self.settings.redirect_uris:
            raise AuthorizePageError("The redirect_uri does not match any URI registered for this client.")
        state = _single(fields.get("state")) or None  # the form sends "" for "no state"
        response_type = _single(fields.get("response_type"))
        if response_type != "code":
            raise Redirect(with_query(redirect_uri, {"error": "unsupported_response_type", "state": state}))
        raw_scope = _single(fields.get("scope"))
        if raw_scope is None or "," in raw_scope or not raw_scope.strip():
            # Patreon ignores comma-separated scopes and a `scopes` parameter.
            scopes: tuple[str, ...] = ("identity",)
        else:
            scopes = tuple(dict.fromkeys(raw_scope.split()))
            if any(scope not in SCOPES for scope in scopes):
                raise Redirect(with_query(redirect_uri, {"error": "invalid_scope", "state": state}))
        return AuthorizeRequest(client_id, redirect_uri, scopes, state, " ".join(scopes))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            request = self._validate(req.params)
        except Redirect as redirect:
            self._redirect(resp, redirect.location)
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._consent_page(request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        fields: dict[str, Any] = dict(req.params)
        if (req.content_type or "").startswith(falcon.MEDIA_URLENCODED):
            fields.update(req.get_media(default_when_empty={}))
        try:
            request = self._validate(fields)
        except Redirect as redirect:
            self._redirect(resp, redirect.location)
            return
        decision = _single(fields.get("decision")) or "allow"
        if decision == "deny":
            location = with_query(request.redirect_uri, {"error": "access_denied", "state": request.state})
            self._redirect(resp, location)
            return
        if decision != "allow":
            raise AuthorizePageError("decision must be 'allow' or 'deny'.")
        user_id = _single(fields.get("user_id")) or CREATOR_ID
        with self.world.lock:
            known = user_id in self.world.users
        if not known:
            raise AuthorizePageError(f"No sandbox user with id {user_id!r}.")
        code = self.tokens.create_code(request.client_id, request.redirect_uri, request.scopes, user_id)
        self._redirect(resp, with_query(request.redirect_uri, {"code": code, "state": request.state}))

    @staticmethod
    def _redirect(resp: falcon.Response, location: str) -> None:
        resp.status = falcon.HTTP_302
        resp.location = location
        resp.set_header("Cache-Control", "no-store")

    def _consent_page(self, request: AuthorizeRequest) -> str:
        with self.world.lock:
            user_ids = [CREATOR_ID, *self.world.default_patron_user_ids(CONSENT_PATRONS)]
            people = [(uid, self.world.users[uid].full_name) for uid in user_ids]
        esc = html.escape
        options = "".join(
            f'<option value="{esc(uid)}"{" selected" if uid == CREATOR_ID else ""}>'
            f"{esc(name)} (user {esc(uid)}{', the creator' if uid == CREATOR_ID else ''})"
            "</option>"
            for uid, name in people
        )
        scopes = "".join(
            f"<li><code>{esc(scope)}</code>: {esc(SCOPES[scope])}</li>" for scope in request.scopes
        )
        hidden = {
            "response_type": "code",
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": request.scope_text,
            "state": request.state or "",
        }
        hidden_inputs = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in hidden.items()
        )
        return (
            '<!doctype html><html><head><meta charset="utf-8">'
            "<title>Patreon sandbox: authorize</title></head><body>"
            "<h1>Allow access to your Patreon account?</h1>"
            "<p>This is the Patreon <strong>sandbox</strong>. The app asks for:</p>"
            f"<ul>{scopes}</ul>"
            '<form method="post" action="/oauth2/authorize">'
            f"{hidden_inputs}"
            '<label>Logged in to Patreon as <select name="user_id">'
            f"{options}</select></label>"
            '<p><button type="submit" name="decision" value="allow">Allow</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></p>'
            "</form></body></html>"
        )


class TokenEndpoint:
    """`POST /api/oauth2/token`: both grants, fields from the form body or the query."""

    def __init__(
        self,
        settings: SandboxSettings,
        tokens: TokenStore,
        limiter: RateLimiter,
        counters: Counters,
    ):
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter
        self.counters = counters

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        fields: dict[str, Any] = {k: _single(v) for k, v in req.params.items()}
        if (req.content_type or "").startswith(falcon.MEDIA_URLENCODED):
            body = req.get_media(default_when_empty={})
            fields.update({k: _single(v) for k, v in body.items()})
        client_id = fields.get("client_id")
        if client_id == self.settings.client_id:
            decision = self.limiter.admit(("client", client_id))
            if not decision.allowed:
                self.counters.incr("throttled")
                raise throttled(decision.retry_after_s)
        grant_type = fields.get("grant_type")
        required = {
            "authorization_code": ("code", "client_id", "client_secret", "redirect_uri"),
            "refresh_token": ("refresh_token", "client_id", "client_secret"),
        }
        if not grant_type:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type.")
        if grant_type not in required:
            raise OAuthError(
                400,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
        missing = [name for name in required[grant_type] if not fields.get(name)]
        if missing:
            raise OAuthError(400, "invalid_request", f"Missing required parameter(s): {', '.join(missing)}.")
        if not self._client_ok(fields["client_id"], fields["client_secret"]):
            raise OAuthError(401, "invalid_client")
        if grant_type == "authorization_code":
            grant = self.tokens.exchange_code(fields["code"], fields["client_id"], fields["redirect_uri"])
        else:
            grant = self.tokens.refresh(fields["refresh_token"], fields["client_id"])
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Pragma", "no-cache")
        resp.media = {
            "access_token": grant.access_token,
            "expires_in": self.settings.token_ttl_s,
            "refresh_token": grant.refresh_token,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
            "version": TOKEN_VERSION,
        }

    def _client_ok(self, client_id: str, client_secret: str) -> bool:
        id_ok = hmac.compare_digest(client_id.encode(), self.settings.client_id.encode())
        secret_ok = hmac.compare_digest(client_secret.encode(), self.settings.client_secret.encode())
        return id_ok and secret_ok
