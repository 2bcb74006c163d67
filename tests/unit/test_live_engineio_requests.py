"""live.engineio_requests: engine.io's ASGI environ, built without a class per request."""

from __future__ import annotations

import asyncio
import gc

import pytest
from engineio.async_drivers import asgi as engineio_asgi

from live.engineio_requests import RequestBody, translate_request


def _scope(kind: str = "http", **overrides) -> dict:
    scope = {
        "type": kind,
        "method": "POST",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=polling&sid=abc",
        "headers": [
            (b"host", b"live.example:8080"),
            (b"content-type", b"text/plain;charset=UTF-8"),
            (b"content-length", b"5"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),  # repeated: joined with a comma, as engine.io does
            (b"x-forwarded-proto", b"https"),
            (b"x-bad", b"\xff\xfe"),  # not UTF-8: skipped
        ],
    }
    scope.update(overrides)
    return scope


def _receiver(*events: dict):
    queue = list(events)

    async def receive() -> dict:
        return queue.pop(0)

    return receive


async def _send(_message) -> None:
    pass


def _both(scope: dict, *events: dict) -> tuple[dict, dict]:
    ours = asyncio.run(translate_request(scope, _receiver(*events), _send))
    theirs = asyncio.run(engineio_asgi.translate_request(scope, _receiver(*events), _send))
    return ours, theirs


def _comparable(environ: dict) -> dict:
    # The reader and the callables differ by identity only: they are compared by behaviour.
    return {k: v for k, v in environ.items() if k not in ("wsgi.input", "asgi.receive", "asgi.send")}


@pytest.mark.parametrize(
    "scope",
    [
        _scope(),
        _scope(query_string=b""),
        _scope(query_string=b"\xff"),  # undecodable: engine.io keeps the path alone
        _scope(headers=[]),
        _scope("websocket", method="GET", query_string=b"EIO=4&transport=websocket"),
    ],
    ids=["post", "no-query", "bad-query", "no-headers", "websocket"],
)
def test_the_environ_is_engine_io_s_own(scope):
    first = {"type": "websocket.connect"} if scope["type"] == "websocket" else {"type": "http.request", "body": b"hello"}
    ours, theirs = _both(scope, first)
    assert _comparable(ours) == _comparable(theirs)
    assert set(ours) == set(theirs)
    assert type(ours["wsgi.input"]) is RequestBody  # one class, made once
    assert ours["wsgi.url_scheme"] == ("https" if scope["headers"] else "http")


def test_an_event_that_is_no_request_gives_what_engine_io_gives():
    ours, theirs = _both(_scope(), {"type": "http.disconnect"})
    assert ours == theirs == {}


@pytest.mark.parametrize("lengths", [[None], [2, None], [3, 3, 10], [100]])
def test_the_body_reads_as_engine_io_s_does(lengths):
    events = (
        {"type": "http.request", "body": b"hel", "more_body": True},
        {"type": "http.request", "body": b"lo wor", "more_body": True},
        {"type": "http.request", "body": b"ld", "more_body": False},
    )

    async def reads(translate) -> list[bytes]:
        environ = await translate(_scope(), _receiver(*events), _send)
        return [await environ["wsgi.input"].read(n) for n in lengths]

    assert asyncio.run(reads(translate_request)) == asyncio.run(reads(engineio_asgi.translate_request))


def _cycles_left_by(translate) -> int:
    """What the cyclic collector finds after 50 requests through ``translate``, less
    what an empty ``asyncio.run`` leaves (its loop's own cycles)."""

    async def many(count: int) -> None:
        for _ in range(count):
            environ = await translate(_scope(), _receiver({"type": "http.request", "body": b"x"}), _send)
            await environ["wsgi.input"].read()

    gc.collect()
    gc.disable()
    try:
        asyncio.run(many(0))
        empty = gc.collect()
        asyncio.run(many(50))
        used = gc.collect()
    finally:
        gc.enable()
    return used - empty


def test_a_request_leaves_no_cycle_behind():
    assert _cycles_left_by(translate_request) <= 5


def test_engine_io_s_own_reader_does_leave_cycles():
    """The reason for the module: if engine.io stops making a class per request, this
    fails and live.engineio_requests can go."""
    assert _cycles_left_by(engineio_asgi.translate_request) >= 50 * 10
