"""Login with Patreon: the OAuth2 code flow, for browsers and for single-page apps.

    GET  /api/patreon/auth/url?scopes=a,b  {success, authUrl, scopes, state}
    GET  /auth/patreon                     302 to Patreon (default scopes)
    GET  /auth/patreon/callback?code&state 302 to POST_LOGIN_URL, after the exchange
    POST /api/patreon/auth/token {code, state}   the same exchange, answered as JSON
    POST /api/patreon/auth/refresh         refresh this session's own tokens
    POST /api/patreon/auth/logout          drop the tokens and the session

Scopes go to Patreon SPACE-separated (Patreon silently ignores comma-separated ones).
Each login gets a fresh ``state`` bound to the caller's cookie (``web.sessions``), and
login starts are rate limited per client (``LOGIN_RATE_LIMIT_PER_MINUTE``);
the callback uses it up before anything else, so a state works once. The code
exchange and the identity happen in the worker, which keeps the tokens: no answer
here ever carries a token. A successful login rotates the session id.

The callback is a browser page: its errors are a small HTML page (every reflected
value escaped) when the browser asks for HTML, JSON otherwise; same status and code.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import quote, urlencode

import falcon

from settings.config import V2_SCOPES, WebSettings
from store import tokens
from store.database import Store, StoreUnavailable
from web import sessions as sessions_mod
from web.client_limit import ClientRateLimiter
from web.codes import (
    INVALID_SCOPE,
    INVALID_STATE,
    LOGIN_RATE_LIMITED,
    LOGIN_STATES_FULL,
    PATREON_AUTHORIZATION_ERROR,
    UNKNOWN_FIELD,
)
from web.errors import ApiError, store_unavailable
from web.policy import read_json_body, require_same_origin_json
from web.principals import AUTH_REQUIRED, Principal, call
from web.sessions import Session, SessionStore, StateError, StatesFull
from wire import actions
from wire.client import WorkerClient, WorkerError
from wire.codes import INVALID_PARAMETER, MISSING_AUTH_CODE, MISSING_REFRESH_TOKEN, UNKNOWN_PARAMETER

log = logging.getLogger(__name__)

MAX_SCOPES_CHARS = 500
MAX_CODE_CHARS = 512
MAX_REFLECTED_CHARS = 200
LOGIN_BURST = 10  # login starts a client may make at once, before the per-minute rate applies
STATE_FULL_RETRY_S = 60
CALLBACK_PARAMS = {"code", "state", "error", "error_description", "error_uri", "scope"}


def parse_scopes(raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """Scopes from a comma- or space-separated list, checked against Patreon's v2 list."""
    if raw is None or not raw.strip():
        return default
    if len(raw) > MAX_SCOPES_CHARS:
        raise ApiError(400, INVALID_SCOPE, "scopes is too long")
    scopes = tuple(dict.fromkeys(s for s in raw.replace(",", " ").split() if s))
    unknown = [s for s in scopes if s not in V2_SCOPES]
    if unknown:
        raise ApiError(
            400,
            INVALID_SCOPE,
            f"unknown scope(s) {', '.join(repr(s[:60]) for s in unknown[:5])}; Patreon's v2 scopes are: "
            + ", ".join(V2_SCOPES),
            extra={"invalid": [s[:60] for s in unknown[:20]]},
        )
    return scopes


def only_params(req: falcon.Request, allowed: set[str]) -> dict[str, str]:
    """The query as single values; 400 for an unknown or repeated parameter."""
    params: dict[str, str] = {}
    for key, value in req.params.items():
        if key not in allowed:
            raise ApiError(400, UNKNOWN_PARAMETER, f"unknown query parameter {key[:60]!r}")
        if isinstance(value, list):
            raise ApiError(400, INVALID_PARAMETER, f"{key} must be given once")
        params[key] = value
    return params


