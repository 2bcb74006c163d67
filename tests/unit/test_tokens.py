"""Tokens per principal: single-flight refresh under threads, the rotated pair saved
before use, invalid_grant, refresh before expiry, and the creator's seeding."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from patreon_client.http import PatreonResponse
from patreon_client.oauth import Grant, OAuthClient
from settings.config import load_config
from store.database import Store
from store.encryption import Cipher, new_key
from store.tokens import CREATOR, session_principal
from wire.protocol import ActionError
from worker.patreon_api import PatreonApi
from worker.tokens import TokenStore, label

NO_DOTENV = Path("/nonexistent/.env")
SESSION = session_principal("s" * 43)


def resp(status: int, body: Any) -> PatreonResponse:
    content = json.dumps(body).encode() if body is not None else b""
    return PatreonResponse(
        status, CaseInsensitiveDict({"Content-Type": "application/json"}), body, None, content
    )


class FakePatreon:
    """Stands in for PatreonHttp: a tiny token endpoint (rotating pairs, single-use
    refresh tokens) and API answers from ``api``; returns real PatreonResponses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refresh_valid: dict[str, str] = {}  # refresh token -> user
        self.access_valid: set[str] = set()
        self.grants = 0
        self.token_calls = 0
        self.api_calls: list[tuple[str, str | None]] = []
        self.on_api: Callable[[str, str | None], None] | None = None
        self.entered_refresh = threading.Event()
        self.release_refresh = threading.Event()
        self.release_refresh.set()

    def issue(self, access: str, refresh: str) -> None:
        self.access_valid.add(access)
        self.refresh_valid[refresh] = "user"

    def request(
        self,
        method,
        path,
        *,
        deadline,
        token=None,
        rate_key=None,
        params=None,
        json_body=None,
        form=None,
        parse_json=True,
    ):
        if path == "/api/oauth2/token":
            self.entered_refresh.set()
            self.release_refresh.wait(5)
            with self.lock:
                self.token_calls += 1
                old = form["refresh_token"]
                if self.refresh_valid.pop(old, None) is None:
                    return resp(401, {"error": "invalid_grant"})
                self.grants += 1
                access, refresh = f"access-{self.grants}", f"refresh-{self.grants}"
                self.issue(access, refresh)
                return resp(
                    200,
                    {
                        "access_token": access,
                        "refresh_token": refresh,
                        "expires_in": 2678400,
                        "scope": "identity campaigns",
                        "token_type": "Bearer",
                    },
                )
        with self.lock:
            self.api_calls.append((path, token))
        if self.on_api is not None:
            self.on_api(path, token)
        if token not in self.access_valid:
            return resp(401, {"errors": [{"code_name": "Unauthorized", "status": "401"}]})
        return resp(200, {"data": {"type": "user", "id": "1"}})


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def patreon():
    return FakePatreon()


@pytest.fixture
def clock():
    return Clock()


def make_tokens(store, patreon, clock, creator_pair=None) -> TokenStore:
    config = load_config({}, NO_DOTENV)
    return TokenStore(store, OAuthClient(config, patreon), creator_pair=creator_pair, clock=clock)


def login(tokens: TokenStore, patreon: FakePatreon, principal: str = SESSION, expires_in: int = 3600) -> None:
    patreon.issue("access-0", "refresh-0")
    tokens.save_grant(principal, Grant("access-0", "refresh-0", expires_in, "identity", "Bearer"), "42")


@pytest.fixture(params=["plaintext", "sealed"])
def store(request, tmp_path):
    """Every test here runs on a plain store and on one sealing tokens (store/encryption.py):
    the compare-and-swap of a rotation must work on sealed values too."""
    store = Store(tmp_path / "bridge.sqlite3", Cipher([new_key()]) if request.param == "sealed" else None)
    store.migrate()
    return store


def stored(store: Store, principal: str) -> dict:
    """The row, with its tokens opened (they are sealed in a sealing store)."""
    with store.read() as conn:
        row = conn.execute("SELECT * FROM tokens WHERE principal = :p", {"p": principal}).fetchone()
    if not row:
        return {}
    opened = dict(row)
    for column in ("access_token", "refresh_token"):
        opened[column] = store.cipher.open(row[column])
    return opened


def deadline() -> float:
    return time.monotonic() + 30


