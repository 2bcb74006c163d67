"""The wire protocol between web and worker: versioned JSON envelopes over ZeroMQ.

Only this module builds or parses frames. A request is one frame::

    {"v": 1, "id": "<msg id>", "action": "campaigns.list", "data": {...},
     "deadline_ms": 10000, "request_id": "<HTTP request id, for logs>"}

and a reply is one frame::

    {"v": 1, "id": "<msg id>", "ok": true, "data": {...}}
    {"v": 1, "id": "<msg id>", "ok": false,
     "error": {"code": "...", "message": "...", "status": 502, "retry_after": 3}}

A handler that answers with a JSON document it already holds as bytes (Patreon's
answer, passed through) returns ``Document(raw)``: the reply is then two frames, the
envelope with ``"body": "document"`` and the raw bytes. Neither process decodes and
re-encodes a document that only passes through it.

Every action is declared once in ``wire.actions`` (``ACTIONS``: its payload, timeout
and whether a retry is safe); the worker marks each handler with ``@handles(Payload)``
and adds it to an ``ActionRegistry``.
``ActionRegistry.dispatch`` turns any frame into a reply frame and never raises:
garbage (including JSON nested too deep to parse), a wrong version, an unknown
action, a ``deadline_ms`` above ``MAX_DEADLINE_MS``, a request whose deadline passed
before it could start, or a failing handler each become an error reply with one of
the codes below. No traceback ever crosses the wire. A call's deadline counts from
when the frame was *received* (``received_at``), not from when a thread got to it.

Frames are ASCII: non-ASCII text travels as JSON ``\\u`` escapes, so any string a
JSON parser produced (even a lone surrogate) can be encoded. A ``Document`` is sent
as the bytes it came as.

Errors::

    ProtocolError            a frame that is not a valid envelope (code, message)
    ActionError              raised by a handler: a domain error for the caller
                             (code, message, status, retry_after)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from wire.actions import ACTIONS, ActionSpec, Payload
from wire.codes import (
    BAD_FRAME,
    DEADLINE_EXCEEDED,
    INVALID_DATA,
    UNKNOWN_ACTION,
    UNSUPPORTED_VERSION,
    WORKER_INTERNAL_ERROR,
    WORKER_SHUTTING_DOWN,
    status_of,
)

log = logging.getLogger(__name__)

VERSION = 1

# The protocol's own codes (wire/codes.py), under the names handlers and tests use.
INTERNAL_ERROR = WORKER_INTERNAL_ERROR
SHUTTING_DOWN = WORKER_SHUTTING_DOWN

# Above every action's timeout: a longer deadline is a broken or hostile frame (and
# 10**400 ms would overflow float arithmetic and lock timeouts).
MAX_DEADLINE_MS = 600_000


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, msg_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


class ActionError(Exception):
    """A handler's answer that the call failed, with what the HTTP caller should see."""

    def __init__(self, code: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status_of(code) if status is None else status
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message, "status": self.status}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error


@dataclasses.dataclass(frozen=True)
class Request:
    msg_id: str
    action: str
    data: dict[str, Any]
    deadline_ms: int
    request_id: str | None


@dataclasses.dataclass(frozen=True)
class Document:
    """A handler's answer that is already a JSON object, as bytes."""

    raw: bytes


@dataclasses.dataclass(frozen=True)
class Reply:
    msg_id: str
    ok: bool
    data: dict[str, Any] | None
    error: dict[str, Any] | None
    body: bytes | None = None  # the raw JSON document of a two-frame reply

    def payload(self) -> dict[str, Any] | None:
        """The answer as a dict, whichever way it travelled."""
        return json.loads(self.body) if self.body is not None else self.data


def _dump(obj: dict[str, Any]) -> bytes:
    # ensure_ascii: a lone surrogate from a client's JSON cannot be encoded as UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _load_object(frame: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(frame)
    except (UnicodeDecodeError, ValueError) as ex:
        raise ProtocolError(BAD_FRAME, "frame is not UTF-8 JSON") from ex
    except RecursionError as ex:  # b"[" * 100000: nested deeper than the parser goes
        raise ProtocolError(BAD_FRAME, "frame is nested too deeply") from ex
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_FRAME, "frame is not a JSON object")
    return obj


