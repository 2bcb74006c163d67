"""The wire protocol: round trips, and every malformed frame gets an error reply."""

from __future__ import annotations

import json

import pytest

from wire import protocol


def registry_with_echo() -> protocol.ActionRegistry:
    registry = protocol.ActionRegistry(clock=lambda: 100.0)
    registry.register("ping", lambda data, ctx: {"pong": True, "seen": data, "left": ctx.remaining_s()})
    return registry


def test_request_round_trip():
    msg_id, frame = protocol.encode_request("ping", {"a": [1, "é"]}, 1500, request_id="rid-123")
    request = protocol.decode_request(frame)
    assert request == protocol.Request(msg_id, "ping", {"a": [1, "é"]}, 1500, "rid-123")


def test_reply_round_trips():
    ok = protocol.decode_reply(protocol.encode_ok("m1", {"x": 1}))
    assert ok == protocol.Reply("m1", True, {"x": 1}, None)
    error = protocol.ActionError("RATE_LIMITED", "slow down", status=429, retry_after=3)
    failed = protocol.decode_reply(protocol.encode_error("m2", error))
    assert failed.ok is False
    assert failed.error == {"code": "RATE_LIMITED", "message": "slow down", "status": 429, "retry_after": 3}


def test_dispatch_serves_a_registered_action_with_its_deadline():
    msg_id, frame = protocol.encode_request("ping", {"k": "v"}, 2500)
    reply = protocol.decode_reply(registry_with_echo().dispatch(frame))
    assert reply.msg_id == msg_id and reply.ok
    assert reply.data == {"pong": True, "seen": {"k": "v"}, "left": 2.5}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xff\xfe garbage", protocol.BAD_FRAME),
        (b"", protocol.BAD_FRAME),
        (b"[1, 2]", protocol.BAD_FRAME),
        (
            b'{"v": 2, "id": "x", "action": "ping", "data": {}, "deadline_ms": 5}',
            protocol.UNSUPPORTED_VERSION,
        ),
        (b'{"v": 1, "action": "ping", "data": {}, "deadline_ms": 5}', protocol.BAD_FRAME),
        (b'{"v": 1, "id": "x", "action": 7, "data": {}, "deadline_ms": 5}', protocol.BAD_FRAME),
        (b'{"v": 1, "id": "x", "action": "ping", "data": [], "deadline_ms": 5}', protocol.BAD_FRAME),
        (b'{"v": 1, "id": "x", "action": "ping", "data": {}, "deadline_ms": -1}', protocol.BAD_FRAME),
        (b'{"v": 1, "id": "x", "action": "ping", "data": {}, "deadline_ms": true}', protocol.BAD_FRAME),
        (
            b'{"v": 1, "id": "x", "action": "launch.rockets", "data": {}, "deadline_ms": 5}',
            protocol.UNKNOWN_ACTION,
        ),
    ],
)
def test_malformed_frames_get_error_replies(frame, code):
    reply = protocol.decode_reply(registry_with_echo().dispatch(frame))
    assert reply.ok is False
    assert reply.error["code"] == code
    assert "Traceback" not in reply.error["message"]


def test_wrong_version_reply_keeps_the_message_id():
    frame = b'{"v": 9, "id": "abc", "action": "ping", "data": {}, "deadline_ms": 5}'
    assert protocol.decode_reply(registry_with_echo().dispatch(frame)).msg_id == "abc"


def test_failing_handler_becomes_an_internal_error_without_traceback():
    registry = protocol.ActionRegistry()

    def broken(data, ctx):
        raise RuntimeError("secret detail that must not cross the wire")

    registry.register("ping", broken)
    _, frame = protocol.encode_request("ping", {}, 100)
    reply = protocol.decode_reply(registry.dispatch(frame))
    assert reply.error["code"] == protocol.INTERNAL_ERROR
    assert reply.error["status"] == 500
    assert "secret detail" not in json.dumps(reply.error)


def test_action_error_from_handler_is_passed_through():
    registry = protocol.ActionRegistry()

    def refuses(data, ctx):
        raise protocol.ActionError("NOT_FOUND", "no such member", status=404)

    registry.register("ping", refuses)
    _, frame = protocol.encode_request("ping", {}, 100)
    assert protocol.decode_reply(registry.dispatch(frame)).error == {
        "code": "NOT_FOUND",
        "message": "no such member",
        "status": 404,
    }


