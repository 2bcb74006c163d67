"""Login endpoints and sessions with falcon's TestClient, a real store and a fake
worker: state binding, single use and expiry, the callback, the SPA exchange,
refresh, logout, the cookie's flags, and no token in any answer."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import falcon
import falcon.testing
import pytest

from settings.config import load_config
from store import tokens
from store.database import Store
from tests.fake_worker import FakeWorker, call_error
from web.app import create_app
from web.sessions import COOKIE_NAME, MAX_PENDING_STATES, STATE_TTL_S, SessionStore
from wire.client import WorkerTimeout, WorkerUnavailable

NO_DOTENV = Path("/nonexistent/.env")
USER = {"type": "user", "id": "7", "attributes": {"full_name": "Ada Lovelace", "email": "ada@example.com"}}
EXCHANGED = {
    "user": USER,
    "campaign_ids": ["1001"],
    "tokens": {"expires_in": 2678400, "scope": "identity", "token_type": "Bearer"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, tmp_path: Path, extra: dict[str, str] | None = None):
        self.config = load_config({"POST_LOGIN_URL": "/welcome", **(extra or {})}, NO_DOTENV)
        self.store = Store(tmp_path / "bridge.sqlite3")
        self.store.migrate()
        self.clock = Clock()
        self.sessions = SessionStore(self.store, cookie_secure=self.config.cookie_secure, clock=self.clock)
        self.worker = FakeWorker()
        self.worker.answer("oauth.exchange", EXCHANGED)
        app = create_app(self.config, self.worker, self.store, sessions=self.sessions)
        self.client = falcon.testing.TestClient(app)

    def start(self, cookie: str | None = None, scopes: str | None = None):
        query = f"scopes={scopes}" if scopes else None
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else None
        return self.client.simulate_get("/api/patreon/auth/url", query_string=query, headers=headers)

    def callback(self, cookie: str | None, query: str, accept: str = "application/json"):
        headers = {"Accept": accept}
        if cookie:
            headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
        return self.client.simulate_get("/auth/patreon/callback", query_string=query, headers=headers)


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def assert_error(result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.json["success"] is False and result.json["code"] == code and result.json["error"]


def test_auth_url_has_space_joined_scopes_a_state_and_sets_the_cookie(env):
    result = env.start(scopes="identity,campaigns identity%5Bemail%5D")
    assert result.status_code == 200
    body = result.json
    assert body["success"] is True
    assert body["scopes"] == ["identity", "campaigns", "identity[email]"]
    url = urlsplit(body["authUrl"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == env.config.patreon_api_base + "/oauth2/authorize"
    assert "scope=identity%20campaigns%20identity%5Bemail%5D" in url.query
    query = parse_qs(url.query)
    assert query["state"] == [body["state"]]
    assert query["client_id"] == [env.config.client_id]
    assert query["redirect_uri"] == [env.config.redirect_uri]
    assert query["response_type"] == ["code"]
    cookie = result.cookies[COOKIE_NAME]
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure and cookie.path == "/"


def test_cookie_is_secure_when_configured(tmp_path):
    env = Env(tmp_path, {"SESSION_COOKIE_SECURE": "true"})
    assert env.start().cookies[COOKIE_NAME].secure


def test_unknown_scopes_and_parameters_are_refused(env):
    result = env.start(scopes="identity,campaigns.everything")
    assert_error(result, 400, "INVALID_SCOPE")
    assert result.json["invalid"] == ["campaigns.everything"]
    assert_error(
        env.client.simulate_get("/api/patreon/auth/url", query_string="foo=1"), 400, "UNKNOWN_PARAMETER"
    )


def test_login_redirect_goes_to_patreon_with_the_default_scopes(env):
    result = env.client.simulate_get("/auth/patreon")
    assert result.status_code == 302
    location = result.headers["Location"]
    assert location.startswith(env.config.patreon_api_base + "/oauth2/authorize?")
    assert "scope=identity%20identity%5Bemail%5D%20identity.memberships%20campaigns&" in location
    assert COOKIE_NAME in result.cookies


def test_callback_exchanges_logs_in_rotates_the_session_and_redirects(env):
    started = env.start()
    old_cookie, state = started.cookies[COOKIE_NAME].value, started.json["state"]
    result = env.callback(old_cookie, f"code=the-code&state={state}")
    assert result.status_code == 302
    assert result.headers["Location"] == "/welcome"
    new_cookie = result.cookies[COOKIE_NAME].value
    assert new_cookie != old_cookie
    call = env.worker.last("oauth.exchange")
    assert call["data"] == {
        "code": "the-code",
        "redirect_uri": env.config.redirect_uri,
        "session": new_cookie,
    }
    session = env.sessions.get(new_cookie)
    assert (session.user_id, session.campaign_ids) == ("7", ("1001",))
    assert env.sessions.get(old_cookie) is None
    # The same session from the Cookie header alone (what Socket.IO has).
    assert env.sessions.from_cookie_header(f"other=1; {COOKIE_NAME}={new_cookie}") == session


def test_state_is_single_use(env):
    started = env.start()
    cookie, state = started.cookies[COOKIE_NAME].value, started.json["state"]
    assert env.callback(cookie, "code=c&state=" + state).status_code == 302
    assert_error(env.callback(cookie, "code=c&state=" + state), 400, "INVALID_STATE")


def test_state_of_another_session_is_refused_and_burnt(env):
    victim = env.start()
    attacker_cookie = env.start().cookies[COOKIE_NAME].value
    state = victim.json["state"]
    assert_error(env.callback(attacker_cookie, "code=c&state=" + state), 400, "INVALID_STATE")
    assert_error(
        env.callback(victim.cookies[COOKIE_NAME].value, "code=c&state=" + state), 400, "INVALID_STATE"
    )
    assert env.worker.calls == []


def test_state_without_a_session_cookie_is_refused(env):
    state = env.start().json["state"]
    assert_error(env.callback(None, "code=c&state=" + state), 400, "INVALID_STATE")


def test_state_expires(env):
    started = env.start()
    env.clock.now += STATE_TTL_S + 1
    result = env.callback(started.cookies[COOKIE_NAME].value, "code=c&state=" + started.json["state"])
    assert_error(result, 400, "INVALID_STATE")
    assert "expired" in result.json["error"]


@pytest.mark.parametrize("code_param", ["", "code=&", "code=" + "c" * 600 + "&"])
def test_a_missing_or_too_long_code_still_uses_up_the_state(env, code_param):
    started = env.start()
    cookie, state = started.cookies[COOKIE_NAME].value, started.json["state"]
    assert_error(env.callback(cookie, code_param + "state=" + state), 400, "MISSING_AUTH_CODE")
    assert_error(env.callback(cookie, "code=c&state=" + state), 400, "INVALID_STATE")
    assert env.worker.calls == []


@pytest.mark.parametrize(
    "failure",
    [
        WorkerUnavailable("down"),
        WorkerTimeout("oauth.exchange", 30.0),
        call_error("PATREON_AUTH_FAILED", 401),
    ],
)
def test_a_failed_exchange_drops_the_tokens_of_the_session_it_was_for(env, failure):
    env.worker.answer("oauth.exchange", failure)
    started = env.start()
    result = env.callback(started.cookies[COOKIE_NAME].value, "code=c&state=" + started.json["state"])
    assert result.status_code >= 400
    exchange, forget = env.worker.calls
    assert exchange["action"] == "oauth.exchange" and forget["action"] == "oauth.forget"
    assert forget["data"] == {"session": exchange["data"]["session"]}


def test_patreon_error_is_a_400_and_burns_the_state(env):
    started = env.start()
    cookie, state = started.cookies[COOKIE_NAME].value, started.json["state"]
    result = env.callback(cookie, f"error=access_denied&state={state}")
    assert_error(result, 400, "PATREON_AUTHORIZATION_ERROR")
    assert result.json["patreon_error"] == "access_denied"
    assert_error(env.callback(cookie, "code=c&state=" + state), 400, "INVALID_STATE")


def test_callback_errors_are_escaped_html_for_a_browser(env):
    result = env.callback(None, "error=%3Cscript%3Ealert(1)%3C/script%3E", accept="text/html,*/*;q=0.8")
    assert result.status_code == 400
    assert result.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in result.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.text
    assert "PATREON_AUTHORIZATION_ERROR" in result.text


def test_a_refused_code_is_401_auth_failed_and_nobody_is_logged_in(env):
    env.worker.answer("oauth.exchange", call_error("PATREON_AUTH_FAILED", 401, "invalid_grant"))
    started = env.start()
    cookie = started.cookies[COOKIE_NAME].value
    result = env.callback(cookie, "code=used&state=" + started.json["state"])
    assert_error(result, 401, "PATREON_AUTH_FAILED")
    assert env.sessions.get(cookie) is None  # a login start writes no session row


def test_spa_token_exchange_answers_json_without_tokens(env):
    started = env.start()
    cookie = started.cookies[COOKIE_NAME].value
    result = env.client.simulate_post(
        "/api/patreon/auth/token",
        json={"code": "the-code", "state": started.json["state"]},
        headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
    )
    assert result.status_code == 200, result.text
    assert result.json == {"success": True, **EXCHANGED}
    assert "access_token" not in result.text and "refresh_token" not in result.text
    assert env.sessions.get(result.cookies[COOKIE_NAME].value).user_id == "7"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{nope", 400, "INVALID_BODY"),
        (b"[1]", 400, "INVALID_BODY"),
        (b'{"code": "\\ud800", "state": "x"}', 400, "INVALID_BODY"),  # a lone surrogate
        (b'{"state": "x"}', 400, "INVALID_STATE"),  # the state is checked (and used up) first
        (b'{"code": "c", "state": "x"}', 400, "INVALID_STATE"),
        (b'{"code": "c", "state": "x", "refresh_token": "r"}', 400, "UNKNOWN_FIELD"),
    ],
)
def test_spa_token_exchange_bad_input(env, body, status, code):
    result = env.client.simulate_post(
        "/api/patreon/auth/token", body=body, headers={"Content-Type": "application/json"}
    )
    assert_error(result, status, code)


def logged_in(env) -> str:
    started = env.start()
    result = env.callback(started.cookies[COOKIE_NAME].value, "code=c&state=" + started.json["state"])
    return result.cookies[COOKIE_NAME].value


def test_refresh_uses_the_session_own_tokens_never_the_body(env):
    cookie = logged_in(env)
    env.worker.answer(
        "oauth.refresh", {"tokens": {"expires_in": 100, "scope": "identity", "token_type": "Bearer"}}
    )
    result = env.client.simulate_post(
        "/api/patreon/auth/refresh",
        json={"refresh_token": "stolen"},
        headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
    )
    assert result.status_code == 200
    assert result.json == {
        "success": True,
        "tokens": {"expires_in": 100, "scope": "identity", "token_type": "Bearer"},
    }
    assert env.worker.last("oauth.refresh")["data"] == {"principal": {"session": cookie}}


def test_refresh_without_login(env):
    assert_error(env.client.simulate_post("/api/patreon/auth/refresh"), 401, "PATREON_AUTH_REQUIRED")
    # A login start alone makes no session: its cookie is not a session either.
    cookie = env.start().cookies[COOKIE_NAME].value
    result = env.client.simulate_post(
        "/api/patreon/auth/refresh", headers={"Cookie": f"{COOKIE_NAME}={cookie}"}
    )
    assert_error(result, 401, "PATREON_AUTH_REQUIRED")
    # A session row that never logged in (made before issue 16) still says why.
    anonymous = env.sessions.create()
    result = env.client.simulate_post(
        "/api/patreon/auth/refresh", headers={"Cookie": f"{COOKIE_NAME}={anonymous.id}"}
    )
    assert_error(result, 400, "MISSING_REFRESH_TOKEN")


def test_refused_refresh_ends_the_session(env):
    cookie = logged_in(env)
    env.worker.answer("oauth.refresh", call_error("PATREON_REAUTH_REQUIRED", 401))
    result = env.client.simulate_post(
        "/api/patreon/auth/refresh", headers={"Cookie": f"{COOKIE_NAME}={cookie}"}
    )
    assert_error(result, 401, "PATREON_REAUTH_REQUIRED")
    assert env.sessions.get(cookie) is None
    assert result.cookies[COOKIE_NAME].value == ""  # cleared


def test_logout_drops_tokens_and_session(env):
    cookie = logged_in(env)
    result = env.client.simulate_post(
        "/api/patreon/auth/logout", headers={"Cookie": f"{COOKIE_NAME}={cookie}"}
    )
    assert result.json == {"success": True, "loggedOut": True}
    assert env.worker.last("oauth.forget")["data"] == {"session": cookie}
    assert env.sessions.get(cookie) is None
    assert result.cookies[COOKIE_NAME].value == ""


def test_logout_while_the_worker_is_down_still_drops_the_tokens(env):
    cookie = logged_in(env)
    principal = tokens.session_principal(cookie)
    with env.store.transaction() as conn:
        conn.execute(
            "INSERT INTO tokens (principal, access_token, refresh_token, updated_at)"
            " VALUES (:principal, 'a', 'r', 0)",
            {"principal": principal},
        )
    env.worker.answer("oauth.forget", WorkerUnavailable("connection closed"))
    env.client.simulate_post("/api/patreon/auth/logout", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert count(env, "tokens") == 0


def test_sessions_survive_a_new_app_on_the_same_store(env, tmp_path):
    cookie = logged_in(env)
    again = SessionStore(Store(tmp_path / "bridge.sqlite3"), clock=env.clock)
    assert again.get(cookie).user_id == "7"


def test_garbage_cookies_are_no_session(env):
    assert env.sessions.from_cookie_header(None) is None
    assert env.sessions.from_cookie_header("pb_session=../../etc; ;=;pb_session") is None
    assert env.sessions.get("x" * 43) is None


# -- anonymous clients cannot fill the store -------------------------------------------------
def count(env, table: str) -> int:
    with env.store.read() as conn:
        return conn.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]


def test_a_login_start_writes_a_state_and_no_session(env):
    # Issue 16, finding 7: every anonymous auth/url used to write a session row too.
    started = env.start()
    cookie = started.cookies[COOKIE_NAME].value
    assert started.cookies[COOKIE_NAME].max_age == int(STATE_TTL_S)
    assert (count(env, "sessions"), count(env, "oauth_states")) == (0, 1)
    env.clock.now += STATE_TTL_S / 2
    again = env.start(cookie)  # the same cookie: its states are bound to the same value
    assert again.cookies[COOKIE_NAME].value == cookie
    assert (count(env, "sessions"), count(env, "oauth_states")) == (0, 2)
    # The login that succeeds writes the one session row it needs, under a new id.
    done = env.callback(cookie, "code=c&state=" + again.json["state"])
    assert done.status_code == 302
    assert count(env, "sessions") == 1 and done.cookies[COOKIE_NAME].value != cookie


def test_expired_states_go_when_logins_start_again(env):
    for _ in range(3):
        env.client.simulate_get("/auth/patreon")
    assert count(env, "oauth_states") == 3
    env.clock.now += STATE_TTL_S + 1
    env.client.simulate_get("/auth/patreon")
    assert (count(env, "sessions"), count(env, "oauth_states")) == (0, 1)


def test_a_session_keeps_only_its_newest_pending_states(env):
    first = env.start()
    cookie = first.cookies[COOKIE_NAME].value
    states = [first.json["state"]] + [env.start(cookie).json["state"] for _ in range(MAX_PENDING_STATES)]
    assert count(env, "oauth_states") == MAX_PENDING_STATES
    assert_error(env.callback(cookie, "code=c&state=" + states[0]), 400, "INVALID_STATE")
    assert env.callback(cookie, "code=c&state=" + states[-1]).status_code == 302
