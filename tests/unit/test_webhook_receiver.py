"""The webhook receiver: signature vectors, check order, dedupe, limits, and that it
never needs the worker (the worker client here has no worker behind it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import falcon.testing
import pytest

from settings.config import load_config
from store import webhook_events, webhook_secrets
from store.database import Store
from tests.webhook_deliveries import EMAIL_DOMAIN, PATH, encode, member_document, sign, signed_headers
from web.app import create_app
from web.webhooks import MAX_BODY_BYTES
from wire.client import Liveness, WorkerClient

SECRET = "unit-webhook-secret"
NO_DOTENV = Path("/nonexistent/.env")


def make_client(tmp_path: Path, env: dict[str, str]) -> tuple[falcon.testing.TestClient, Store]:
    config = load_config(env, NO_DOTENV)
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    worker = WorkerClient("inproc://no-worker-here", liveness=Liveness())
    return falcon.testing.TestClient(create_app(config, worker, store)), store


@pytest.fixture
def setup(tmp_path):
    return make_client(tmp_path, {"PATREON_WEBHOOK_SECRET": SECRET})


@pytest.fixture
def client(setup):
    return setup[0]


@pytest.fixture
def store(setup):
    return setup[1]


BODY = encode(member_document())


def post(client, body: bytes, headers: dict[str, str]):
    return client.simulate_post(PATH, body=body, headers=headers)


def assert_error(result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.json["success"] is False
    assert result.json["code"] == code
    assert result.json["error"]


def test_genuine_delivery_is_stored_byte_for_byte_then_answered(client, store):
    result = post(client, BODY, signed_headers(SECRET, BODY))
    assert result.status_code == 200, result.text
    assert result.json == {
        "success": True,
        "processed": True,
        "event": "members:create",
        "id": 1,
        "duplicate": False,
    }
    stored = webhook_events.get(store, 1)
    assert stored.body == BODY
    assert stored.event == "members:create"
    assert stored.campaign_id == "1001"


def test_one_flipped_byte_is_rejected(client, store):
    tampered = bytearray(BODY)
    tampered[BODY.index(b"active_patron")] ^= 0x01
    assert_error(post(client, bytes(tampered), signed_headers(SECRET, BODY)), 401, "INVALID_SIGNATURE")
    assert webhook_events.latest_id(store) == 0


def test_wrong_secret_is_rejected(client):
    assert_error(post(client, BODY, signed_headers("not-the-secret", BODY)), 401, "INVALID_SIGNATURE")


def test_reserialized_json_is_rejected(client):
    # The same document with json.dumps' default spacing: the signature was over other bytes.
    reserialized = json.dumps(json.loads(BODY)).encode()
    assert reserialized != BODY and json.loads(reserialized) == json.loads(BODY)
    assert_error(post(client, reserialized, signed_headers(SECRET, BODY)), 401, "INVALID_SIGNATURE")


def test_missing_signature_header_is_rejected(client):
    headers = signed_headers(SECRET, BODY)
    del headers["X-Patreon-Signature"]
    assert_error(post(client, BODY, headers), 400, "MISSING_SIGNATURE")
    assert_error(post(client, BODY, {**headers, "X-Patreon-Signature": ""}), 400, "MISSING_SIGNATURE")


def test_empty_body_is_rejected(client):
    # Signed for the real body: the signature does not cover an empty one.
    assert_error(post(client, b"", signed_headers(SECRET, BODY)), 401, "INVALID_SIGNATURE")
    # Correctly signed but empty: not a JSON:API document.
    assert_error(post(client, b"", signed_headers(SECRET, b"")), 400, "INVALID_PAYLOAD")


def test_key_rotation_accepts_both_secrets(tmp_path):
    client, store = make_client(tmp_path, {"PATREON_WEBHOOK_SECRET": "old-secret, new-secret"})
    first = encode(member_document("m-1"))
    second = encode(member_document("m-2"))
    assert post(client, first, signed_headers("old-secret", first)).status_code == 200
    assert post(client, second, signed_headers("new-secret", second)).status_code == 200
    assert_error(post(client, first, signed_headers("retired-secret", first)), 401, "INVALID_SIGNATURE")
    assert webhook_events.latest_id(store) == 2


def test_secrets_of_webhooks_created_through_the_service_verify_too(client, store):
    assert_error(post(client, BODY, signed_headers("created-secret", BODY)), 401, "INVALID_SIGNATURE")
    webhook_secrets.save(store, "hook-1", "created-secret")
    assert post(client, BODY, signed_headers("created-secret", BODY)).status_code == 200
    assert post(client, BODY, signed_headers(SECRET, BODY)).json["duplicate"] is True


def test_a_stored_secret_alone_configures_the_receiver(tmp_path):
    live = {
        "PATREON_CLIENT_ID": "id",
        "PATREON_CLIENT_SECRET": "client-secret",
        "PATREON_REDIRECT_URI": "https://example.com/auth/patreon/callback",
    }
    client, store = make_client(tmp_path, live)
    webhook_secrets.save(store, "hook-1", "created-secret")
    assert post(client, BODY, signed_headers("created-secret", BODY)).status_code == 200


def test_the_same_delivery_twice_is_stored_once_and_answered_200_both_times(client, store):
    first = post(client, BODY, signed_headers(SECRET, BODY))
    again = post(client, BODY, signed_headers(SECRET, BODY))
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json["duplicate"] is False and again.json["duplicate"] is True
    assert first.json["id"] == again.json["id"] == 1
    assert webhook_events.counts(store)["total"] == 1


def test_a_body_replayed_under_another_trigger_is_not_stored_again(client, store, caplog):
    # Issue 16, finding 1: the signature covers the body only, so a captured delivery
    # replayed with another X-Patreon-Event must not become a second event.
    caplog.set_level(logging.INFO)
    first = post(client, BODY, signed_headers(SECRET, BODY, "members:pledge:create"))
    replay = post(client, BODY, signed_headers(SECRET, BODY, "members:pledge:delete"))
    assert (first.status_code, replay.status_code) == (200, 200)
    assert (replay.json["id"], replay.json["duplicate"]) == (1, True)
    assert webhook_events.counts(store)["total"] == 1
    assert webhook_events.get(store, 1).event == "members:pledge:create"
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("members:pledge:create" in m and "members:pledge:delete" in m for m in warning)
    assert EMAIL_DOMAIN not in caplog.text


def test_a_body_over_1_mib_is_413_before_anything_else(client, store):
    big = b"x" * (MAX_BODY_BYTES + 1)
    assert_error(post(client, big, {"X-Patreon-Event": "members:create"}), 413, "PAYLOAD_TOO_LARGE")
    assert_error(post(client, big, signed_headers(SECRET, big)), 413, "PAYLOAD_TOO_LARGE")
    assert webhook_events.latest_id(store) == 0


def test_a_body_of_exactly_1_mib_is_read(client):
    document = member_document(note="")
    padding = MAX_BODY_BYTES - len(encode(document))
    document["data"]["attributes"]["note"] = "n" * (padding - 0)
    body = encode(document)
    assert len(body) == MAX_BODY_BYTES
    assert post(client, body, signed_headers(SECRET, body)).status_code == 200


@pytest.mark.parametrize(
    "event",
    ["members:create", "members:pledge:delete", "posts:publish", "pledges:create", "pledges:delete"],
)
def test_v2_and_legacy_triggers_are_accepted(client, event):
    result = post(client, BODY, signed_headers(SECRET, BODY, event))
    assert (result.status_code, result.json["event"]) == (200, event)


@pytest.mark.parametrize(
    "event", ["members:created", "pledges:upgrade", "MEMBERS:CREATE", "campaigns:update"]
)
def test_unknown_triggers_are_rejected(client, event):
    assert_error(post(client, BODY, signed_headers(SECRET, BODY, event)), 400, "UNKNOWN_EVENT")


def test_missing_event_header_is_unknown_event(client):
    headers = signed_headers(SECRET, BODY)
    del headers["X-Patreon-Event"]
    assert_error(post(client, BODY, headers), 400, "UNKNOWN_EVENT")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"data": []}',
        b'{"data": {"type": "member"}}',
        b'{"data": {"id": "1"}}',
        b'{"data": {"type": "member", "id": 5}}',
        b'{"data": {"type": "member", "id": "1"}, "included": {}}',
        b'{"data": {"type": "member", "id": "1", "attributes": {"x": NaN}}}',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ],
)
def test_bodies_that_are_not_jsonapi_documents_are_invalid_payload(client, store, body):
    assert_error(post(client, body, signed_headers(SECRET, body)), 400, "INVALID_PAYLOAD")
    assert webhook_events.latest_id(store) == 0


def test_checks_run_in_order(client):
    unknown = "nope:nothing"
    # A bad signature is reported before an unknown event or a bad payload.
    assert_error(post(client, b"[]", signed_headers("wrong", b"[]", unknown)), 401, "INVALID_SIGNATURE")
    # A missing signature before a bad signature's other problems.
    assert_error(post(client, b"[]", {"X-Patreon-Event": unknown}), 400, "MISSING_SIGNATURE")
    # A known-bad event before a bad payload.
    assert_error(post(client, b"[]", signed_headers(SECRET, b"[]", unknown)), 400, "UNKNOWN_EVENT")


def test_no_secret_at_all_is_503_and_nothing_is_accepted(tmp_path):
    live = {
        "PATREON_CLIENT_ID": "id",
        "PATREON_CLIENT_SECRET": "client-secret",
        "PATREON_REDIRECT_URI": "https://example.com/auth/patreon/callback",
    }
    client, store = make_client(tmp_path, live)
    assert_error(post(client, BODY, signed_headers("", BODY)), 503, "WEBHOOKS_NOT_CONFIGURED")
    assert_error(post(client, BODY, {"X-Patreon-Event": "members:create"}), 503, "WEBHOOKS_NOT_CONFIGURED")
    assert webhook_events.latest_id(store) == 0


def test_sandbox_mode_verifies_with_the_sandbox_secret(tmp_path):
    client, _store = make_client(tmp_path, {})
    assert post(client, BODY, signed_headers("sandbox-webhook-secret", BODY)).status_code == 200


def test_uppercase_hex_is_the_same_signature(client):
    headers = {**signed_headers(SECRET, BODY), "X-Patreon-Signature": sign(SECRET, BODY).upper()}
    assert post(client, BODY, headers).status_code == 200


def test_the_log_names_event_and_id_but_never_the_body(client, caplog):
    caplog.set_level(logging.INFO)
    post(client, BODY, signed_headers(SECRET, BODY))
    post(client, BODY, signed_headers(SECRET, BODY))
    text = caplog.text
    assert "📨 Patreon webhook received: members:create id=1" in text
    assert "id=1 (duplicate)" in text
    assert EMAIL_DOMAIN not in text and SECRET not in text and sign(SECRET, BODY) not in text


def test_only_post_is_allowed(client):
    assert_error(client.simulate_get(PATH), 405, "METHOD_NOT_ALLOWED")
