"""Every error a client can get is the JSON shape with a code, through the real stack.

A fuzz of every route in web's route table (read from the app itself, so a new route
is fuzzed without editing this file), anonymous and with the server key: wrong and
unknown methods, bad queries, garbage bodies of every content type, bad and
conflicting Content-Length, over-long headers, oversized bodies (sent whole, as most
clients do, and declared only, as curl with ``Expect: 100-continue`` does), malformed
request lines; plus Socket.IO's handshake refusals. Raw sockets, so waitress's own
parser answers too. Every answer of 400 or more must be JSON ``{"success": false,
"error", "code"}``; none may be a 5xx, a reset or a hang.
"""

from __future__ import annotations

import collections
import http.client
import json
import socket
import tempfile
import threading
from pathlib import Path

import falcon.inspect
import pytest

from harness.stack import Stack
from settings.config import load_config
from store.database import Store
from web.app import create_app
from wire.client import Liveness, WorkerClient

KEY = "error-shapes-server-key"
SERVER = f"Authorization: Bearer {KEY}\r\n"
TIMEOUT_S = 15
MAX_BODY = 4 * 1024 * 1024  # web.__main__.MAX_REQUEST_BODY_BYTES
PATH_PARAMS = {
    "campaignId": "1001",
    "memberId": "m-1",
    "postId": "1",
    "webhookId": "1",
    "name": "demo.js",
    "userId": "2",
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW")
GARBAGE_BODIES = (
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'{"a": "\\ud800"}'),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/json", b"[" * 5000),
    ("application/x-www-form-urlencoded", b"a=%zz&&=&b"),
    ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
    ("text/plain", b"\x00\x01\x02"),
    ("", b"plain bytes, no type"),
)
BAD_QUERIES = (
    "%zz=1",
    "a=%ff%fe",
    "since=-1&limit=abc",
    "scopes=" + "x" * 5000,
    "page%5Bcount%5D=0&page%5Bcount%5D=1",
    "include=" + ",".join(["a"] * 200),
    "fields%5Bmember%5D=\x7f",
    "key=wrong-key",
    "code=&state=",
)
BAD_CONTENT_LENGTHS = ("abc", "-1", "1, 2", "0x10", "99999999999999999999999", " ")


def routes() -> list[tuple[str, list[str]]]:
    """web's route table, as the stack under test builds it."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "routes.sqlite3")
        store.migrate()
        config = load_config({"BRIDGE_API_KEY": KEY}, Path("/nonexistent/.env"))
        app = create_app(config, WorkerClient("inproc://routes-only", liveness=Liveness()), store)
        table = []
        for route in falcon.inspect.inspect_routes(app):
            path = route.path
            for name, value in PATH_PARAMS.items():
                path = path.replace("{" + name + "}", value)
            assert "{" not in path, f"no value for a path parameter of {route.path}: add it to PATH_PARAMS"
            table.append((path, [m.method for m in route.methods if not m.internal]))
        return table


class Answers:
    """Every answer of the fuzz, and the ones that break the rule."""

    def __init__(self):
        self.count = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.codes: collections.Counter[str] = collections.Counter()
        self.bad: list[str] = []

    def check(self, what: str, status: int, headers: http.client.HTTPMessage | None, body: bytes) -> None:
        self.count += 1
        self.statuses[status] += 1
        if status >= 500:
            self.bad.append(f"{what}: {status} {body[:200]!r}")
        if status < 400:
            return
        content_type = (headers.get("Content-Type") if headers is not None else "") or ""
        try:
            data = json.loads(body)
            ok = (
                content_type.startswith("application/json")
                and data.get("success") is False
                and isinstance(data.get("error"), str)
                and isinstance(data.get("code"), str)
                and data["code"]
            )
        except (ValueError, AttributeError):
            ok = False
        if ok:
            self.codes[data["code"]] += 1
        elif "text/html" in content_type and what.startswith("GET /auth/patreon/callback"):
            pass  # the login callback's error page for a browser (Accept: text/html) is HTML on purpose
        else:
            self.bad.append(f"{what}: {status} {content_type!r} {body[:200]!r}")


def exchange(
    stack: Stack, raw: bytes, *, method: str = "GET", port: int | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send raw bytes to web (or ``port``), read one answer (its body only when it is an error)."""
    with socket.create_connection(("127.0.0.1", port or stack.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        body = resp.read() if resp.status >= 400 and method != "HEAD" else b""
        return resp.status, resp.msg, body


def request(method: str, path: str, headers: str = "", body: bytes = b"", length: str | None = None) -> bytes:
    length_header = f"Content-Length: {len(body) if length is None else length}\r\n" if body or length else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}{length_header}Connection: close\r\n\r\n"
    return head.encode("latin-1") + body


@pytest.fixture(scope="module")
def stack():
    with Stack({"BRIDGE_API_KEY": KEY, "BRIDGE_TEST_ACTIONS": "0"}, name="pb-errors") as running:
        yield running


@pytest.fixture(scope="module")
def answers():
    return Answers()


def test_every_route_with_every_method_and_bad_query(stack, answers):
    table = routes()
    assert len(table) >= 20 and ("/demo", ["GET"]) in table, table
    for path, _methods in table:
        for auth in ("", SERVER):
            for method in METHODS:
                what = f"{method} {path} {'key' if auth else 'anon'}"
                answers.check(what, *exchange(stack, request(method, path, auth), method=method))
            for query in BAD_QUERIES:
                target = f"{path}?{query}"
                answers.check(f"GET {target[:80]}", *exchange(stack, request("GET", target, auth)))
    assert not answers.bad, "\n".join(answers.bad[:30])


def test_every_route_with_garbage_bodies_and_bad_content_length(stack, answers):
    for path, methods in routes():
        for method in {*methods, "POST"} - {"GET"}:
            for content_type, garbage in GARBAGE_BODIES:
                headers = SERVER + (f"Content-Type: {content_type}\r\n" if content_type else "")
                what = f"{method} {path} {content_type or 'untyped'} garbage"
                answers.check(what, *exchange(stack, request(method, path, headers, garbage), method=method))
            for length in BAD_CONTENT_LENGTHS:
                raw = request(
                    method, path, SERVER + "Content-Type: application/json\r\n", b"{}", length=length
                )
                answers.check(
                    f"{method} {path} Content-Length {length!r}", *exchange(stack, raw, method=method)
                )
            conflicting = (
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
                "Connection: close\r\n\r\n{}"
            ).encode()
            answers.check(
                f"{method} {path} two Content-Lengths", *exchange(stack, conflicting, method=method)
            )
    assert not answers.bad, "\n".join(answers.bad[:30])


def test_over_long_headers_and_malformed_requests(stack, answers):
    too_long = "X-Filler: " + "a" * 300_000 + "\r\n"  # over waitress's max_request_header_size (256 KiB)
    for path, _methods in routes():
        status, headers, body = exchange(stack, request("GET", path, too_long))
        answers.check(f"GET {path} 300 KB header", status, headers, body)
        assert status == 431 and json.loads(body)["code"] == "REQUEST_HEADERS_TOO_LARGE"
    malformed = [
        b"GARBAGE\r\n\r\n",
        b"GET /api/patreon/status HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/patreon/status HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /api/patreon/status HTTP/1.1\r\nHost: x\r\n bad continuation\r\n\r\n",
        b"GET /api/patreon/status HTTP/1.1\r\nHo st: x\r\n\r\n",
        b"GET /api/\x00patreon HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/patreon/auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/patreon/auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET " + b"/a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for raw in malformed:
        answers.check(f"malformed {raw[:50]!r}", *exchange(stack, raw))
    assert not answers.bad, "\n".join(answers.bad[:30])


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send():
        try:
            sock.sendall(data)
        except OSError:
            pass  # the test below says what the client saw

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


@pytest.mark.parametrize("path", ["/api/patreon/auth/token", "/api/patreon/webhooks/patreon", "/socket.io/"])
def test_an_oversized_body_sent_whole_gets_a_readable_json_413(stack, answers, path):
    # As requests or a browser sends: the whole body first, the answer read after it.
    size = MAX_BODY + 1024 * 1024
    with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT_S) as sock:
        head = request("POST", path, "Content-Type: application/json\r\n", length=str(size))
        sock.sendall(head)
        sender = send_in_background(sock, b"x" * size)
        sender.join(TIMEOUT_S)
        assert not sender.is_alive(), "the server stopped reading the body: the client cannot finish sending"
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()  # a reset here would be the old behaviour
        body = resp.read()
    answers.check(f"POST {path} {size} bytes", resp.status, resp.msg, body)
    assert resp.status == 413, body
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    assert resp.getheader("Connection") == "close"


def test_an_oversized_chunked_body_sent_whole_gets_a_readable_json_413(stack, answers):
    # No Content-Length to refuse it by: waitress counts the chunks and stops past the cap.
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 16))
    with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(request("POST", "/api/patreon/auth/token", "Transfer-Encoding: chunked\r\n"))
        sender = send_in_background(sock, chunks + b"0\r\n\r\n")
        sender.join(TIMEOUT_S)
        assert not sender.is_alive(), "the server stopped reading the body: the client cannot finish sending"
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()
        body = resp.read()
    answers.check("POST chunked over the cap", resp.status, resp.msg, body)
    assert resp.status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE", body


