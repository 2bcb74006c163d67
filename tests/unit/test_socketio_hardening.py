"""Socket.IO hardening (issue 16, finding 9): JSONP polling (``j=``) is refused, and a
malformed packet is one log line, not a traceback."""

from __future__ import annotations

import json
import logging

import falcon
import falcon.testing
import pytest

from tests.unit.test_live_events import KEY, auth, gate  # noqa: F401 (fixtures)
from web.live import LiveEvents

HANDSHAKE = "EIO=4&transport=polling"


@pytest.fixture
def client(store, auth, gate):  # noqa: F811
    live = LiveEvents(store, auth, gate)
    return falcon.testing.TestClient(live.wsgi_app(falcon.App()))


def open_session(client) -> str:
    answer = client.simulate_get("/socket.io/", query_string=HANDSHAKE)
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text[1:])["sid"]


@pytest.mark.parametrize(
    "query", [HANDSHAKE + "&j=0", HANDSHAKE + "&j=x", "EIO=4&transport=polling&sid=abc&j=1"]
)
def test_jsonp_polling_is_refused_as_json(client, query):
    answer = client.simulate_get("/socket.io/", query_string=query)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["code"] == "JSONP_NOT_SUPPORTED"
    assert "javascript" not in answer.headers["content-type"]


def test_a_malformed_packet_is_one_line_without_a_traceback(client, caplog):
    caplog.set_level(logging.DEBUG)
    sid = open_session(client)
    client.simulate_post(
        "/socket.io/", query_string=f"{HANDSHAKE}&sid={sid}", body="40" + json.dumps({"key": KEY})
    )
    for garbage in ("42[", "4\\x00\\x01", "49{}", "42[1,2"):
        client.simulate_post("/socket.io/", query_string=f"{HANDSHAKE}&sid={sid}", body=garbage)
    records = [r for r in caplog.records if r.name.startswith(("engineio", "socketio"))]
    assert not any(r.exc_info for r in records), [r.getMessage() for r in records]
    assert "Traceback" not in caplog.text