class Login:
    """What the login endpoints share: sessions, states, the exchange."""

    def __init__(
        self,
        config: WebSettings,
        worker: WorkerClient,
        store: Store,
        sessions: SessionStore,
        limiter: ClientRateLimiter | None = None,
    ):
        self.config = config
        self.worker = worker
        self.store = store
        self.sessions = sessions
        self.limiter = limiter or ClientRateLimiter(config.login_rate_per_minute, LOGIN_BURST)

    def start(self, req: falcon.Request, resp: falcon.Response, scopes: tuple[str, ...]) -> tuple[str, str]:
        """A fresh state bound to the caller's cookie (set if needed): (authorize URL, state).

        Login starts are rate limited per client address (429 ``LOGIN_RATE_LIMITED``),
        and no session row is written until the login succeeds.
        """
        wait_s = self.limiter.wait_s(req.remote_addr or "-")
        if wait_s > 0:
            raise ApiError(
                429,
                LOGIN_RATE_LIMITED,
                "Too many login starts from this client; retry later",
                retry_after=wait_s,
            )
        binding, anonymous = self.sessions.binding_for(req)
        try:
            state = self.sessions.issue_state(binding, self.config.redirect_uri, scopes)
        except StatesFull:
            raise ApiError(
                503,
                LOGIN_STATES_FULL,
                "Too many logins are pending; retry later",
                retry_after=STATE_FULL_RETRY_S,
            ) from None
        if anonymous:
            self.sessions.set_anonymous_cookie(resp, binding)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
            },
            quote_via=quote,
        )
        resp.set_header("Cache-Control", "no-store")
        return f"{self.config.patreon_api_base}/oauth2/authorize?{query}", state

    def finish(self, req: falcon.Request, resp: falcon.Response, code: Any, state: Any) -> dict[str, Any]:
        """Use up the state, check it, exchange the code, log the session in."""
        old = self.sessions.from_request(req)
        # The state first: it is used up when presented, whatever is wrong after it.
        try:
            pending = self.sessions.consume_state(self.sessions.bindings(req), state)
        except StateError as ex:
            raise ApiError(400, INVALID_STATE, f"Invalid state: {ex}; start the login again") from ex
        if not isinstance(code, str) or not code or len(code) > MAX_CODE_CHARS:
            raise ApiError(400, MISSING_AUTH_CODE, "code is missing: pass the code Patreon sent back")
        new_id = sessions_mod.new_id()
        try:
            result = self.worker.send(
                actions.OAuthExchange(code=code, redirect_uri=pending.redirect_uri, session=new_id),
                request_id=req.context.request_id,
            )
        except WorkerError:
            # A timeout or a lost answer may come after the worker stored the new
            # session's tokens: nobody will ever log in as that id, so drop them.
            self.forget_session_tokens(new_id)
            raise
        user = result.get("user") or {}
        if old is not None and old.logged_in:
            self.forget_tokens(old)
        session = self.sessions.login(old, new_id, user.get("id"), result.get("campaign_ids") or [])
        self.sessions.set_cookie(resp, session)
        resp.set_header("Cache-Control", "no-store")
        log.info("session logged in as Patreon user %s", session.user_id)
        return result

    def forget_tokens(self, session: Session) -> None:
        self.forget_session_tokens(session.id)

    def forget_session_tokens(self, session_id: str) -> None:
        """Drop a session's tokens: through the worker, or directly when it is down."""
        try:
            self.worker.send(actions.OAuthForget(session=session_id), retry=False)
        except WorkerError:
            tokens.forget(self.store, tokens.session_principal(session_id))


class AuthUrlResource:
    def __init__(self, login: Login):
        self.login = login

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = only_params(req, {"scopes", "scope"})
        scopes = parse_scopes(params.get("scopes", params.get("scope")), self.login.config.default_scopes)
        url, state = self.login.start(req, resp, scopes)
        resp.media = {"success": True, "authUrl": url, "scopes": list(scopes), "state": state}


class LoginRedirectResource:
    def __init__(self, login: Login):
        self.login = login

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        only_params(req, set())
        url, _state = self.login.start(req, resp, self.login.config.default_scopes)
        resp.status = falcon.HTTP_302
        resp.location = url


def wants_html(req: falcon.Request) -> bool:
    return req.client_prefers([falcon.MEDIA_JSON, falcon.MEDIA_HTML]) == falcon.MEDIA_HTML


