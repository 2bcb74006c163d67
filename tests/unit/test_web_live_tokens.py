"""web's ``POST /api/patreon/live/tokens``: the server key mints, live verifies."""

from __future__ import annotations

from pathlib import Path

import falcon
import falcon.testing
import pytest

from live_events import tokens
from live_events.settings import TOKEN_KEY_FILE
from settings.config import load_config
from web import errors, live_tokens


@pytest.fixture
def client(tmp_path):
    config = load_config({"BRIDGE_API_KEY": "the-key", "DATA_DIR": str(tmp_path)}, Path("/nonexistent/.env"))
    app = falcon.App()
    errors.install(app)
    live_tokens.add_routes(app, config)
    return falcon.testing.TestClient(app)


def post(client, body, key: str | None = "the-key"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.simulate_post("/api/patreon/live/tokens", json=body, headers=headers)


def test_a_patron_token_is_bound_to_its_user_and_verifies_with_lives_key(client, tmp_path):
    resp = post(client, {"audience": "patron", "userId": "55", "ttlSeconds": 120})
    assert resp.status_code == 200, resp.text
    assert resp.json["expiresIn"] == 120 and resp.json["userId"] == "55"
    key = (tmp_path / TOKEN_KEY_FILE).read_text().strip().encode()  # what live reads
    claims = tokens.verify(key, resp.json["token"])
    assert (claims.audience, claims.user_id) == ("patron", "55")


def test_no_key_or_a_wrong_key_is_refused(client):
    assert post(client, {"audience": "public"}, key=None).json["code"] == "UNAUTHORIZED"
    assert post(client, {"audience": "public"}, key="guess").json["code"] == "INVALID_API_KEY"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"audience": "patron", "userId": 55}, "INVALID_USER_ID"),
        ({"audience": "public", "userId": "55"}, "INVALID_USER_ID"),
        ({"audience": "creator", "campaignIds": "1001"}, "INVALID_CAMPAIGN_IDS"),
        ({"audience": "patron", "userId": "5", "campaignIds": ["1"]}, "INVALID_CAMPAIGN_IDS"),
        ({"audience": "patron", "userId": "5", "ttlSeconds": True}, "INVALID_TTL"),
        ({"audience": "patron", "userId": "5", "ttlSeconds": 5}, "INVALID_TTL"),
        ({"audience": None}, "INVALID_AUDIENCE"),
        ({"audience": "patron", "userId": "5", "user": "x"}, "UNKNOWN_FIELD"),
    ],
)
def test_bad_input_gets_400_with_a_code(client, body, code):
    resp = post(client, body)
    assert (resp.status_code, resp.json["code"]) == (400, code)


def test_live_mode_without_a_key_answers_503(tmp_path, monkeypatch):
    monkeypatch.delenv("LIVE_TOKEN_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    config = load_config(
        {"BRIDGE_API_KEY": "k", "DATA_DIR": str(tmp_path), "PATREON_CLIENT_ID": "c", "PATREON_CLIENT_SECRET": "s",
         "PATREON_REDIRECT_URI": "https://x.example/cb"},
        Path("/nonexistent/.env"),
    )
    assert config.mode == "live"
    app = falcon.App()
    errors.install(app)
    live_tokens.add_routes(app, config)
    resp = post(falcon.testing.TestClient(app), {"audience": "public"}, key="k")
    assert (resp.status_code, resp.json["code"]) == (503, "LIVE_TOKENS_NOT_CONFIGURED")