def test_handler_returning_non_json_is_an_error_reply():
    registry = protocol.ActionRegistry()
    registry.register("ping", lambda data, ctx: {"when": object()})
    _, frame = protocol.encode_request("ping", {}, 100)
    assert protocol.decode_reply(registry.dispatch(frame)).error["code"] == protocol.INTERNAL_ERROR


def test_only_declared_actions_can_be_registered():
    with pytest.raises(KeyError):
        protocol.ActionRegistry().register("not.declared", lambda data, ctx: {})


@pytest.mark.parametrize(
    "frame",
    [
        b"nope",
        b'{"v": 1}',
        b'{"v": 1, "id": "x", "ok": "yes"}',
        b'{"v": 1, "id": "x", "ok": false, "error": {}}',
    ],
)
def test_bad_replies_raise_protocol_error(frame):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply(frame)


def test_a_document_travels_as_a_second_frame_untouched():
    raw = b'{"data": {"type": "user", "id": "1"},  "links": {}}'
    registry = protocol.ActionRegistry()
    registry.register("ping", lambda data, ctx: protocol.Document(raw))
    msg_id, frame = protocol.encode_request("ping", {}, 100)
    frames = registry.dispatch(frame)
    assert len(frames) == 2 and frames[1] == raw
    reply = protocol.decode_reply(frames)
    assert (reply.msg_id, reply.ok, reply.body) == (msg_id, True, raw)
    assert reply.payload() == {"data": {"type": "user", "id": "1"}, "links": {}}


def test_reply_frames_must_match_the_envelope():
    single = protocol.encode_ok("m", {"x": 1})
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply([single, b"{}"])
    envelope, body = protocol.encode_document("m", protocol.Document(b"{}"))
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply([envelope])
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply([envelope, body, body])


# -- review fixes: hostile frames, deadlines, encoding --------------------------------


def test_a_deeply_nested_frame_is_a_bad_frame_not_a_crash():
    reply = protocol.decode_reply(registry_with_echo().dispatch(b"[" * 100_000))
    assert (reply.ok, reply.error["code"], reply.error["status"]) == (False, protocol.BAD_FRAME, 400)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply(b"[" * 100_000)


@pytest.mark.parametrize("deadline_ms", [protocol.MAX_DEADLINE_MS + 1, 10**20, 10**400])
def test_a_huge_deadline_is_a_bad_frame(deadline_ms):
    frame = b'{"v":1,"id":"big","action":"ping","data":{},"deadline_ms":%d}' % deadline_ms
    reply = protocol.decode_reply(registry_with_echo().dispatch(frame))
    assert (reply.msg_id, reply.error["code"]) == ("big", protocol.BAD_FRAME)


def test_the_deadline_counts_from_when_the_request_was_received():
    clock = FakeMonotonic(100.0)
    registry = protocol.ActionRegistry(clock=clock)
    registry.register("ping", lambda data, ctx: {"left": ctx.remaining_s()})
    _, frame = protocol.encode_request("ping", {}, 2000)
    request = protocol.decode_request(frame)
    clock.now = 101.5  # it waited 1.5 s for a thread
    reply = protocol.decode_reply(registry.serve(request, received_at=100.0))
    assert reply.data == {"left": 0.5}


def test_a_request_whose_deadline_passed_in_the_queue_is_not_run():
    clock = FakeMonotonic(100.0)
    registry = protocol.ActionRegistry(clock=clock)
    ran = []
    registry.register("ping", lambda data, ctx: ran.append(1) or {})
    _, frame = protocol.encode_request("ping", {}, 2000)
    clock.now = 102.0
    reply = protocol.decode_reply(registry.dispatch(frame, received_at=100.0))
    assert (reply.error["code"], reply.error["status"]) == (protocol.DEADLINE_EXCEEDED, 504)
    assert ran == []


def test_frames_are_ascii_even_with_a_lone_surrogate():
    registry = protocol.ActionRegistry()
    registry.register("ping", lambda data, ctx: {"seen": data})
    frame = b'{"v":1,"id":"s","action":"ping","data":{"name":"\\ud800 \\u00e9"},"deadline_ms":100}'
    frames = registry.dispatch(frame)
    frames[0].decode("ascii")
    assert protocol.decode_reply(frames).data == {"seen": {"name": "\ud800 é"}}
    _, request = protocol.encode_request("ping", {"name": "\udfff"}, 100)
    assert protocol.decode_request(request).data == {"name": "\udfff"}


class FakeMonotonic:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now