def error_page(status: int, code: str, message: str) -> str:
    esc = html.escape
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Login with Patreon failed</title></head>'
        f"<body><h1>Login with Patreon failed</h1><p>{esc(message)}</p>"
        f"<p><code>{esc(code)}</code> ({status})</p>"
        '<p><a href="/auth/patreon">Try again</a></p></body></html>'
    )


class CallbackResource:
    def __init__(self, login: Login):
        self.login = login

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            try:
                self._handle(req, resp)
            except StoreUnavailable as ex:
                raise store_unavailable(ex) from ex
        except (ApiError, WorkerError) as ex:
            if not wants_html(req):
                raise
            status = ex.status_code if isinstance(ex, ApiError) else ex.status
            code = ex.code
            message = (ex.description or ex.title) if isinstance(ex, ApiError) else str(ex)
            resp.status = falcon.code_to_http_status(status)
            resp.content_type = falcon.MEDIA_HTML
            resp.set_header("Cache-Control", "no-store")
            retry_after = (ex.headers or {}).get("Retry-After") if isinstance(ex, ApiError) else None
            if retry_after:
                resp.set_header("Retry-After", retry_after)
            resp.text = error_page(status, code, message)

    def _handle(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Patreon's redirect, not our API: unknown parameters are ignored, repeats are not.
        params = {}
        for key in CALLBACK_PARAMS & set(req.params):
            value = req.params[key]
            if isinstance(value, list):
                raise ApiError(400, INVALID_PARAMETER, f"{key} must be given once")
            params[key] = value
        if "error" in params:
            # The state is used up all the same: it must not work after a refusal.
            try:
                self.login.sessions.consume_state(self.login.sessions.bindings(req), params.get("state"))
            except StateError:
                pass
            error = params["error"][:MAX_REFLECTED_CHARS]
            description = params.get("error_description", "")[:MAX_REFLECTED_CHARS]
            raise ApiError(
                400,
                PATREON_AUTHORIZATION_ERROR,
                f"Patreon did not authorize the login: {error}"
                + (f" ({description})" if description else ""),
                extra={"patreon_error": error},
            )
        self.login.finish(req, resp, params.get("code"), params.get("state"))
        resp.status = falcon.HTTP_302
        resp.location = self.login.config.post_login_url


@falcon.before(require_same_origin_json)
class TokenResource:
    def __init__(self, login: Login):
        self.login = login
        self.config = login.config

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_body(req)
        unknown = set(body) - {"code", "state"}
        if unknown:
            raise ApiError(
                400, UNKNOWN_FIELD, f"unknown field {sorted(unknown)[0][:60]!r}: send code and state"
            )
        result = self.login.finish(req, resp, body.get("code"), body.get("state"))
        resp.media = {
            "success": True,
            "user": result.get("user"),
            "campaign_ids": result.get("campaign_ids") or [],
            "tokens": result.get("tokens"),
        }


@falcon.before(require_same_origin_json)
class RefreshResource:
    def __init__(self, login: Login):
        self.login = login
        self.config = login.config

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # The session's own tokens, never a token from the body (a body is ignored).
        session = self.login.sessions.from_request(req)
        if session is None:
            raise ApiError(401, AUTH_REQUIRED, "Log in with Patreon first")
        if not session.logged_in:
            raise ApiError(400, MISSING_REFRESH_TOKEN, "This session has not logged in with Patreon")
        result = call(
            self.login.worker,
            self.login.sessions,
            Principal(session),
            actions.OAuthRefresh(principal=actions.session(session.id)),
            req,
            resp,
        )
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"success": True, "tokens": result.get("tokens")}


@falcon.before(require_same_origin_json)
class LogoutResource:
    def __init__(self, login: Login):
        self.login = login
        self.config = login.config

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.login.sessions.from_request(req)
        if session is not None:
            self.login.forget_tokens(session)
            self.login.sessions.end(session.id)
        self.login.sessions.clear_cookie(resp)
        resp.media = {"success": True, "loggedOut": session is not None}
