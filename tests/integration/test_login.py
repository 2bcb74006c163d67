"""Login with Patreon through the real stack and the sandbox: the browser flow with
real redirects and a cookie jar, every way a state or a code can be misused, two
users at once, single-flight refresh, the creator's rotated pair, logout, a web
restart, and logs that never carry a token, a code, a cookie or an email."""

from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.stack import Stack, body
from tests.browser import Browser, query_of

KEY = "integration-login-bridge-key-0001"
SERVER = {"Authorization": f"Bearer {KEY}"}
JSON = {"Accept": "application/json"}
CREATOR_ENV_ACCESS = "sandbox-creator-access-token"

# Everything that must never reach a log, collected as the tests meet it.
NEVER_LOGGED: set[str] = {KEY}


@pytest.fixture(scope="module")
def stack():
    # POST_LOGIN_URL points at the user endpoint so a browser that follows every
    # redirect ends on its own identity.
    with Stack({"BRIDGE_API_KEY": KEY, "POST_LOGIN_URL": "/api/patreon/user"}, name="pb-login") as running:
        yield running


def db(stack: Stack) -> sqlite3.Connection:
    conn = sqlite3.connect(stack.dir / "var" / "bridge.sqlite3", timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def token_row(stack: Stack, principal: str) -> dict | None:
    """The tokens row, its sealed tokens opened with the stack's key."""
    with db(stack) as conn:
        row = conn.execute("SELECT * FROM tokens WHERE principal = ?", (principal,)).fetchone()
    if row is None:
        return None
    cipher = stack.cipher()
    return {
        **dict(row),
        "access_token": cipher.open(row["access_token"]),
        "refresh_token": cipher.open(row["refresh_token"]),
    }


def grants(stack: Stack) -> dict[str, int]:
    return body(stack.sandbox("GET", "/_sandbox/state"))["token_grants"]


def remember(browser: Browser, *values: str | None) -> None:
    NEVER_LOGGED.update(v for v in (browser.cookie, *values) if v)


def assert_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text[:300]
    assert body(resp)["success"] is False and body(resp)["code"] == code


def test_browser_flow_ends_logged_in_with_name_and_email(stack):
    browser = Browser(stack)
    final = browser.login("2")
    assert final.status_code == 200, final.text[:300]
    assert final.url == stack.url("/api/patreon/user")
    callback = final.history[-1]
    assert callback.status_code == 302 and callback.url.startswith(stack.url("/auth/patreon/callback?"))
    set_cookie = callback.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    user = body(final)["data"]
    assert user["id"] == "2"
    assert user["attributes"]["full_name"]
    assert "@" in user["attributes"]["email"]
    # The memberships and their tiers come by default.
    assert any(item["type"] == "member" for item in body(final).get("included", []))
    remember(browser, user["attributes"]["email"], query_of(callback.url)["code"])
    row = token_row(stack, "session:" + browser.cookie)
    assert row["patreon_user_id"] == "2"
    NEVER_LOGGED.update({row["access_token"], row["refresh_token"]})


def test_without_a_session_the_api_answers_401(stack):
    assert_error(stack.get("/api/patreon/user"), 401, "PATREON_AUTH_REQUIRED")
    assert_error(
        stack.get("/api/patreon/user", headers={"Authorization": "Bearer wrong"}), 401, "INVALID_API_KEY"
    )


def test_a_state_from_another_session_is_rejected(stack):
    victim, attacker = Browser(stack), Browser(stack)
    callback = victim.authorize("3")
    attacker.get("/api/patreon/auth/url")  # the attacker has a session of its own
    assert_error(attacker.http.get(callback, headers=JSON, allow_redirects=False), 400, "INVALID_STATE")
    # Presented once by the wrong session, the state is burnt for the right one too.
    assert_error(victim.http.get(callback, headers=JSON, allow_redirects=False), 400, "INVALID_STATE")
    remember(victim, query_of(callback)["code"])
    remember(attacker)


def test_a_state_works_once_and_a_code_works_once(stack):
    browser = Browser(stack)
    callback = browser.authorize("3")
    first = browser.http.get(callback, headers=JSON, allow_redirects=False)
    assert first.status_code == 302
    assert_error(browser.http.get(callback, headers=JSON, allow_redirects=False), 400, "INVALID_STATE")
    # The used code with a fresh, valid state: Patreon (the sandbox) refuses it.
    code = query_of(callback)["code"]
    state = body(browser.get("/api/patreon/auth/url"))["state"]
    reused = browser.get(
        "/auth/patreon/callback", params={"code": code, "state": state}, allow_redirects=False
    )
    assert_error(reused, 401, "PATREON_AUTH_FAILED")
    remember(browser, code, state)


def test_patreon_error_is_rejected_with_its_code_as_html_or_json(stack):
    browser = Browser(stack)
    callback = browser.authorize("2", decision="deny")
    assert query_of(callback)["error"] == "access_denied"
    page = browser.http.get(callback, allow_redirects=False)  # a browser asks for HTML
    assert page.status_code == 400
    assert page.headers["Content-Type"].startswith("text/html")
    assert "PATREON_AUTHORIZATION_ERROR" in page.text and "access_denied" in page.text
    injected = browser.get(
        "/auth/patreon/callback",
        params={"error": "<img src=x onerror=alert(1)>"},
        headers={"Accept": "text/html"},
    )
    assert injected.status_code == 400 and "<img" not in injected.text and "&lt;img" in injected.text
    remember(browser)


def test_single_page_app_exchange_returns_the_user_and_no_token(stack):
    browser = Browser(stack)
    start = body(browser.get("/api/patreon/auth/url", params={"scopes": "identity,identity[email]"}))
    assert "scope=identity%20identity%5Bemail%5D" in start["authUrl"]
    consent = browser.http.get(start["authUrl"], timeout=10)
    back = query_of(browser.consent(consent, "4"))
    assert back["state"] == start["state"]
    resp = browser.post("/api/patreon/auth/token", json={"code": back["code"], "state": back["state"]})
    assert resp.status_code == 200, resp.text
    answer = body(resp)
    assert answer["user"]["id"] == "4"
    assert set(answer["tokens"]) == {"expires_in", "scope", "token_type"}
    assert answer["tokens"]["scope"] == "identity identity[email]"
    row = token_row(stack, "session:" + browser.cookie)
    assert row["access_token"] not in resp.text and row["refresh_token"] not in resp.text
    again = browser.post("/api/patreon/auth/token", json={"code": back["code"], "state": back["state"]})
    assert_error(again, 400, "INVALID_STATE")
    # A fresh state without a code: refused, and the state is used up all the same.
    fresh = body(browser.get("/api/patreon/auth/url"))["state"]
    missing = browser.post("/api/patreon/auth/token", json={"state": fresh})
    assert_error(missing, 400, "MISSING_AUTH_CODE")
    burnt = browser.post("/api/patreon/auth/token", json={"code": back["code"], "state": fresh})
    assert_error(burnt, 400, "INVALID_STATE")
    remember(
        browser,
        back["code"],
        row["access_token"],
        row["refresh_token"],
        answer["user"]["attributes"].get("email"),
    )


def test_two_users_never_see_each_other_under_concurrency(stack):
    alice, bob = Browser(stack), Browser(stack)
    alice.login("5")
    bob.login("6")
    who = {"5": alice.cookie, "6": bob.cookie}

    def read(i: int) -> tuple[str, dict]:
        expected = "5" if i % 3 == 0 else "6" if i % 3 == 1 else "1"
        if expected == "1":
            resp = requests.get(stack.url("/api/patreon/user"), headers=SERVER, timeout=30)
        else:
            resp = requests.get(
                stack.url("/api/patreon/user"), cookies={"pb_session": who[expected]}, timeout=30
            )
        return expected, body(resp)

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(read, range(90)))
    emails = {}
    for expected, answer in results:
        assert answer["success"] is True, answer
        assert answer["data"]["id"] == expected
        emails.setdefault(expected, set()).add(answer["data"]["attributes"]["email"])
    assert all(len(found) == 1 for found in emails.values())
    assert len({next(iter(found)) for found in emails.values()}) == 3
    for found in emails.values():
        NEVER_LOGGED.update(found)
    remember(alice)
    remember(bob)


