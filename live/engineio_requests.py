"""engine.io's ASGI request translation, without a new class for every request.

python-engineio's ASGI driver (``engineio.async_drivers.asgi.translate_request``,
4.15.1) defines its body reader, ``AwaitablePayload``, inside the function, so every
request makes a new class. A class is a reference cycle. Its ``read`` method closes over
the request's ``receive``, so uvicorn's request cycle (its events, buffers and
transport) stays alive until the cyclic collector finds it: about 20 objects a
request. With 500 long-polling clients that was a 200-400 ms young collection every few
broadcasts, in the middle of them (bench/PROFILES.md, "9, live fan-out").

This is the same translation with the reader defined once. ``live.sio`` installs it in
the server's driver table, as it does its WebSocket class.
tests/unit/test_live_engineio_requests.py checks that it builds the environ engine.io
builds and reads bodies the way engine.io does, so an upgrade that changes either shows.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class RequestBody:
    """``wsgi.input``: the request's body, taken from ASGI ``receive`` when first read."""

    __slots__ = ("_first_type", "_receive", "event", "payload")

    def __init__(self, event: dict[str, Any], receive: Receive):
        self._first_type = event["type"]
        self.event = event
        self.payload: bytes | None = None
        self._receive = receive

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self._first_type == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self._receive()
                if self.event["type"] == "http.request":
                    if length is None or len(self.payload) < length:
                        self.payload += self.event.get("body") or b""
        payload = self.payload or b""
        if length is None:
            self.payload = b""
            return payload
        self.payload = payload[length:]
        return payload[:length]


async def translate_request(scope: dict[str, Any], receive: Receive, send: Callable) -> dict[str, Any]:
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        "wsgi.input": RequestBody(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "asgi",
        "SERVER_PORT": "0",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # engine.io skips a header it cannot decode
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ
