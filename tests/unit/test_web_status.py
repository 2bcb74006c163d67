"""The web app's own answers, with a real WorkerClient whose worker is down."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from settings.config import load_config
from web.app import create_app
from wire.client import Liveness, WorkerClient


@pytest.fixture
def client():
    config = load_config({"BRIDGE_TEST_ACTIONS": "1"}, Path("/nonexistent/.env"))
    worker = WorkerClient("inproc://no-worker-here", liveness=Liveness())
    return falcon.testing.TestClient(create_app(config, worker))


def test_status_answers_without_a_worker(client):
    result = client.simulate_get("/api/patreon/status")
    assert result.status_code == 200
    status = result.json["status"]
    assert (status["available"], status["ready"], status["mode"]) == (False, False, "sandbox")
    assert status["worker"]["pid"] is None
    assert result.headers["X-Request-ID"]


def test_api_routes_answer_503_with_code_and_retry_after(client):
    result = client.simulate_get("/api/patreon/_test/sleep", params={"ms": "10"})
    assert result.status_code == 503
    assert result.headers["Retry-After"] == "2"
    assert result.json == {
        "success": False,
        "error": "Patreon service is not available",
        "code": "PATREON_SERVICE_UNAVAILABLE",
    }


def test_health_is_unhealthy(client):
    result = client.simulate_get("/api/patreon/health")
    assert result.status_code == 503
    assert result.json["status"] == "unhealthy" and result.json["code"] == "PATREON_SERVICE_UNAVAILABLE"


def test_unknown_routes_and_bad_params_are_json_with_codes(client):
    missing = client.simulate_get("/nowhere")
    assert (missing.status_code, missing.json["code"], missing.json["success"]) == (404, "NOT_FOUND", False)
    bad = client.simulate_get("/api/patreon/_test/sleep", params={"ms": "soon"})
    assert (bad.status_code, bad.json["code"]) == (400, "BAD_REQUEST")
    wrong_method = client.simulate_delete("/api/patreon/status")
    assert (wrong_method.status_code, wrong_method.json["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_a_proxy_request_id_is_kept_only_when_plain(client):
    kept = client.simulate_get("/api/patreon/status", headers={"X-Request-ID": "abc-123-def"})
    assert kept.headers["X-Request-ID"] == "abc-123-def"
    replaced = client.simulate_get("/api/patreon/status", headers={"X-Request-ID": "evil\nlog line"})
    assert replaced.headers["X-Request-ID"] != "evil\nlog line"