def test_expired_token_twenty_concurrent_calls_cause_one_refresh(stack):
    browser = Browser(stack)
    browser.login("7")
    principal = "session:" + browser.cookie
    old = token_row(stack, principal)
    before = grants(stack)["refresh_token"]
    expired = stack.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": old["access_token"]})
    assert expired.status_code == 200, expired.text
    cookie = browser.cookie

    def read(_: int) -> tuple[int, dict]:
        # The status and body only: a live Response would keep its connection open.
        resp = requests.get(stack.url("/api/patreon/user"), cookies={"pb_session": cookie}, timeout=30)
        return resp.status_code, body(resp)

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(read, range(20)))
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert [status for status, _ in answers] == [200] * 20, [doc for status, doc in answers if status != 200]
    assert {doc["data"]["id"] for _, doc in answers} == {"7"}
    refreshes = grants(stack)["refresh_token"] - before
    print(f"\n20 concurrent calls on an expired token: {refreshes} refresh, all 200 in {elapsed_ms:.0f} ms")
    assert refreshes == 1
    new = token_row(stack, principal)
    assert new["refresh_token"] != old["refresh_token"] and new["access_token"] != old["access_token"]
    # The old refresh token is dead at Patreon (the sandbox).
    refused = stack.sandbox(
        "POST",
        "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": old["refresh_token"],
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
        },
    )
    assert refused.status_code == 401 and body(refused)["error"] == "invalid_grant"
    remember(browser, old["access_token"], old["refresh_token"], new["access_token"], new["refresh_token"])


