"""A session's tokens end with it (issue 16, finding 5): a session ended by
``PATREON_REAUTH_REQUIRED`` forgets its token pair, and the worker's sweep removes
pairs whose session is gone."""

from __future__ import annotations

import pytest

from store import tokens
from store.tokens import CREATOR, session_principal, sweep_orphans
from tests.fake_worker import call_error
from tests.unit.test_web_auth import Env, logged_in
from web.sessions import COOKIE_NAME
from worker.token_sweep import OrphanTokenSweeper

NOW = 1_700_000_000.0


def put_tokens(store, principal: str, updated_at: float) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO tokens (principal, access_token, refresh_token, updated_at) VALUES (:p, 'a', 'r', :at)",
            {"p": principal, "at": updated_at},
        )


def principals(store) -> set[str]:
    with store.read() as conn:
        return {row["principal"] for row in conn.execute("SELECT principal FROM tokens")}


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [("POST", "/api/patreon/auth/refresh", "oauth.refresh"), ("GET", "/api/patreon/user", "identity.get")],
)
def test_a_session_ended_by_reauth_required_forgets_its_tokens(env, method, path, action):
    cookie = logged_in(env)
    put_tokens(env.store, session_principal(cookie), NOW)  # what the worker stored at login
    env.worker.answer(action, call_error("PATREON_REAUTH_REQUIRED", 401))
    result = env.client.simulate_request(method, path, headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert result.status_code == 401 and result.json["code"] == "PATREON_REAUTH_REQUIRED"
    assert env.sessions.get(cookie) is None
    assert principals(env.store) == set()


def test_the_sweep_removes_orphans_and_nothing_else(store):
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO sessions (id, user_id, campaign_ids, created_at, expires_at)"
            " VALUES (:id, '7', '[]', 0, :expires_at)",
            {"id": "L" * 43, "expires_at": NOW + 3600},
        )
    put_tokens(store, session_principal("L" * 43), NOW - 7200)  # its session lives: kept
    put_tokens(store, session_principal("O" * 43), NOW - 7200)  # no session: an orphan
    put_tokens(store, session_principal("F" * 43), NOW - 10)  # a login finishing: too young
    put_tokens(store, CREATOR, NOW - 7200)  # the creator's is nobody's session
    assert sweep_orphans(store, now=NOW) == 1
    assert principals(store) == {session_principal("L" * 43), session_principal("F" * 43), CREATOR}
    assert sweep_orphans(store, now=NOW + tokens.ORPHAN_GRACE_S) == 1  # now it is old enough
    assert principals(store) == {session_principal("L" * 43), CREATOR}


def test_the_sweeper_runs_on_its_own_and_stops(store):
    put_tokens(store, session_principal("O" * 43), 0.0)
    sweeper = OrphanTokenSweeper(store, interval_s=0.01)
    sweeper.start()
    try:
        sweeper._thread.join(0.5)  # it keeps running until stopped
        assert sweeper._thread.is_alive()
    finally:
        sweeper.stop()
        sweeper._thread.join(5)
    assert principals(store) == set() and not sweeper._thread.is_alive()