def test_an_oversized_body_is_refused_before_it_is_sent(stack, answers):
    # As curl does for a large upload: headers with Expect: 100-continue, then wait.
    with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(
            request("POST", "/api/patreon/auth/token", "Expect: 100-continue\r\n", length="50000000")
        )
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()  # no 100 Continue: the answer comes at once, with no body sent
        body = resp.read()
    answers.check("POST 50 MB declared, not sent", resp.status, resp.msg, body)
    assert resp.status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    # The stack still serves.
    assert stack.get("/api/patreon/status").status_code == 200


def test_socketio_handshake_refusals_are_json(stack, answers):
    # Socket.IO is the live program's (live.app.EngineIoErrorsAsJson); web answers 410.
    stack.wait_live()
    status, resp_headers, body = exchange(stack, request("GET", "/socket.io/?EIO=4&transport=polling"))
    answers.check("GET socket.io on web", status, resp_headers, body)
    assert status == 410 and json.loads(body)["code"] == "LIVE_EVENTS_MOVED"
    origin = "Origin: https://evil.example\r\n"
    cases = [
        ("/socket.io/?EIO=4&transport=polling", origin, "ORIGIN_NOT_ALLOWED"),
        ("/socket.io/?EIO=3&transport=polling", "", "UNSUPPORTED_PROTOCOL_VERSION"),
        ("/socket.io/?EIO=4&transport=websocket", "", "INVALID_TRANSPORT"),
        ("/socket.io/?EIO=4&transport=carrier-pigeon", "", "INVALID_TRANSPORT"),
        ("/socket.io/?EIO=4&transport=polling&sid=no-such-sid", "", "INVALID_SESSION"),
        ("/socket.io/?EIO=4&transport=polling&j=x", "", "JSONP_NOT_SUPPORTED"),
    ]
    for target, headers, code in cases:
        status, resp_headers, body = exchange(stack, request("GET", target, headers), port=stack.live_port)
        answers.check(f"GET {target}", status, resp_headers, body)
        assert status == 400 and json.loads(body)["code"] == code, (target, body)
    status, resp_headers, body = exchange(
        stack, request("POST", "/socket.io/?EIO=4&transport=polling&sid=nope", "", b"40"), port=stack.live_port
    )
    answers.check("POST socket.io bad sid", status, resp_headers, body)
    assert status == 400 and json.loads(body)["code"] == "INVALID_SESSION"
    # A good handshake is still engine.io's own answer.
    status, _headers, _body = exchange(
        stack, request("GET", "/socket.io/?EIO=4&transport=polling"), port=stack.live_port
    )
    assert status == 200
    assert not answers.bad, "\n".join(answers.bad[:30])


def test_summary(answers):
    # Last in the module: what the whole fuzz saw.
    print(
        f"\nerror fuzz: {answers.count} answers, statuses {dict(sorted(answers.statuses.items()))}, "
        f"{len(answers.codes)} codes, {len(answers.bad)} not JSON or 5xx"
    )
    assert answers.count > 1000 and not answers.bad
