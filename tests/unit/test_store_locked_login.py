"""With the store locked by another process, the login endpoints that must write
answer 503 ``STORE_UNAVAILABLE`` with ``Retry-After``, not 500 (issue 16, finding 6).

Another connection holds the write lock (``BEGIN IMMEDIATE``), as a foreign process
would; the store's busy timeout is shortened for this test only, so it does not wait
the full 5 s."""

from __future__ import annotations

import sqlite3

import pytest

from tests.unit.test_web_auth import Env
from web.sessions import COOKIE_NAME


@pytest.fixture
def locked_env(tmp_path):
    env = Env(tmp_path)
    env.store.write_timeout_s = 0.05  # the budget Store takes from BUSY_TIMEOUT_MS (5 s) when built
    started = env.start()
    assert started.status_code == 200
    cookie = started.cookies[COOKIE_NAME].value
    state = started.json["state"]
    foreign = sqlite3.connect(env.store.path, isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    yield env, cookie, state
    foreign.execute("ROLLBACK")
    foreign.close()


def assert_store_unavailable(result) -> None:
    assert result.status_code == 503, result.text
    assert result.headers.get("Retry-After", "").isdigit()


def test_auth_url_answers_503_store_unavailable(locked_env):
    env, _cookie, _state = locked_env
    result = env.start()
    assert_store_unavailable(result)
    assert result.json["code"] == "STORE_UNAVAILABLE"


def test_the_callback_answers_503_store_unavailable_as_json(locked_env):
    env, cookie, state = locked_env
    result = env.callback(cookie, f"code=abc&state={state}")
    assert_store_unavailable(result)
    assert result.json["code"] == "STORE_UNAVAILABLE"


def test_the_callback_answers_503_store_unavailable_as_a_page(locked_env):
    env, cookie, state = locked_env
    result = env.callback(cookie, f"code=abc&state={state}", accept="text/html")
    assert_store_unavailable(result)
    assert "STORE_UNAVAILABLE" in result.text and result.headers["content-type"].startswith("text/html")


def test_the_token_exchange_answers_503_store_unavailable(locked_env):
    env, cookie, state = locked_env
    result = env.client.simulate_post(
        "/api/patreon/auth/token",
        json={"code": "abc", "state": state},
        headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
    )
    assert_store_unavailable(result)
    assert result.json["code"] == "STORE_UNAVAILABLE"
