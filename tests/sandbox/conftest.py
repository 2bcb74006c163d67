"""Fixtures for the sandbox's contract tests: an in-memory sandbox on a fake clock
with a fake webhook transport, a falcon TestClient, and an OAuth helper that logs in
the way a real client does (authorize form POST, then the token endpoint)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from falcon import testing

from sandbox.app import build
from sandbox.settings import SandboxSettings

USER_AGENT = "sandbox-contract-tests/1.0"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:6969/auth/patreon/callback"
CREATOR_TOKEN = "creator-access-token-for-tests"
CREATOR_REFRESH = "creator-refresh-token-for-tests"
ALL_SCOPES = (
    "identity identity[email] identity.memberships campaigns w:campaigns.webhook "
    "campaigns.members campaigns.members[email] campaigns.members.address campaigns.posts"
)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float


class FakeTransport:
    """Records webhook deliveries; answers with queued statuses (or raises)."""

    def __init__(self) -> None:
        self.calls: list[Delivery] = []
        self.answers: deque[int | Exception] = deque()
        self.default: int | Exception = 200

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        assert isinstance(body, bytes)
        self.calls.append(Delivery(url, body, dict(headers), timeout_s))
        answer = self.answers.popleft() if self.answers else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_settings(**overrides: Any) -> SandboxSettings:
    base = SandboxSettings(
        members=60,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=(REDIRECT_URI,),
        creator_access_token=CREATOR_TOKEN,
        creator_refresh_token=CREATOR_REFRESH,
        rate_limit_per_2_seconds=10_000,
        rate_limit_per_minute=10_000,
        webhook_retry_s=5.0,
        webhook_pause_after=3,
    )
    return base.replace(**overrides)


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_sandbox(clock, transport, sleeps):
    def make(**overrides: Any):
        return build(
            test_settings(**overrides),
            clock=clock,
            wall_clock=lambda: 1_750_000_000.0 + clock(),
            transport=transport,
            sleep=sleeps.append,
        )

    return make


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


@pytest.fixture
def client(sandbox) -> testing.TestClient:
    return testing.TestClient(sandbox.app, headers={"User-Agent": USER_AGENT})


class OAuth:
    """Drives the OAuth flow and the API like a Patreon client would.

    Test modules reach the test configuration through this fixture's attributes
    (never `from conftest import ...`, which breaks once other test folders have
    their own conftest.py).
    """

    client_id = CLIENT_ID
    client_secret = CLIENT_SECRET
    redirect_uri = REDIRECT_URI
    creator_token = CREATOR_TOKEN
    creator_refresh = CREATOR_REFRESH
    all_scopes = ALL_SCOPES
    user_agent = USER_AGENT

    def __init__(self, client: testing.TestClient):
        self.client = client

    def authorize(self, scope: str = "identity", user_id: str = "1", state: str = "s1") -> str:
        form = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": state,
            "user_id": user_id,
            "decision": "allow",
        }
        result = self.client.simulate_post(
            "/oauth2/authorize",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert result.status_code == 302, result.text
        query = parse_qs(urlsplit(result.headers["Location"]).query)
        assert query["state"] == [state]
        return query["code"][0]

    def token(self, **fields: str) -> testing.Result:
        form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET} | fields
        return self.client.simulate_post(
            "/api/oauth2/token",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def exchange(self, code: str) -> dict[str, Any]:
        result = self.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI)
        assert result.status_code == 200, result.text
        return result.json

    def login(self, scope: str = ALL_SCOPES, user_id: str = "1") -> dict[str, Any]:
        return self.exchange(self.authorize(scope, user_id))

    def refresh(self, refresh_token: str) -> testing.Result:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)

    def get(self, path: str, token: str = CREATOR_TOKEN, query: str = "", **kwargs: Any) -> testing.Result:
        headers = {"Authorization": f"Bearer {token}"} | kwargs.pop("headers", {})
        return self.client.simulate_get(
            f"/api/oauth2/v2{path}", query_string=query, headers=headers, **kwargs
        )

    def send(self, method: str, path: str, body: Any = None, token: str = CREATOR_TOKEN) -> testing.Result:
        return self.client.simulate_request(
            method,
            f"/api/oauth2/v2{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture
def oauth(client) -> OAuth:
    return OAuth(client)
