"""web.server_errors.JsonErrorResponses: plain-text errors become the JSON shape; every
other answer passes untouched. (waitress's own errors: tests/integration/test_error_shapes.py.)"""

from __future__ import annotations

import json

import pytest

from web.server_errors import JsonErrorResponses


def app_answering(status: str, headers: list[tuple[str, str]], body: bytes):
    def app(environ, start_response):
        start_response(status, headers)
        return [body]

    return app


def call(app) -> tuple[str, dict[str, str], bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(JsonErrorResponses(app)({"PATH_INFO": "/socket.io/"}, start_response))
    return seen["status"], seen["headers"], body


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b'"Not an accepted origin."', "ORIGIN_NOT_ALLOWED"),
        (b'"Invalid session abc"', "INVALID_SESSION"),
        (
            b'"The client is using an unsupported version of the Socket.IO or Engine.IO protocols"',
            ("UNSUPPORTED_PROTOCOL_VERSION"),
        ),
        (b'"Something new"', "BAD_REQUEST"),
        (b"not even json", "BAD_REQUEST"),
        (b"", "BAD_REQUEST"),
    ],
)
def test_engineio_plain_text_refusals_become_json(text, code):
    cors = ("Access-Control-Allow-Origin", "http://127.0.0.1:8080")
    status, headers, body = call(
        app_answering("400 BAD REQUEST", [("Content-Type", "text/plain"), cors], text)
    )
    assert status == "400 BAD REQUEST"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"  # kept
    answer = json.loads(body)
    assert answer["success"] is False and answer["code"] == code and answer["error"]


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        ("200 OK", "text/plain; charset=UTF-8", b"0{...}"),  # engine.io's own packets
        ("404 Not Found", "application/json", b'{"success": false, "code": "NOT_FOUND"}'),
        ("400 Bad Request", "text/html; charset=utf-8", b"<!doctype html>login failed"),  # a browser page
    ],
)
def test_other_answers_pass_untouched(status, content_type, body):
    got_status, headers, got_body = call(app_answering(status, [("Content-Type", content_type)], body))
    assert (got_status, headers["Content-Type"], got_body) == (status, content_type, body)


def test_an_untyped_error_becomes_json_with_a_code_from_its_status():
    status, headers, body = call(app_answering("503 Service Unavailable", [], b"busy"))
    assert status == "503 Service Unavailable" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"success": False, "error": "busy", "code": "SERVICE_UNAVAILABLE"}