def test_explicit_refresh_then_a_revoked_login_ends_the_session(stack):
    browser = Browser(stack)
    browser.login("8")
    principal = "session:" + browser.cookie
    before = grants(stack)["refresh_token"]
    refreshed = browser.post("/api/patreon/auth/refresh", json={"refresh_token": "ignored"})
    assert refreshed.status_code == 200, refreshed.text
    assert set(body(refreshed)["tokens"]) == {"expires_in", "scope", "token_type"}
    assert grants(stack)["refresh_token"] == before + 1
    row = token_row(stack, principal)
    remember(browser, row["access_token"], row["refresh_token"])
    stack.sandbox("POST", "/_sandbox/tokens/revoke", json={"token": row["refresh_token"]})
    gone = browser.post("/api/patreon/auth/refresh")
    assert_error(gone, 401, "PATREON_REAUTH_REQUIRED")
    assert token_row(stack, principal) is None
    assert_error(browser.get("/api/patreon/user"), 401, "PATREON_AUTH_REQUIRED")
    assert_error(Browser(stack).post("/api/patreon/auth/refresh"), 401, "PATREON_AUTH_REQUIRED")


def test_the_creator_token_refreshes_and_its_rotated_pair_outlives_a_worker_restart(stack):
    assert stack.get("/api/patreon/campaigns", headers=SERVER).status_code == 200
    before = grants(stack)["refresh_token"]
    stack.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": CREATOR_ENV_ACCESS})
    assert stack.get("/api/patreon/campaigns", headers=SERVER).status_code == 200
    assert grants(stack)["refresh_token"] == before + 1
    rotated = token_row(stack, "creator")
    assert rotated["access_token"] != CREATOR_ENV_ACCESS
    NEVER_LOGGED.update({rotated["access_token"], rotated["refresh_token"]})
    # The environment still names the old (now dead) pair: a restarted worker must
    # use the stored one, without another refresh.
    old_pid = stack.pid("patreon:worker_00")
    out = stack.ctl("restart", "patreon:worker_00")
    assert out.returncode == 0, out.stdout + out.stderr
    stack.wait_healthy()
    assert stack.pid("patreon:worker_00") != old_pid
    assert stack.get("/api/patreon/campaigns", headers=SERVER).status_code == 200
    assert grants(stack)["refresh_token"] == before + 1
    assert token_row(stack, "creator")["access_token"] == rotated["access_token"]


def test_a_session_survives_a_web_restart_and_logout_ends_it(stack):
    browser = Browser(stack)
    browser.login("9")
    principal = "session:" + browser.cookie
    cookie = browser.cookie
    out = stack.ctl("restart", "patreon:web_00")
    assert out.returncode == 0, out.stdout + out.stderr
    stack.wait_healthy()
    assert body(browser.get("/api/patreon/user"))["data"]["id"] == "9"
    remember(browser)
    logout = browser.post("/api/patreon/auth/logout")
    assert body(logout) == {"success": True, "loggedOut": True}
    assert browser.cookie is None  # the cookie was cleared
    assert token_row(stack, principal) is None
    resp = requests.get(stack.url("/api/patreon/user"), cookies={"pb_session": cookie}, timeout=10)
    assert_error(resp, 401, "PATREON_AUTH_REQUIRED")


def test_no_log_carries_a_token_code_cookie_or_email(stack):
    with db(stack) as conn:
        for row in conn.execute("SELECT access_token, refresh_token FROM tokens"):
            NEVER_LOGGED.update(stack.cipher().open(v) for v in row if v)
    NEVER_LOGGED.discard("")
    logs = {path.name: path.read_text(errors="replace") for path in stack.log_files()}
    assert logs, "no logs found"
    for name, text in logs.items():
        leaked = sorted(v[:12] + "..." for v in NEVER_LOGGED if v in text)
        assert not leaked, f"{name} carries {leaked}"
        assert "@example.com" not in text, f"{name} carries an email"
        assert "pb_session=" not in text, f"{name} carries a cookie"
    assert "x-patreon-uuid" in logs["worker_00.log"]
    assert len(NEVER_LOGGED) > 20, "the test collected too little to be meaningful"
    assert os.path.getsize(stack.dir / "var" / "log" / "web_00.log") > 0