def test_twenty_concurrent_401s_cause_exactly_one_refresh(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    api = PatreonApi(patreon, tokens)
    patreon.access_valid.discard("access-0")  # expired at Patreon, not yet in our store
    # Hold the first refresh open: callers that arrive meanwhile queue on the lock, and
    # any that come later find the new pair. Either way, one refresh.
    patreon.release_refresh.clear()
    results, errors = [], []
    barrier = threading.Barrier(20)

    def read() -> None:
        barrier.wait()
        try:
            results.append(api.get(SESSION, "/identity", {}, deadline()))
        except Exception as ex:  # collected for the assertion below
            errors.append(ex)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for t in threads:
        t.start()
    assert patreon.entered_refresh.wait(5)
    patreon.release_refresh.set()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 20
    assert patreon.token_calls == 1 and tokens.refreshes == 1
    assert stored(store, SESSION)["access_token"] == "access-1"
    assert stored(store, SESSION)["refresh_token"] == "refresh-1"
    # Every retry used the new token.
    assert sum(1 for _, token in patreon.api_calls if token == "access-1") == 20


def test_the_rotated_pair_is_in_the_store_before_it_is_used(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    patreon.access_valid.discard("access-0")
    seen = []
    patreon.on_api = lambda path, token: seen.append((token, stored(store, SESSION)["access_token"]))
    PatreonApi(patreon, tokens).get(SESSION, "/identity", {}, deadline())
    assert seen == [("access-0", "access-0"), ("access-1", "access-1")]


def test_refresh_before_expiry_without_waiting_for_a_401(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon, expires_in=3600)
    clock.now += 3600 - 60  # within the margin
    token = tokens.current(SESSION, deadline())
    assert token.access_token == "access-1"
    assert token.expires_at == pytest.approx(clock.now + 2678400)
    assert patreon.api_calls == []


def test_invalid_grant_ends_the_session(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    patreon.refresh_valid.clear()  # revoked at Patreon
    with pytest.raises(ActionError) as caught:
        tokens.refresh(SESSION, deadline())
    assert (caught.value.status, caught.value.code) == (401, "PATREON_REAUTH_REQUIRED")
    assert stored(store, SESSION) == {}
    with pytest.raises(ActionError) as after:
        tokens.current(SESSION, deadline())
    assert after.value.code == "PATREON_AUTH_REQUIRED"


def test_a_second_401_after_a_successful_refresh_keeps_the_login(store, patreon, clock):
    # Issue 16, finding 9: Patreon has just accepted the refresh token, so a 401 for the
    # new access token does not mean the login is gone: 502 PATREON_TOKEN_REFUSED (retry),
    # not PATREON_REAUTH_REQUIRED (which ends a browser session).
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    patreon.access_valid.clear()
    patreon.issue = lambda access, refresh: patreon.refresh_valid.__setitem__(
        refresh, "user"
    )  # new ones fail too
    with pytest.raises(ActionError) as caught:
        PatreonApi(patreon, tokens).get(SESSION, "/identity", {}, deadline())
    assert (caught.value.status, caught.value.code) == (502, "PATREON_TOKEN_REFUSED")
    assert caught.value.retry_after == 1
    assert patreon.token_calls == 1
    assert stored(store, SESSION)["refresh_token"] == "refresh-1"  # the rotated pair is kept


def test_explicit_refresh_without_tokens_is_missing_refresh_token(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    with pytest.raises(ActionError) as caught:
        tokens.refresh(SESSION, deadline())
    assert (caught.value.status, caught.value.code) == (400, "MISSING_REFRESH_TOKEN")


def test_logout_during_a_refresh_discards_the_new_pair(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    patreon.release_refresh.clear()
    outcome = []

    def refresh() -> None:
        try:
            tokens.refresh(SESSION, deadline())
        except ActionError as ex:
            outcome.append(ex.code)

    t = threading.Thread(target=refresh)
    t.start()
    assert patreon.entered_refresh.wait(5)
    tokens.forget(SESSION)
    patreon.release_refresh.set()
    t.join()
    assert outcome == ["PATREON_REAUTH_REQUIRED"]
    assert stored(store, SESSION) == {}


def test_sessions_never_share_tokens(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    other = session_principal("o" * 43)
    tokens.save_grant(SESSION, Grant("a-1", "r-1", 3600, "identity", "Bearer"), "2")
    tokens.save_grant(other, Grant("a-2", "r-2", 3600, "identity", "Bearer"), "3")
    assert tokens.current(SESSION, deadline()).access_token == "a-1"
    assert tokens.current(other, deadline()).access_token == "a-2"
    assert tokens.current(SESSION, deadline()).rate_key == "user:2"


def test_creator_is_seeded_from_the_environment_then_the_rotated_pair_wins(store, patreon, clock):
    pair = ("env-access", "env-refresh")
    patreon.issue(*pair)
    tokens = make_tokens(store, patreon, clock, creator_pair=pair)
    assert tokens.current(CREATOR, deadline()).access_token == "env-access"
    tokens.refresh(CREATOR, deadline())
    # A restart with the same environment: the rotated pair from the store is used.
    restarted = make_tokens(store, patreon, clock, creator_pair=pair)
    assert restarted.current(CREATOR, deadline()).access_token == "access-1"
    assert stored(store, CREATOR)["refresh_token"] == "refresh-1"
    # An operator who sets a new pair gets it used.
    fresh = make_tokens(store, patreon, clock, creator_pair=("new-access", "new-refresh"))
    assert fresh.current(CREATOR, deadline()).access_token == "new-access"


def test_a_refused_creator_pair_is_not_reseeded_from_the_same_environment(store, patreon, clock):
    pair = ("env-access", "env-refresh")  # never valid at Patreon
    tokens = make_tokens(store, patreon, clock, creator_pair=pair)
    with pytest.raises(ActionError) as caught:
        tokens.refresh(CREATOR, deadline())
    assert caught.value.code == "PATREON_REAUTH_REQUIRED"
    with pytest.raises(ActionError) as again:
        make_tokens(store, patreon, clock, creator_pair=pair).current(CREATOR, deadline())
    assert again.value.code == "PATREON_REAUTH_REQUIRED"
    assert patreon.token_calls == 1


def test_no_creator_configured(store, patreon, clock):
    with pytest.raises(ActionError) as caught:
        make_tokens(store, patreon, clock).current(CREATOR, deadline())
    assert (caught.value.status, caught.value.code) == (503, "CREATOR_TOKEN_NOT_CONFIGURED")


def test_tokens_never_appear_in_reprs(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    token = tokens.current(SESSION, deadline())
    assert "access-0" not in repr(token) and "refresh-0" not in repr(token)
    assert "s" * 43 not in label(SESSION)


def test_a_refresh_answer_without_a_refresh_token_keeps_the_old_one(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)

    class NoRefreshToken:
        def refresh(self, refresh_token, deadline):
            assert refresh_token == "refresh-0"
            return Grant("access-9", None, 3600, "identity", "Bearer")

    tokens._oauth = NoRefreshToken()
    token = tokens.refresh(SESSION, deadline())
    assert (token.access_token, token.refresh_token) == ("access-9", "refresh-0")
    assert (stored(store, SESSION)["access_token"], stored(store, SESSION)["refresh_token"]) == (
        "access-9",
        "refresh-0",
    )


def test_a_token_without_refresh_token_is_used_until_it_expires(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    tokens.save_grant(SESSION, Grant("access-0", None, 3600, "identity", "Bearer"), "42")
    clock.now += 3600 - 60  # within the early-refresh margin, still valid
    assert tokens.current(SESSION, deadline()).access_token == "access-0"
    assert patreon.token_calls == 0
    clock.now += 61  # expired now
    with pytest.raises(ActionError) as caught:
        tokens.current(SESSION, deadline())
    assert (caught.value.status, caught.value.code) == (401, "PATREON_REAUTH_REQUIRED")


def test_a_401_for_a_token_without_refresh_token_is_reauth_required(store, patreon, clock):
    tokens = make_tokens(store, patreon, clock)
    tokens.save_grant(SESSION, Grant("access-0", None, 3600, "identity", "Bearer"), "42")
    with pytest.raises(ActionError) as caught:
        PatreonApi(patreon, tokens).get(SESSION, "/identity", {}, deadline())
    assert (caught.value.status, caught.value.code) == (401, "PATREON_REAUTH_REQUIRED")


def test_twenty_concurrent_401s_over_two_workers_cause_exactly_one_refresh(store, patreon, clock, tmp_path):
    """Two TokenStores with their own in-process locks and Store objects stand for two
    worker processes on one database: the refresh lease (store.leases) single-flights
    them, and the loser re-reads the row instead of spending the rotated refresh token."""
    first = make_tokens(store, patreon, clock)
    other_store = Store(store.path, store.cipher)
    second = TokenStore(
        other_store, OAuthClient(load_config({}, NO_DOTENV), patreon), clock=clock, holder="host/worker_01/x"
    )
    login(first, patreon)
    apis = [PatreonApi(patreon, first), PatreonApi(patreon, second)]
    patreon.access_valid.discard("access-0")
    patreon.release_refresh.clear()
    results, errors = [], []
    barrier = threading.Barrier(20)

    def read(i: int) -> None:
        barrier.wait()
        try:
            results.append(apis[i % 2].get(SESSION, "/identity", {}, deadline()))
        except Exception as ex:  # collected for the assertion below
            errors.append(ex)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    assert patreon.entered_refresh.wait(5)
    time.sleep(0.2)  # let the other worker's callers reach the lease while it is held
    patreon.release_refresh.set()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 20
    assert patreon.token_calls == 1 and first.refreshes + second.refreshes == 1
    assert stored(store, SESSION)["refresh_token"] == "refresh-1"
    assert sum(1 for _, token in patreon.api_calls if token == "access-1") == 20


def test_a_refresh_lease_held_by_a_live_worker_makes_the_other_wait_its_deadline(store, patreon, clock):
    from store import leases

    tokens = make_tokens(store, patreon, clock)
    login(tokens, patreon)
    name = "token-refresh:" + __import__("hashlib").sha256(SESSION.encode()).hexdigest()[:32]
    assert leases.acquire(store, name, "host/worker_09/x", 30.0, clock())
    with pytest.raises(ActionError) as caught:
        tokens.refresh(SESSION, time.monotonic() + 0.3)
    assert caught.value.status == 502 and "another worker" in caught.value.message
    assert patreon.token_calls == 0
    clock.now += 31  # its holder died: the lease expires and is taken over
    tokens.refresh(SESSION, deadline())
    assert patreon.token_calls == 1
