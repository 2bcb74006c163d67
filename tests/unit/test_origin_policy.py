"""Cookie-authenticated POSTs check where they come from (issue 16, finding 8): an
Origin (or Referer) that is not an allowed origin is 403 ``CROSS_ORIGIN_REQUEST``, a
body that is not ``application/json`` is 415 ``JSON_REQUIRED``, and nothing reaches
the worker or the store. Callers with the server key, and same-origin pages, keep
working."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_web_auth import EXCHANGED, Env, logged_in
from web.sessions import COOKIE_NAME

EVIL = "https://evil.example"
OWN = "http://falconframework.org"  # falcon.testing's default host
KEY = "origin-test-server-key"
REFRESHED = {"tokens": {"expires_in": 100, "scope": "identity", "token_type": "Bearer"}}


@pytest.fixture
def env(tmp_path):
    env = Env(tmp_path, {"BRIDGE_API_KEY": KEY, "ALLOWED_ORIGINS": "https://site.example"})
    env.worker.answer("oauth.refresh", REFRESHED)
    return env


def post(env, path: str, cookie: str | None, headers: dict[str, str] | None = None, **kw):
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
    return env.client.simulate_post(path, headers=headers, **kw)


def assert_error(result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.json["success"] is False and result.json["code"] == code


@pytest.mark.parametrize("path", ["/api/patreon/auth/refresh", "/api/patreon/auth/logout"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Referer": EVIL + "/page"},
        {"Origin": EVIL, "Referer": OWN + "/demo"},
    ],
)
def test_a_foreign_origin_is_refused_before_anything_happens(env, path, headers):
    cookie = logged_in(env)
    result = post(env, path, cookie, {**headers, "Content-Type": "application/json"}, body="{}")
    assert_error(result, 403, "CROSS_ORIGIN_REQUEST")
    assert env.sessions.get(cookie) is not None  # logout did not happen
    assert "oauth.refresh" not in [c["action"] for c in env.worker.calls]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_415(env, content_type):
    cookie = logged_in(env)
    result = post(
        env, "/api/patreon/auth/logout", cookie, {"Origin": OWN, "Content-Type": content_type}, body="{}"
    )
    assert_error(result, 415, "JSON_REQUIRED")
    assert env.sessions.get(cookie) is not None


def test_the_token_exchange_checks_origin_and_type_too(env):
    started = env.start()
    cookie = started.cookies[COOKIE_NAME].value
    body = json.dumps({"code": "c", "state": started.json["state"]})
    assert_error(
        post(
            env,
            "/api/patreon/auth/token",
            cookie,
            {"Origin": EVIL, "Content-Type": "application/json"},
            body=body,
        ),
        403,
        "CROSS_ORIGIN_REQUEST",
    )
    assert_error(
        post(env, "/api/patreon/auth/token", cookie, {"Content-Type": "text/plain"}, body=body),
        415,
        "JSON_REQUIRED",
    )
    assert "oauth.exchange" not in [c["action"] for c in env.worker.calls]
    # The state was not used up by the refused requests: the real page still logs in.
    ok = post(
        env, "/api/patreon/auth/token", cookie, {"Origin": OWN, "Content-Type": "application/json"}, body=body
    )
    assert ok.status_code == 200, ok.text
    assert ok.json["user"] == EXCHANGED["user"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": OWN},
        {"Origin": "https://site.example"},  # ALLOWED_ORIGINS
        {"Referer": OWN + "/demo"},
        {},  # no browser headers at all: not a cross-site request
    ],
)
def test_allowed_origins_and_json_pass(env, headers):
    cookie = logged_in(env)
    refresh = post(
        env, "/api/patreon/auth/refresh", cookie, {**headers, "Content-Type": "application/json"}, body="{}"
    )
    assert refresh.status_code == 200, refresh.text
    # A POST with no body needs no Content-Type (the demo page's logout).
    assert post(env, "/api/patreon/auth/logout", cookie, headers).json["loggedOut"] is True


def test_the_server_key_is_not_a_browser(env):
    result = post(env, "/api/patreon/auth/logout", None, {"Authorization": f"Bearer {KEY}", "Origin": EVIL})
    assert result.status_code == 200, result.text


def test_allowed_origins_must_be_named(tmp_path):
    from settings.config import ConfigError, load_config
    from tests.unit.test_web_auth import NO_DOTENV

    with pytest.raises(ConfigError, match="ALLOWED_ORIGINS"):
        load_config({"ALLOWED_ORIGINS": "*"}, NO_DOTENV)
