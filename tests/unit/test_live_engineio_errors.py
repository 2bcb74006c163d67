"""live.app.EngineIoErrorsAsJson: engine.io's plain refusals become the JSON shape."""

from __future__ import annotations

import asyncio
import json

from live.app import EngineIoErrorsAsJson


def answer_of(status: int, content_type: bytes, body: bytes, path: str = "/socket.io/") -> tuple[int, dict, bytes]:
    async def engineio(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    asyncio.run(EngineIoErrorsAsJson(engineio)({"type": "http", "path": path}, None, send))
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


def test_a_refused_origin_is_json_with_its_code():
    status, headers, body = answer_of(400, b"text/plain", b'"http://a.example:8080 is not an accepted origin."')
    assert status == 400 and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["code"] == "ORIGIN_NOT_ALLOWED"
    assert headers[b"content-length"] == str(len(body)).encode()


def test_a_bad_transport_is_json_with_its_code():
    _status, _headers, body = answer_of(400, b"text/plain", b'"Invalid transport"')
    assert json.loads(body) == {"success": False, "error": "Invalid transport", "code": "INVALID_TRANSPORT"}


def test_successful_and_non_socketio_answers_pass_untouched():
    assert answer_of(200, b"text/plain", b"0{}")[2] == b"0{}"
    assert answer_of(400, b"text/plain", b"raw", path="/api/patreon/live/health")[2] == b"raw"
    assert answer_of(400, b"application/json", b'{"code": "X"}')[2] == b'{"code": "X"}'