def new_msg_id() -> str:
    return uuid.uuid4().hex


def encode_request(
    action: str,
    data: dict[str, Any] | None,
    deadline_ms: int,
    *,
    msg_id: str | None = None,
    request_id: str | None = None,
) -> tuple[str, bytes]:
    msg_id = msg_id or new_msg_id()
    envelope = {"v": VERSION, "id": msg_id, "action": action, "data": data or {}, "deadline_ms": deadline_ms}
    if request_id:
        envelope["request_id"] = request_id
    return msg_id, _dump(envelope)


def decode_request(frame: bytes) -> Request:
    obj = _load_object(frame)
    msg_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    if obj.get("v") != VERSION:
        raise ProtocolError(
            UNSUPPORTED_VERSION, f"protocol version {obj.get('v')!r} is not {VERSION}", msg_id
        )
    if msg_id is None or not msg_id:
        raise ProtocolError(BAD_FRAME, "request has no id")
    action, data, deadline_ms = obj.get("action"), obj.get("data", {}), obj.get("deadline_ms")
    if not isinstance(action, str):
        raise ProtocolError(BAD_FRAME, "request has no action", msg_id)
    if not isinstance(data, dict):
        raise ProtocolError(BAD_FRAME, "request data is not an object", msg_id)
    if not isinstance(deadline_ms, int) or isinstance(deadline_ms, bool) or deadline_ms <= 0:
        raise ProtocolError(BAD_FRAME, "request deadline_ms is not a positive integer", msg_id)
    if deadline_ms > MAX_DEADLINE_MS:
        raise ProtocolError(BAD_FRAME, f"request deadline_ms is above {MAX_DEADLINE_MS}", msg_id)
    request_id = obj.get("request_id") if isinstance(obj.get("request_id"), str) else None
    return Request(msg_id, action, data, deadline_ms, request_id)


def encode_ok(msg_id: str, data: dict[str, Any]) -> bytes:
    return _dump({"v": VERSION, "id": msg_id, "ok": True, "data": data})


def encode_document(msg_id: str, document: Document) -> list[bytes]:
    return [_dump({"v": VERSION, "id": msg_id, "ok": True, "data": {}, "body": "document"}), document.raw]


def encode_error(msg_id: str | None, error: ActionError) -> bytes:
    return _dump({"v": VERSION, "id": msg_id, "ok": False, "error": error.as_dict()})


def encode_protocol_error(ex: ProtocolError) -> bytes:
    """The reply to a frame that is not a valid request."""
    return encode_error(ex.msg_id, ActionError(ex.code, ex.message, status=400))


def encode_internal_error(
    msg_id: str | None, message: str = "the worker failed to serve this request"
) -> bytes:
    return encode_error(msg_id, ActionError(INTERNAL_ERROR, message, status=500))


def decode_reply(frames: bytes | list[bytes]) -> Reply:
    """A reply from its frames (one frame may be passed as bytes)."""
    frames = [frames] if isinstance(frames, bytes) else list(frames)
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(BAD_FRAME, f"reply has {len(frames)} frames")
    obj = _load_object(frames[0])
    if obj.get("v") != VERSION:
        raise ProtocolError(UNSUPPORTED_VERSION, f"reply version {obj.get('v')!r} is not {VERSION}")
    msg_id, ok = obj.get("id"), obj.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError(BAD_FRAME, "reply has no ok flag")
    has_body = obj.get("body") == "document"
    if has_body != (len(frames) == 2):
        raise ProtocolError(BAD_FRAME, "reply frames do not match its envelope")
    if ok:
        data = obj.get("data")
        if not isinstance(data, dict):
            raise ProtocolError(BAD_FRAME, "ok reply has no data object")
        return Reply(msg_id, True, data, None, frames[1] if has_body else None)
    error = obj.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        raise ProtocolError(BAD_FRAME, "error reply has no error code")
    return Reply(msg_id, False, None, error)


@dataclasses.dataclass
class CallContext:
    """What a handler knows about the call it serves."""

    msg_id: str
    action: str
    request_id: str | None
    deadline: float  # on the monotonic clock
    clock: Callable[[], float] = time.monotonic

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self.clock())


