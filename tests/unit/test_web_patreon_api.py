"""API read endpoints with falcon's TestClient, a real store and a fake worker:
who may call, what is validated, what the worker receives, how its errors look."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing
import pytest

from settings.config import load_config
from store.database import Store
from tests.fake_worker import FakeWorker, call_error
from web.app import create_app
from web.errors import ApiError
from web.patreon_api import with_success
from web.sessions import COOKIE_NAME, SessionStore
from wire.client import WorkerTimeout, WorkerUnavailable

NO_DOTENV = Path("/nonexistent/.env")
KEY = "unit-bridge-key-0123456789"
MEMBER_ID = "5f1b8d4e-0c1a-4b9b-9a6e-2f3c4d5e6f70"
DOC = {"data": [{"type": "member", "id": MEMBER_ID}], "meta": {"pagination": {"total": 1}}}


@pytest.fixture
def setup(tmp_path):
    config = load_config({"BRIDGE_API_KEY": KEY}, NO_DOTENV)
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    worker = FakeWorker()
    for action in (
        "identity.get",
        "campaigns.list",
        "members.list",
        "members.get",
        "posts.list",
        "posts.get",
    ):
        worker.answer(action, DOC)
    client = falcon.testing.TestClient(create_app(config, worker, store))
    return client, worker, SessionStore(store)


@pytest.fixture
def client(setup):
    return setup[0]


@pytest.fixture
def worker(setup):
    return setup[1]


@pytest.fixture
def sessions(setup):
    return setup[2]


SERVER = {"Authorization": f"Bearer {KEY}"}


def session_cookie(sessions: SessionStore, user_id: str = "7") -> dict[str, str]:
    session = sessions.login(None, "A" * 43 if user_id == "7" else "B" * 43, user_id, ["1001"])
    return {"Cookie": f"{COOKIE_NAME}={session.id}"}


def assert_error(result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.json["success"] is False and result.json["code"] == code and result.json["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/patreon/user",
        "/api/patreon/campaigns",
        "/api/patreon/campaigns/1001/members",
        "/api/patreon/campaigns/1001/posts",
        f"/api/patreon/members/{MEMBER_ID}",
        "/api/patreon/posts/42",
    ],
)
def test_every_read_needs_a_login_or_the_server_key(client, sessions, path):
    assert_error(client.simulate_get(path), 401, "PATREON_AUTH_REQUIRED")
    anonymous = sessions.create()
    assert_error(
        client.simulate_get(path, headers={"Cookie": f"{COOKIE_NAME}={anonymous.id}"}),
        401,
        "PATREON_AUTH_REQUIRED",
    )
    assert_error(client.simulate_get(path, headers={"Authorization": "Bearer wrong"}), 401, "INVALID_API_KEY")
    assert client.simulate_get(path, headers=SERVER).status_code == 200
    assert client.simulate_get(path, headers=session_cookie(sessions)).status_code == 200


def test_session_and_server_key_become_the_right_principal(client, worker, sessions):
    client.simulate_get("/api/patreon/user", headers=session_cookie(sessions))
    assert worker.last("identity.get")["data"] == {"principal": {"session": "A" * 43}, "params": {}}
    client.simulate_get("/api/patreon/user", headers=SERVER)
    assert worker.last("identity.get")["data"]["principal"] == "creator"


def test_the_document_comes_back_with_success(client):
    result = client.simulate_get("/api/patreon/campaigns/1001/members", headers=SERVER)
    assert result.json == {"success": True, **DOC}


def test_listing_passes_normalized_patreon_parameters(client, worker):
    query = (
        "include=currently_entitled_tiers,user&fields%5Bmember%5D=full_name,%20email&sort=-pledge_relationship_start"
        "&page%5Bcount%5D=0100&page%5Bcursor%5D=eyJjIjoibWVtYmVycyJ9"
    )
    assert (
        client.simulate_get(
            "/api/patreon/campaigns/1001/members", query_string=query, headers=SERVER
        ).status_code
        == 200
    )
    call = worker.last("members.list")
    assert call["data"] == {
        "principal": "creator",
        "campaign_id": "1001",
        "all": False,
        "params": {
            "include": "currently_entitled_tiers,user",
            "fields[member]": "full_name,email",
            "sort": "-pledge_relationship_start",
            "page[count]": "100",
            "page[cursor]": "eyJjIjoibWVtYmVycyJ9",
        },
    }
    assert call["timeout_s"] == 30.0


def test_all_true_asks_for_every_page_with_the_long_timeout_and_no_blind_retry(client, worker):
    client.simulate_get("/api/patreon/campaigns/1001/posts", query_string="all=true", headers=SERVER)
    call = worker.last("posts.list")
    assert call["data"]["all"] is True
    assert call["timeout_s"] >= 120 and call["retry"] is False


@pytest.mark.parametrize(
    "path, query, code",
    [
        ("/api/patreon/campaigns/abc/members", None, "INVALID_CAMPAIGN_ID"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcount%5D=0", "INVALID_PAGE_COUNT"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcount%5D=1001", "INVALID_PAGE_COUNT"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcount%5D=ten", "INVALID_PAGE_COUNT"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcount%5D=%C2%B2", "INVALID_PAGE_COUNT"),  # "²"
        # "$" would take a trailing newline: every id and parameter is matched whole.
        ("/api/patreon/campaigns/1001%0A/members", None, "INVALID_CAMPAIGN_ID"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcount%5D=10%0A", "INVALID_PAGE_COUNT"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcursor%5D=abc%0A", "INVALID_CURSOR"),
        ("/api/patreon/campaigns/1001/members", "fields%5Bmember%5D%0A=email", "UNKNOWN_PARAMETER"),
        ("/api/patreon/posts/12%0A", None, "INVALID_POST_ID"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcursor%5D=" + "a" * 600, "INVALID_CURSOR"),
        ("/api/patreon/campaigns/1001/members", "page%5Bcursor%5D=%3Cx%3E", "INVALID_CURSOR"),
        ("/api/patreon/campaigns/1001/members", "page%5Bsize%5D=10", "UNKNOWN_PARAMETER"),
        ("/api/patreon/campaigns/1001/members", "include=user&include=address", "INVALID_PARAMETER"),
        ("/api/patreon/campaigns/1001/members", "include=user;drop", "INVALID_INCLUDE"),
        ("/api/patreon/campaigns/1001/members", "fields%5Bnope%5D=a", "INVALID_FIELDS"),
        ("/api/patreon/campaigns/1001/members", "fields%5Bmember%5D=Full-Name", "INVALID_FIELDS"),
        ("/api/patreon/campaigns/1001/members", "sort=--x", "INVALID_SORT"),
        ("/api/patreon/campaigns/1001/members", "all=maybe", "INVALID_PARAMETER"),
        ("/api/patreon/members/not-a-uuid", None, "INVALID_MEMBER_ID"),
        ("/api/patreon/posts/12ab", None, "INVALID_POST_ID"),
        ("/api/patreon/posts/12", "sort=title", "UNKNOWN_PARAMETER"),
        ("/api/patreon/user", "all=true", "UNKNOWN_PARAMETER"),
    ],
)
def test_bad_input_is_a_400_with_a_code_and_never_reaches_the_worker(client, worker, path, query, code):
    assert_error(client.simulate_get(path, query_string=query, headers=SERVER), 400, code)
    assert worker.calls == []


def test_worker_errors_keep_their_status_and_code(client, worker):
    worker.answer("members.list", call_error("RATE_LIMITED", 429, "slow down", retry_after=7))
    result = client.simulate_get("/api/patreon/campaigns/1001/members", headers=SERVER)
    assert_error(result, 429, "RATE_LIMITED")
    assert result.headers["Retry-After"] == "7"
    worker.answer("members.get", call_error("NOT_FOUND", 404))
    assert_error(client.simulate_get(f"/api/patreon/members/{MEMBER_ID}", headers=SERVER), 404, "NOT_FOUND")
    worker.answer("posts.get", call_error("PATREON_FORBIDDEN", 403, "needs 'campaigns.posts'"))
    assert_error(client.simulate_get("/api/patreon/posts/1", headers=SERVER), 403, "PATREON_FORBIDDEN")
    worker.answer("campaigns.list", call_error("PATREON_UPSTREAM_ERROR", 502))
    assert_error(client.simulate_get("/api/patreon/campaigns", headers=SERVER), 502, "PATREON_UPSTREAM_ERROR")


def test_worker_down_or_slow(client, worker):
    worker.answer("identity.get", WorkerUnavailable("connection closed"))
    result = client.simulate_get("/api/patreon/user", headers=SERVER)
    assert_error(result, 503, "PATREON_SERVICE_UNAVAILABLE")
    assert int(result.headers["Retry-After"]) >= 1
    worker.answer("identity.get", WorkerTimeout("identity.get", 30))
    assert client.simulate_get("/api/patreon/user", headers=SERVER).status_code == 504


def test_a_login_patreon_no_longer_accepts_ends_the_session(client, worker, sessions):
    headers = session_cookie(sessions)
    worker.answer("identity.get", call_error("PATREON_REAUTH_REQUIRED", 401))
    assert_error(client.simulate_get("/api/patreon/user", headers=headers), 401, "PATREON_REAUTH_REQUIRED")
    assert_error(client.simulate_get("/api/patreon/user", headers=headers), 401, "PATREON_AUTH_REQUIRED")


def test_two_sessions_each_act_as_themselves(client, worker, sessions):
    alice, bob = session_cookie(sessions, "7"), session_cookie(sessions, "8")
    client.simulate_get("/api/patreon/user", headers=alice)
    client.simulate_get("/api/patreon/user", headers=bob)
    principals = [c["data"]["principal"] for c in worker.calls]
    assert principals == [{"session": "A" * 43}, {"session": "B" * 43}]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (b'{"data": []}', {"success": True, "data": []}),
        (b"  {}", {"success": True}),
        (b"{ }", {"success": True}),
        (
            b'{\n "data": {"id": "1"}, "meta": {"n": 2}}',
            {"success": True, "data": {"id": "1"}, "meta": {"n": 2}},
        ),
    ],
)
def test_success_is_spliced_into_the_document_without_decoding_it(document, expected):
    assert json.loads(with_success(document)) == expected


def test_a_non_object_document_is_an_upstream_error():
    with pytest.raises(ApiError) as caught:
        with_success(b"[1, 2]")
    assert caught.value.code == "PATREON_UPSTREAM_ERROR"
