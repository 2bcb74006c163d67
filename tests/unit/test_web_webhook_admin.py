"""Webhook management endpoints with falcon's TestClient and a fake worker: the server
key, input checks, what the worker receives, and that the receiver's route is not ours."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from settings.config import load_config
from store.database import Store
from tests.fake_worker import FakeWorker, call_error
from web.app import create_app

NO_DOTENV = Path("/nonexistent/.env")
KEY = "unit-bridge-key-0123456789"
SERVER = {"Authorization": f"Bearer {KEY}"}
URI = "https://site.example/api/patreon/webhooks/patreon"
HOOK = {
    "id": "77",
    "uri": URI,
    "triggers": ["members:create"],
    "paused": False,
    "num_consecutive_times_failed": 0,
    "last_attempted_at": None,
    "campaign_id": "1001",
    "secret_stored": True,
}


def make(tmp_path: Path, env: dict[str, str]):
    config = load_config(env, NO_DOTENV)
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    worker = FakeWorker()
    worker.answer("webhooks.list", {"webhooks": [HOOK]})
    worker.answer("webhooks.create", {"webhook": {**HOOK, "secret": "whsec"}})
    worker.answer("webhooks.update", {"webhook": HOOK})
    worker.answer("webhooks.delete", {"deleted": "77"})
    return falcon.testing.TestClient(create_app(config, worker, store)), worker


@pytest.fixture
def setup(tmp_path):
    return make(tmp_path, {"BRIDGE_API_KEY": KEY})


@pytest.fixture
def client(setup):
    return setup[0]


@pytest.fixture
def worker(setup):
    return setup[1]


def assert_error(result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.json["success"] is False and result.json["code"] == code and result.json["error"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/patreon/webhooks"),
        ("POST", "/api/patreon/webhooks"),
        ("PATCH", "/api/patreon/webhooks/77"),
        ("DELETE", "/api/patreon/webhooks/77"),
    ],
)
def test_the_server_key_is_required(client, worker, method, path):
    assert_error(client.simulate_request(method, path), 401, "API_KEY_REQUIRED")
    assert_error(
        client.simulate_request(method, path, headers={"Authorization": "Bearer nope"}),
        401,
        "INVALID_API_KEY",
    )
    assert worker.calls == []


def test_without_a_configured_key_management_is_off(tmp_path):
    client, _worker = make(tmp_path, {})
    assert_error(client.simulate_get("/api/patreon/webhooks"), 403, "SERVER_KEY_NOT_CONFIGURED")
    assert_error(client.simulate_get("/api/patreon/webhooks", headers=SERVER), 401, "INVALID_API_KEY")


def test_list_shows_paused_and_failures(client, worker):
    result = client.simulate_get("/api/patreon/webhooks", headers=SERVER)
    assert result.json == {"success": True, "webhooks": [HOOK]}
    assert worker.last("webhooks.list")["data"] == {}


def test_create_passes_checked_fields_and_shows_the_secret_once(client, worker):
    result = client.simulate_post(
        "/api/patreon/webhooks",
        json={
            "uri": URI,
            "triggers": ["members:create", "members:create", "posts:publish"],
            "campaignId": 1001,
        },
        headers=SERVER,
    )
    assert result.status_code == 201, result.text
    assert result.json["webhook"]["secret"] == "whsec"
    assert result.headers["Cache-Control"] == "no-store"
    assert worker.last("webhooks.create")["data"] == {
        "uri": URI,
        "triggers": ["members:create", "posts:publish"],
        "campaign_id": "1001",
    }


@pytest.mark.parametrize(
    "body, code",
    [
        ({"uri": URI, "triggers": ["members:everything"]}, "INVALID_TRIGGERS"),
        ({"uri": URI, "triggers": []}, "INVALID_TRIGGERS"),
        ({"uri": URI, "triggers": "members:create"}, "INVALID_TRIGGERS"),
        ({"uri": URI, "triggers": ["pledges:create"]}, "INVALID_TRIGGERS"),  # legacy: cannot be created
        ({"uri": "not a url", "triggers": ["members:create"]}, "INVALID_URI"),
        ({"uri": URI + "\n", "triggers": ["members:create"]}, "INVALID_URI"),
        ({"uri": URI, "triggers": ["members:create"], "campaign_id": "1001\n"}, "INVALID_CAMPAIGN_ID"),
        ({"triggers": ["members:create"]}, "INVALID_URI"),
        ({"uri": URI, "triggers": ["members:create"], "campaign_id": "x1"}, "INVALID_CAMPAIGN_ID"),
        (
            {"uri": URI, "triggers": ["members:create"], "campaign_id": "1", "campaignId": "2"},
            "CONFLICTING_CAMPAIGN_ID",
        ),
        ({"uri": URI, "triggers": ["members:create"], "secret": "mine"}, "UNKNOWN_FIELD"),
    ],
)
def test_create_refuses_bad_input(client, worker, body, code):
    assert_error(client.simulate_post("/api/patreon/webhooks", json=body, headers=SERVER), 400, code)
    assert worker.calls == []


def test_create_refuses_a_body_that_is_not_json(client):
    result = client.simulate_post("/api/patreon/webhooks", body=b"uri=x", headers=SERVER)
    assert_error(result, 400, "INVALID_BODY")


@pytest.mark.parametrize("paused", [False, "false"])
def test_unpause(client, worker, paused):
    result = client.simulate_patch("/api/patreon/webhooks/77", json={"paused": paused}, headers=SERVER)
    assert result.status_code == 200
    assert result.json == {"success": True, "webhook": HOOK}
    assert worker.last("webhooks.update")["data"] == {"webhook_id": "77", "paused": False}


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/api/patreon/webhooks/77", {}, "NOTHING_TO_UPDATE"),
        ("/api/patreon/webhooks/77", {"paused": "no"}, "INVALID_PAUSED"),
        ("/api/patreon/webhooks/77", {"secret": "x"}, "UNKNOWN_FIELD"),
        ("/api/patreon/webhooks/abc", {"paused": False}, "INVALID_WEBHOOK_ID"),
    ],
)
def test_update_refuses_bad_input(client, worker, path, body, code):
    assert_error(client.simulate_patch(path, json=body, headers=SERVER), 400, code)
    assert worker.calls == []


def test_delete(client, worker):
    result = client.simulate_delete("/api/patreon/webhooks/77", headers=SERVER)
    assert result.json == {"success": True, "deleted": "77"}
    worker.answer("webhooks.delete", call_error("NOT_FOUND", 404))
    assert_error(client.simulate_delete("/api/patreon/webhooks/78", headers=SERVER), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "ids",
    [
        {"campaign_id": None, "campaignId": "5"},
        {"campaign_id": "5", "campaignId": None},
        {"campaignId": 5},
        {"campaign_id": "5", "campaignId": 5},  # the same id twice
    ],
)
def test_create_takes_the_campaign_id_in_either_spelling(client, worker, ids):
    result = client.simulate_post(
        "/api/patreon/webhooks", json={"uri": URI, "triggers": ["members:create"], **ids}, headers=SERVER
    )
    assert result.status_code == 201, result.text
    assert worker.last("webhooks.create")["data"]["campaign_id"] == "5"


def test_a_webhook_id_with_a_trailing_newline_is_refused(client, worker):
    assert_error(
        client.simulate_delete("/api/patreon/webhooks/12%0A", headers=SERVER), 400, "INVALID_WEBHOOK_ID"
    )
    assert worker.calls == []


def test_the_receiver_route_is_not_shadowed(client, worker):
    # The receiver answers deliveries itself (here: unsigned), never webhook management.
    result = client.simulate_post("/api/patreon/webhooks/patreon", body=b"{}")
    assert result.json["code"] in {"MISSING_SIGNATURE", "WEBHOOKS_NOT_CONFIGURED"}
    assert worker.calls == []