Handler = Callable[[dict[str, Any], CallContext], "dict[str, Any] | Document"]

# Re-exported: the action table the registry checks names against, and the codes.
__all__ = [
    "ACTIONS",
    "BAD_FRAME",
    "DEADLINE_EXCEEDED",
    "INTERNAL_ERROR",
    "INVALID_DATA",
    "SHUTTING_DOWN",
    "UNKNOWN_ACTION",
    "UNSUPPORTED_VERSION",
    "ActionSpec",
]


def handles(payload: type[Payload]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a handler as the one for ``payload``'s action (see ``ActionRegistry.add``)."""

    def mark(handler: Callable[..., Any]) -> Callable[..., Any]:
        handler.handles_action = payload.spec.name  # type: ignore[attr-defined]
        return handler

    return mark


def handled_action(handler: Callable[..., Any]) -> str | None:
    """The action a ``@handles`` handler (or a bound method of one) serves."""
    return getattr(handler, "handles_action", None)


def marked_handlers(owner: object) -> dict[str, Callable[..., Any]]:
    """Every ``@handles`` function or method of a module or object, by action name."""
    found: dict[str, Callable[..., Any]] = {}
    for attribute in dir(owner):
        value = getattr(owner, attribute)
        name = handled_action(value) if callable(value) else None
        if name is not None:
            if name in found:
                raise ValueError(f"two handlers for {name!r}")
            found[name] = value
    return found


class ActionRegistry:
    """Action name -> handler, for names declared in ``ACTIONS``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._handlers: dict[str, Handler] = {}
        self._clock = clock

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock deadlines are on (``received_at`` must come from it)."""
        return self._clock

    def action(self, name: str) -> Callable[[Handler], Handler]:
        if name not in ACTIONS:
            raise KeyError(f"action {name!r} is not declared in protocol.ACTIONS")

        def register(handler: Handler) -> Handler:
            self._handlers[name] = handler
            return handler

        return register

    def register(self, name: str, handler: Handler) -> None:
        self.action(name)(handler)

    def add(self, handler: Handler) -> None:
        """Register a handler marked with ``@handles`` under its action's name."""
        name = handled_action(handler)
        if name is None:
            raise ValueError(f"{handler!r} is not marked with @handles")
        self.register(name, handler)

    def __contains__(self, name: str) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def dispatch(self, frame: bytes, received_at: float | None = None) -> list[bytes]:
        """Serve one request frame; always returns the reply's frames."""
        try:
            request = decode_request(frame)
        except ProtocolError as ex:
            return [encode_protocol_error(ex)]
        return self.serve(request, received_at)

    def serve(self, request: Request, received_at: float | None = None) -> list[bytes]:
        """Serve one decoded request, its deadline counted from ``received_at`` (on
        ``clock``; now when None); always returns the reply's frames."""
        handler = self._handlers.get(request.action)
        if handler is None:
            error = ActionError(UNKNOWN_ACTION, f"unknown action {request.action!r}", status=501)
            return [encode_error(request.msg_id, error)]
        received_at = self._clock() if received_at is None else received_at
        deadline = received_at + request.deadline_ms / 1000.0
        if self._clock() >= deadline:
            # It waited its whole deadline in the queue: the caller has given up.
            log.warning(
                "action %s expired before it started [request %s]", request.action, request.request_id
            )
            error = ActionError(
                DEADLINE_EXCEEDED, "the worker could not start this request in time", status=504
            )
            return [encode_error(request.msg_id, error)]
        ctx = CallContext(
            msg_id=request.msg_id,
            action=request.action,
            request_id=request.request_id,
            deadline=deadline,
            clock=self._clock,
        )
        try:
            result = handler(request.data, ctx)
        except ActionError as ex:
            return [encode_error(request.msg_id, ex)]
        except Exception:
            log.exception("action %s failed [request %s]", request.action, request.request_id)
            return [encode_internal_error(request.msg_id)]
        if isinstance(result, Document):
            return encode_document(request.msg_id, result)
        try:
            return [encode_ok(request.msg_id, result)]
        except (TypeError, ValueError):
            log.exception("action %s returned data that is not JSON", request.action)
            return [encode_internal_error(request.msg_id, "the worker produced an invalid reply")]
